package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// redisURL is the Redis database this smoke test owns (it is flushed). No
// other test or program of the repository uses index 1 (the e2e tests hold 6–9).
const redisURL = "redis://127.0.0.1:6379/1"

// TestRunSmall runs the benchmark on a tiny universe at a low rate so that
// it cannot rot: every scheduled request must be sent, answered with the
// coins' scores and timed.
func TestRunSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	rs, err := run(ctx, []string{"-engines", "sqlite", "-assets", "30", "-days", "60", "-rate", "50",
		"-duration", "1s", "-warmup", "200ms", "-conns", "4", "-redis", redisURL}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if len(rs) != 1 {
		t.Fatalf("got %d results, want 1\n%s", len(rs), out.String())
	}
	r := rs[0]
	if want := 50; r.Requests != want { // 50/s for 1 s
		t.Errorf("%d requests at 50/s for 1 s, want %d", r.Requests, want)
	}
	if r.OK != r.Requests || r.Errors != 0 {
		t.Errorf("%d of %d answered 200, %d errors (%s)", r.OK, r.Requests, r.Errors, r.FirstErr)
	}
	if r.Items < 1 || r.Items > 30 || r.Bytes <= 0 {
		t.Errorf("a response holds %d items in %d bytes, want 1 to 30 (the coins)", r.Items, r.Bytes)
	}
	if r.PerSec <= 0 {
		t.Errorf("achieved %.1f/s", r.PerSec)
	}
	if l := r.Latency; l.N != r.Requests || l.P50 <= 0 || l.P99 < l.P50 || l.Max < l.P99 {
		t.Errorf("latency %+v for %d requests", l, r.Requests)
	}
	if r.Lag.N != r.Requests || r.Lag.Max > r.Latency.Max || r.Service.N != r.Requests || r.Service.P50 <= 0 || r.Service.Max > r.Latency.Max {
		t.Errorf("send lag %+v, service %+v, latency %+v", r.Lag, r.Service, r.Latency)
	}
	if want := r.Latency.P99 < targetP99 && r.PerSec >= targetShare*50 && r.Errors == 0; r.Pass != want {
		t.Errorf("pass %v for %.1f/s p99 %s, want %v", r.Pass, r.PerSec, r.Latency.P99, want)
	}
	if !strings.Contains(out.String(), "requests/s") || !strings.Contains(out.String(), "load average after") {
		t.Errorf("no result table in output:\n%s", out.String())
	}
}

func TestParseFlagsRefuses(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"engine", []string{"-engines", "oracle"}},
		{"rate", []string{"-rate", "0"}},
		{"duration", []string{"-duration", "0s"}},
		{"warmup", []string{"-warmup", "-1s"}},
		{"conns", []string{"-conns", "0"}},
		{"assets", []string{"-assets", "0"}},
		{"days", []string{"-days", "0"}},
		{"too few requests", []string{"-rate", "1", "-duration", "500ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseFlags(tt.args); err == nil {
				t.Errorf("parseFlags(%q) = nil error", tt.args)
			}
		})
	}
}
