package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// redisURL is the Redis database this smoke test owns (it is flushed).
const redisURL = "redis://127.0.0.1:6379/15"

// TestRunSmall runs both parts at a tiny size so that they cannot rot:
// every progress event must reach its stream and be timed, and the api
// process must count every idle stream while its RSS is read.
func TestRunSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	const jobs, reports, streams = 5, 3, 20
	rep, err := run(ctx, []string{"-engines", "sqlite,postgres", "-jobs", "5", "-reports", "3", "-interval", "20ms",
		"-streams", "20", "-redis", redisURL}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if len(rep.Latency) != 2 {
		t.Fatalf("got %d latency results, want 2", len(rep.Latency))
	}
	for _, r := range rep.Latency {
		if r.Streams != jobs || r.Sent != jobs*reports || r.Received != r.Sent {
			t.Errorf("%s: %d streams, %d of %d events received", r.Engine, r.Streams, r.Received, r.Sent)
		}
		if l := r.Latency; l.N != r.Sent || l.P50 <= 0 || l.P99 < l.P50 || r.Store.N != r.Sent {
			t.Errorf("%s: latency %+v store %+v", r.Engine, l, r.Store)
		}
		if r.Latency.P50 < r.Store.P50 {
			t.Errorf("%s: report→client p50 %s below the store's p50 %s", r.Engine, r.Latency.P50, r.Store.P50)
		}
	}
	m := rep.RSS
	if m == nil {
		t.Fatal("no RSS result")
	}
	if m.Streams != streams || m.Subscriptions != streams || m.BeforeKB <= 0 || m.AfterKB <= 0 || m.PeakKB < m.AfterKB {
		t.Errorf("rss result %+v", *m)
	}
	if m.Metrics.Goroutines < m.MetricsBefore.Goroutines+streams {
		t.Errorf("api goroutines %d → %d with %d streams", m.MetricsBefore.Goroutines, m.Metrics.Goroutines, streams)
	}
	for _, s := range []string{"p99 ms", "RSS after MB", "per stream KB"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("output lacks %q:\n%s", s, out.String())
		}
	}
}

func TestParseFlagsRefuses(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"part", []string{"-what", "cpu"}},
		{"too many streams", []string{"-streams", "5001"}},
		{"rss engine", []string{"-rss-engine", "sqlite,postgres"}},
		{"api env", []string{"-api-env", "GOGC"}},
		{"jobs", []string{"-jobs", "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseFlags(tt.args); err == nil {
				t.Errorf("parseFlags(%q) = nil error", tt.args)
			}
		})
	}
}
