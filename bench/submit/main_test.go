package main

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/bench/internal/latency"
)

// redisURL is the Redis database this smoke test owns (it is flushed).
const redisURL = "redis://127.0.0.1:6379/14"

// TestRunSmall runs the benchmark briefly on both engines, in a closed and
// an open loop, so that it cannot rot: every submission must be accepted
// and timed.
func TestRunSmall(t *testing.T) {
	for _, rate := range []string{"0", "50"} {
		t.Run("rate="+rate, func(t *testing.T) { testRunSmall(t, rate) })
	}
}

func testRunSmall(t *testing.T, rate string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	rs, err := run(ctx, []string{"-engines", "sqlite,postgres", "-clients", "4", "-duration", "300ms",
		"-warmup", "100ms", "-rate", rate, "-redis", redisURL}, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if rate != "0" {
		for _, r := range rs {
			if want := 15; r.Requests != want { // 50/s for 300 ms
				t.Errorf("%s: %d requests at %s/s for 300 ms, want %d", r.Engine, r.Requests, rate, want)
			}
		}
	}
	if len(rs) != 2 {
		t.Fatalf("got %d results, want 2", len(rs))
	}
	for _, r := range rs {
		if r.Accepted == 0 || r.PerSec <= 0 || r.Errors != 0 || r.Accepted != r.Requests {
			t.Errorf("%s: %d of %d accepted, %d errors (%s), %.0f/s", r.Engine, r.Accepted, r.Requests, r.Errors, r.FirstErr, r.PerSec)
		}
		if l := r.Latency; l.N != r.Requests || l.P50 <= 0 || l.P99 < l.P50 || l.Max < l.P99 {
			t.Errorf("%s: latency %+v for %d requests", r.Engine, l, r.Requests)
		}
		if r.Pass != r.passes() {
			t.Errorf("%s: pass %v for %.0f/s (offered %.0f/s) p99 %s", r.Engine, r.Pass, r.PerSec, r.Offered, r.Latency.P99)
		}
		if want, _ := strconv.ParseFloat(rate, 64); r.Offered != want {
			t.Errorf("%s: offered %v, want %v", r.Engine, r.Offered, want)
		}
	}
	if !strings.Contains(out.String(), "submissions/s") || !strings.Contains(out.String(), "postgres") {
		t.Errorf("no result table in output:\n%s", out.String())
	}
}

func TestPasses(t *testing.T) {
	fast := latency.Summary{P99: targetP99 - time.Millisecond}
	slow := latency.Summary{P99: targetP99}
	tests := []struct {
		name string
		r    result
		want bool
	}{
		{"closed loop at the target", result{PerSec: targetRate, Latency: fast}, true},
		{"closed loop under it", result{PerSec: targetRate - 1, Latency: fast}, false},
		{"closed loop, p99 at the limit", result{PerSec: 2 * targetRate, Latency: slow}, false},
		{"closed loop with an error", result{PerSec: 2 * targetRate, Latency: fast, Errors: 1}, false},
		// Open loop: the rate is the one offered; the last request's
		// latency makes the measured one a little lower.
		{"open loop at the target", result{PerSec: targetRate - 0.5, Offered: targetRate, Latency: fast}, true},
		{"open loop under the target", result{PerSec: targetRate - 500, Offered: targetRate - 500, Latency: fast}, false},
		{"open loop, p99 at the limit", result{PerSec: targetRate, Offered: targetRate, Latency: slow}, false},
		{"open loop with an error", result{PerSec: targetRate, Offered: targetRate, Latency: fast, Errors: 1}, false},
	}
	for _, tt := range tests {
		if got := tt.r.passes(); got != tt.want {
			t.Errorf("%s: passes = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestParseFlagsRefuses(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"engine", []string{"-engines", "oracle"}},
		{"clients", []string{"-clients", "0"}},
		{"duration", []string{"-duration", "0s"}},
		{"rate", []string{"-rate", "-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseFlags(tt.args); err == nil {
				t.Errorf("parseFlags(%q) = nil error", tt.args)
			}
		})
	}
}
