// Command submit measures target P2 of the job spine: POST /api/jobs with
// 50 concurrent clients for 10 s must sustain at least 2,000 submissions/s
// with a p99 latency under 20 ms.
//
// It serves the real API in-process (api.New, wired as cmd/api wires it,
// on 127.0.0.1:0) on a fresh SQLite file and a fresh PostgreSQL database,
// authenticates with real dev tokens (auth.DevIssuer.Mint, verified by the
// API's OIDC verifier) and drives it from goroutines sharing one
// http.Transport. No worker runs: the jobs stay queued, and the Redis
// database is flushed afterwards.
//
// Usage:
//
//	go run ./bench/submit [-engines sqlite,postgres] [-clients 50] [-duration 10s]
//	    [-warmup 2s] [-cpuprofile FILE]
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/tokenlysis/tokenlysis/bench/internal/cpuacct"
	"github.com/tokenlysis/tokenlysis/bench/internal/latency"
	"github.com/tokenlysis/tokenlysis/bench/internal/loadgen"
	"github.com/tokenlysis/tokenlysis/bench/internal/testbed"
	"github.com/tokenlysis/tokenlysis/internal/authz"
	"github.com/tokenlysis/tokenlysis/internal/database"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "submit:", err)
		os.Exit(1)
	}
}

// Targets of P2.
const (
	targetRate = 2000.0
	targetP99  = 20 * time.Millisecond
)

// body is the submission: a no-op probe.
var body = []byte(`{"type":"system:probe","params":{"steps":1,"step_ms":0}}`)

type config struct {
	engines     []database.Dialect
	clients     int
	duration    time.Duration
	warmup      time.Duration
	rate        float64
	redisURL    string
	postgresURL string
	tuning      testbed.Tuning
	cpuprofile  string
}

// result is the outcome of one engine.
type result struct {
	Engine   database.Dialect
	Requests int // measured requests, including failed ones
	Accepted int // 202 answers
	Errors   int // anything else, transport errors included
	FirstErr string
	Elapsed  time.Duration
	PerSec   float64 // accepted submissions per second
	Offered  float64 // open loop: the rate scheduled; 0 in a closed loop
	Latency  latency.Summary
	// CPU is the CPU time of the measured phase by group (this process:
	// API and load generator; Redis; the PostgreSQL backends), per request.
	CPU  map[string]time.Duration
	Pass bool
	Load string
}

func run(ctx context.Context, args []string, stdout io.Writer) ([]result, error) {
	cfg, err := parseFlags(args)
	if err != nil {
		return nil, err
	}
	loop := "closed loop"
	if cfg.rate > 0 {
		loop = fmt.Sprintf("open loop at %.0f/s", cfg.rate)
	}
	fmt.Fprintf(stdout, "P2 POST /api/jobs: clients=%d %s duration=%s warmup=%s redis=%s\n", cfg.clients, loop, cfg.duration, cfg.warmup, cfg.redisURL)
	fmt.Fprintf(stdout, "load average before: %s\n", testbed.Load())
	var results []result
	for _, d := range cfg.engines {
		r, err := measureEngine(ctx, cfg, d)
		if err != nil {
			return results, fmt.Errorf("%s: %w", d, err)
		}
		results = append(results, r)
		fmt.Fprintf(stdout, "%s: %d accepted, %d errors in %s; latency %s; load %s\n",
			d, r.Accepted, r.Errors, r.Elapsed.Round(time.Millisecond), r.Latency, r.Load)
		fmt.Fprintf(stdout, "%s: CPU per request: self (API + clients) %dµs, redis %dµs, postgres %dµs\n", d,
			r.CPU[cpuacct.Self].Microseconds(), r.CPU[cpuacct.Redis].Microseconds(), r.CPU[cpuacct.Postgres].Microseconds())
		if r.FirstErr != "" {
			fmt.Fprintf(stdout, "%s: first error: %s\n", d, r.FirstErr)
		}
	}
	printTable(stdout, results)
	fmt.Fprintf(stdout, "load average after: %s\n", testbed.Load())
	return results, nil
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("submit", flag.ContinueOnError)
	engines := fs.String("engines", "sqlite,postgres", "engines to measure, comma-separated")
	var cfg config
	tuning := testbed.TuningFlags(fs)
	fs.IntVar(&cfg.clients, "clients", 50, "concurrent clients")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "measured duration per engine")
	fs.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "unmeasured load before measuring")
	fs.Float64Var(&cfg.rate, "rate", 0, "open loop: schedule this many requests per second over the clients (0: closed loop, back to back)")
	fs.StringVar(&cfg.redisURL, "redis", testbed.DefaultRedisURL, "Redis URL with the database index to use (flushed!)")
	fs.StringVar(&cfg.postgresURL, "postgres", testbed.DefaultPostgresURL, "PostgreSQL admin URL (creates and drops its own database)")
	fs.StringVar(&cfg.cpuprofile, "cpuprofile", "", "write a CPU profile of each measured phase to FILE.<engine>")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	cfg.tuning = *tuning
	var err error
	if cfg.engines, err = testbed.Dialects(*engines); err != nil {
		return cfg, err
	}
	if cfg.clients < 1 || cfg.duration <= 0 || cfg.warmup < 0 || cfg.rate < 0 {
		return cfg, errors.New("-clients and -duration must be positive, -warmup and -rate not negative")
	}
	return cfg, nil
}

func measureEngine(ctx context.Context, cfg config, d database.Dialect) (_ result, err error) {
	bed, err := testbed.New(ctx, testbed.Config{Dialect: d, PostgresURL: cfg.postgresURL, RedisURL: cfg.redisURL,
		Pool: cfg.tuning.Pool, SynchronousCommit: cfg.tuning.SynchronousCommit})
	if err != nil {
		return result{}, err
	}
	defer func() { err = errors.Join(err, bed.Close(context.WithoutCancel(ctx))) }()
	api, err := bed.StartAPI(ctx)
	if err != nil {
		return result{}, err
	}
	defer api.Close()
	token, err := api.Token("bench", authz.RoleUser)
	if err != nil {
		return result{}, err
	}

	tr := &http.Transport{MaxIdleConns: 2 * cfg.clients, MaxIdleConnsPerHost: 2 * cfg.clients, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	post := func(ctx context.Context, at time.Time) loadgen.Sample {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, api.URL+"/api/jobs", bytes.NewReader(body))
		if err != nil {
			return loadgen.Sample{Err: err}
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		return loadgen.Send(client, req, at, http.StatusAccepted)
	}
	// The first request makes the API discover its own issuer: do it alone.
	if s := post(ctx, time.Now()); s.Err != nil || s.Status != http.StatusAccepted {
		return result{}, fmt.Errorf("first submission: status %d, %v %s", s.Status, s.Err, s.Body)
	}
	if cfg.warmup > 0 {
		loadgen.Run(ctx, cfg.clients, cfg.warmup, cfg.rate, post)
	}
	stopProfile, err := cpuacct.Profile(cfg.cpuprofile, string(d))
	if err != nil {
		return result{}, err
	}
	meter := cpuacct.Start(cpuacct.Config{RedisAddr: bed.RedisAddr(), PostgresDatabase: bed.PostgresDatabase})
	samples, elapsed := loadgen.Run(ctx, cfg.clients, cfg.duration, cfg.rate, post)
	cpu := meter.Stop()
	stopProfile()
	if ctx.Err() != nil {
		return result{}, ctx.Err()
	}

	r := result{Engine: d, Requests: len(samples), Elapsed: elapsed, Offered: cfg.rate, Load: testbed.Load(), CPU: map[string]time.Duration{}}
	for g, c := range cpu {
		r.CPU[g] = c / time.Duration(max(1, len(samples)))
	}
	ds := make([]time.Duration, 0, len(samples))
	for _, s := range samples {
		ds = append(ds, s.Took)
		if s.Err == nil && s.Status == http.StatusAccepted {
			r.Accepted++
			continue
		}
		r.Errors++
		if r.FirstErr == "" {
			r.FirstErr = fmt.Sprintf("status %d %v %s", s.Status, s.Err, s.Body)
		}
	}
	r.Latency = latency.Summarize(ds)
	r.PerSec = float64(r.Accepted) / elapsed.Seconds()
	r.Pass = r.passes()
	return r, nil
}

// passes says whether r meets P2. In a closed loop the rate is what the
// API sustained. In an open loop (Offered > 0) it is the rate offered:
// each request is timed from its scheduled time, so an API that falls
// behind shows in the latency, while the measured rate is a little lower
// than the offered one whatever the API does (the run ends with the last
// request's answer, after the last scheduled time).
func (r result) passes() bool {
	rate := r.PerSec
	if r.Offered > 0 {
		rate = r.Offered
	}
	return rate >= targetRate && r.Latency.P99 < targetP99 && r.Errors == 0
}

func printTable(w io.Writer, rs []result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "engine\tsubmissions/s\tp50 ms\tp95 ms\tp99 ms\tmax ms\terrors\ttarget\tresult\tload")
	for _, r := range rs {
		verdict := "FAIL"
		if r.Pass {
			verdict = "PASS"
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t≥ %.0f/s, p99 < %s\t%s\t%s\n", r.Engine, r.PerSec,
			latency.MS(r.Latency.P50), latency.MS(r.Latency.P95), latency.MS(r.Latency.P99), latency.MS(r.Latency.Max),
			r.Errors, targetRate, targetP99, verdict, r.Load)
	}
	tw.Flush()
}
