package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/bench/internal/cpuacct"
)

// redisURL is the Redis database this smoke test owns (it is flushed).
const redisURL = "redis://127.0.0.1:6379/13"

// TestMain lets the test binary be a worker process, as the benchmark's
// own binary is when run sends it the worker side of a run.
func TestMain(m *testing.M) {
	if spec, ok := os.LookupEnv(serveEnv); ok {
		if err := serve(context.Background(), spec, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "jobpath worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestRunSmall runs the benchmark at a tiny size so that it cannot rot:
// both kinds of run must complete, and the full path must leave every job
// succeeded with its four events recorded and three published (not queued).
func TestRunSmall(t *testing.T) {
	tests := []struct {
		name    string
		engines string
		mode    string
		worker  string
	}{
		{"pipelined", "sqlite,postgres", modePipelined, workerProcess},
		{"phased", "sqlite", modePhased, workerProcess},
		{"in process", "postgres", modePipelined, workerInProcess},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var out bytes.Buffer
			const n = 40
			rs, err := run(ctx, []string{"-engines", tt.engines, "-mode", tt.mode, "-worker", tt.worker, "-n", "40", "-rounds", "2",
				"-concurrency", "5", "-producers", "4", "-redis", redisURL, "-timeout", "1m"}, &out)
			if err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			if want := len(strings.Split(tt.engines, ",")); len(rs) != want {
				t.Fatalf("got %d results, want %d", len(rs), want)
			}
			for _, r := range rs {
				if r.Bare.PerSec <= 0 || r.Full.PerSec <= 0 || r.Ratio <= 0 {
					t.Errorf("%s: rates bare %v full %v ratio %v, want > 0", r.Engine, r.Bare.PerSec, r.Full.PerSec, r.Ratio)
				}
				if r.Succeeded != 2*n || r.Events != 2*4*n || r.Published != 2*3*n {
					t.Errorf("%s: succeeded %d events %d published %d over two rounds, want %d, %d, %d", r.Engine, r.Succeeded, r.Events, r.Published, 2*n, 2*4*n, 2*3*n)
				}
				if len(r.RoundRatios) != 2 || r.Ratio != (r.RoundRatios[0]+r.RoundRatios[1])/2 {
					t.Errorf("%s: ratio %v, want the median of the rounds' ratios %v", r.Engine, r.Ratio, r.RoundRatios)
				}
				if r.Target <= 0 || r.Pass != (r.Ratio >= r.Target) {
					t.Errorf("%s: target %v pass %v for ratio %v", r.Engine, r.Target, r.Pass, r.Ratio)
				}
				// A worker process's CPU time is its own group; in process it
				// is part of this process's.
				for _, run := range []rate{r.Bare, r.Full} {
					if w := run.CPU[groupWorker]; (w > 0) != (tt.worker == workerProcess) || run.CPU[cpuacct.Self] <= 0 {
						t.Errorf("%s: CPU by group %v with worker %s", r.Engine, run.CPU, tt.worker)
					}
				}
				if r.WorkerWrites.Writes != 2*3*n || r.WorkerWrites.Commits < 1 || r.APIWrites.Writes != 2*n {
					t.Errorf("%s: job writes API %+v worker %+v, want %d and %d", r.Engine, r.APIWrites, r.WorkerWrites, 2*n, 2*3*n)
				}
				if !hasOps(r.Ops, opSubmit, opAttempt, opSucceed) {
					t.Errorf("%s: operation times %v, want the API side's and the worker side's", r.Engine, r.Ops)
				}
				if tt.mode == modePhased && (r.Bare.Enqueue <= 0 || r.Full.Enqueue <= 0) {
					t.Errorf("%s: phased run without enqueue times: %+v %+v", r.Engine, r.Bare, r.Full)
				}
			}
			if !strings.Contains(out.String(), "full-path jobs/s") || !strings.Contains(out.String(), string(rs[0].Engine)) {
				t.Errorf("no result table in output:\n%s", out.String())
			}
		})
	}
}

func hasOps(ops []opSummary, names ...string) bool {
	for _, name := range names {
		if !slices.ContainsFunc(ops, func(o opSummary) bool { return o.Name == name && o.Latency.N > 0 }) {
			return false
		}
	}
	return true
}

func TestParseFlagsRefuses(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"engine", []string{"-engines", "mysql"}},
		{"mode", []string{"-mode", "burst"}},
		{"worker", []string{"-worker", "thread"}},
		{"n", []string{"-n", "0"}},
		{"concurrency", []string{"-concurrency", "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseFlags(tt.args); err == nil {
				t.Errorf("parseFlags(%q) = nil error", tt.args)
			}
		})
	}
}

func TestMedianOf(t *testing.T) {
	for _, tt := range []struct {
		xs   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{0.7}, 0.7},
		{[]float64{0.9, 0.7, 0.8}, 0.8},
		{[]float64{0.9, 0.6, 0.7, 0.8}, 0.75},
	} {
		in := append([]float64(nil), tt.xs...)
		if got := medianOf(tt.xs); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("medianOf(%v) = %v, want %v", tt.xs, got, tt.want)
		}
		if !slices.Equal(in, tt.xs) {
			t.Errorf("medianOf reordered its argument: %v, was %v", tt.xs, in)
		}
	}
}

func TestBudgetLine(t *testing.T) {
	r := result{
		Target: 0.8,
		Bare:   rate{CPUPerTask: 400 * time.Microsecond},
		Full: rate{CPUPerTask: 650 * time.Microsecond, CPU: map[string]time.Duration{
			cpuacct.Postgres: 1200 * time.Millisecond, // 120 µs a job over 10,000 jobs
		}},
	}
	want := "CPU budget at 0.8×: the full path may spend 500µs a job (bare ÷ 0.8); it spent 650µs, 150µs over, " +
		"of which postgres 120µs (without it 530µs)"
	if got := budgetLine(r, 10_000); got != want {
		t.Errorf("budgetLine =\n  %s\nwant\n  %s", got, want)
	}
	r.Full.CPUPerTask = 450 * time.Microsecond
	if got := budgetLine(r, 10_000); !strings.Contains(got, "it spent 450µs, 50µs under,") {
		t.Errorf("budgetLine under the budget = %s", got)
	}
}
