// Command scores measures target P5: GET /api/scores?limit=100 must answer
// with a p99 latency under 5 ms at 1,000 requests/s.
//
// For each engine it makes a fresh database, seeds the demo universe
// (marketimport.SeedDemo) and runs the recalculation engine once, outside
// the timing; then it serves the real API in-process (api.New, wired as
// cmd/api wires it, on 127.0.0.1:0), authenticates with a real dev token
// (auth.DevIssuer.Mint, role user) and offers the requests in an open
// loop: they are scheduled at a fixed rate whatever the answers do, and
// each one is timed from its scheduled send time, so time spent queueing
// behind slow answers counts (no coordinated omission).
//
// Usage:
//
//	go run ./bench/scores [-engines sqlite,postgres] [-rate 1000] [-duration 10s]
//	    [-warmup 2s] [-query limit=100] [-assets 1000] [-days 400] [-conns 100]
//	    [-cpuprofile FILE]
package main

import (
	"context"
	"encoding/json"
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
	"github.com/tokenlysis/tokenlysis/internal/demo"
	"github.com/tokenlysis/tokenlysis/internal/marketimport"
	"github.com/tokenlysis/tokenlysis/internal/recalc"
	"github.com/tokenlysis/tokenlysis/internal/sqlstore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "scores:", err)
		os.Exit(1)
	}
}

// Targets of P5: p99 under targetP99 while answering at least targetShare
// of the offered rate, without errors.
const (
	targetP99   = 5 * time.Millisecond
	targetShare = 0.99
)

type config struct {
	engines     []database.Dialect
	rate        float64
	duration    time.Duration
	warmup      time.Duration
	query       string
	assets      int
	days        int
	conns       int
	redisURL    string
	postgresURL string
	tuning      testbed.Tuning
	cpuprofile  string
}

// result is the outcome of one engine.
type result struct {
	Engine database.Dialect
	// Seed and Recalc are the set-up times (not measured figures); Rows is
	// the number of score rows the recalculation wrote.
	Seed, Recalc time.Duration
	Rows         int64
	// Items and Bytes describe one response (the first, checked alone).
	Items int
	Bytes int
	// Requests counts the measured requests, failed ones included; OK the
	// 200 answers; Errors everything else, transport errors included.
	Requests int
	OK       int
	Errors   int
	FirstErr string
	// Elapsed runs from the first scheduled send to the last answer.
	Elapsed time.Duration
	PerSec  float64 // 200 answers per second
	// Latency counts from each request's scheduled send time; Lag is the
	// part before it was actually sent (the load generator's own delay
	// plus waiting for a free connection), Service the rest (sent →
	// answer read: the API's own time and the loopback's).
	Latency latency.Summary
	Lag     latency.Summary
	Service latency.Summary
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
	fmt.Fprintf(stdout, "P5 GET /api/scores?%s: open loop at %.0f/s duration=%s warmup=%s conns=%d universe=%d coins × %d days redis=%s\n",
		cfg.query, cfg.rate, cfg.duration, cfg.warmup, cfg.conns, cfg.assets, cfg.days, cfg.redisURL)
	fmt.Fprintf(stdout, "load average before: %s\n", testbed.Load())
	var results []result
	for _, d := range cfg.engines {
		r, err := measureEngine(ctx, cfg, d, stdout)
		if err != nil {
			return results, fmt.Errorf("%s: %w", d, err)
		}
		results = append(results, r)
		fmt.Fprintf(stdout, "%s: %d OK, %d errors of %d requests in %s; latency %s; load %s\n",
			d, r.OK, r.Errors, r.Requests, r.Elapsed.Round(time.Millisecond), r.Latency, r.Load)
		fmt.Fprintf(stdout, "%s: of which send lag (scheduled → sent) %s\n", d, r.Lag)
		fmt.Fprintf(stdout, "%s: and service (sent → answered) %s\n", d, r.Service)
		fmt.Fprintf(stdout, "%s: CPU per request: self (API + load generator) %dµs, redis %dµs, postgres %dµs\n", d,
			r.CPU[cpuacct.Self].Microseconds(), r.CPU[cpuacct.Redis].Microseconds(), r.CPU[cpuacct.Postgres].Microseconds())
		if r.FirstErr != "" {
			fmt.Fprintf(stdout, "%s: first error: %s\n", d, r.FirstErr)
		}
	}
	printTable(stdout, cfg, results)
	fmt.Fprintf(stdout, "load average after: %s\n", testbed.Load())
	return results, nil
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("scores", flag.ContinueOnError)
	engines := fs.String("engines", "sqlite,postgres", "engines to measure, comma-separated")
	var cfg config
	tuning := testbed.TuningFlags(fs)
	fs.Float64Var(&cfg.rate, "rate", 1000, "offered requests per second (open loop)")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "measured duration per engine")
	fs.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "unmeasured load at the same rate before measuring")
	fs.StringVar(&cfg.query, "query", "limit=100", "query string of GET /api/scores")
	fs.IntVar(&cfg.assets, "assets", 1000, "coins of the seeded demo universe")
	fs.IntVar(&cfg.days, "days", 400, "days of demo history (the request reads only the latest scores)")
	fs.IntVar(&cfg.conns, "conns", 100, "connections (sending goroutines) the scheduled requests are spread over")
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
	if cfg.rate <= 0 || cfg.duration <= 0 || cfg.warmup < 0 || cfg.conns < 1 || cfg.assets < 1 || cfg.days < 1 {
		return cfg, errors.New("-rate, -duration, -conns, -assets and -days must be positive, -warmup not negative")
	}
	if cfg.rate*cfg.duration.Seconds() < 1 {
		return cfg, errors.New("-rate × -duration schedules no request")
	}
	return cfg, nil
}

func measureEngine(ctx context.Context, cfg config, d database.Dialect, stdout io.Writer) (_ result, err error) {
	bed, err := testbed.New(ctx, testbed.Config{Dialect: d, PostgresURL: cfg.postgresURL, RedisURL: cfg.redisURL,
		Pool: cfg.tuning.Pool, SynchronousCommit: cfg.tuning.SynchronousCommit})
	if err != nil {
		return result{}, err
	}
	defer func() { err = errors.Join(err, bed.Close(context.WithoutCancel(ctx))) }()
	r := result{Engine: d}
	if err := prepare(ctx, bed, cfg, &r); err != nil {
		return result{}, err
	}
	fmt.Fprintf(stdout, "%s: seeded %d coins × %d days in %s, recalculated (%d score rows) in %s\n", d, cfg.assets, cfg.days,
		r.Seed.Round(time.Millisecond), r.Rows, r.Recalc.Round(time.Millisecond))

	api, err := bed.StartAPI(ctx)
	if err != nil {
		return result{}, err
	}
	defer api.Close()
	token, err := api.Token("bench", authz.RoleUser)
	if err != nil {
		return result{}, err
	}
	tr := &http.Transport{MaxIdleConns: cfg.conns, MaxIdleConnsPerHost: cfg.conns, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url, auth := api.URL+"/api/scores?"+cfg.query, "Bearer "+token
	get := func(ctx context.Context, at time.Time) loadgen.Sample {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return loadgen.Sample{Err: err}
		}
		req.Header.Set("Authorization", auth)
		return loadgen.Send(client, req, at, http.StatusOK)
	}
	// The first request makes the API discover its own issuer: do it alone,
	// and check that it serves scores at all.
	if r.Items, r.Bytes, err = check(ctx, client, url, auth); err != nil {
		return result{}, err
	}
	fmt.Fprintf(stdout, "%s: an answer holds %d items in %d bytes\n", d, r.Items, r.Bytes)
	if cfg.warmup > 0 {
		loadgen.Run(ctx, cfg.conns, cfg.warmup, cfg.rate, get)
	}
	stopProfile, err := cpuacct.Profile(cfg.cpuprofile, string(d))
	if err != nil {
		return result{}, err
	}
	meter := cpuacct.Start(cpuacct.Config{RedisAddr: bed.RedisAddr(), PostgresDatabase: bed.PostgresDatabase})
	samples, elapsed := loadgen.Run(ctx, cfg.conns, cfg.duration, cfg.rate, get)
	cpu := meter.Stop()
	stopProfile()
	if ctx.Err() != nil {
		return result{}, ctx.Err()
	}

	r.Requests, r.Elapsed, r.Load, r.CPU = len(samples), elapsed, testbed.Load(), map[string]time.Duration{}
	for g, c := range cpu {
		r.CPU[g] = c / time.Duration(max(1, len(samples)))
	}
	took := make([]time.Duration, 0, len(samples))
	lag := make([]time.Duration, 0, len(samples))
	service := make([]time.Duration, 0, len(samples))
	for _, s := range samples {
		took, lag, service = append(took, s.Took), append(lag, s.Lag), append(service, s.Took-s.Lag)
		if s.Err == nil && s.Status == http.StatusOK {
			r.OK++
			continue
		}
		r.Errors++
		if r.FirstErr == "" {
			r.FirstErr = fmt.Sprintf("status %d %v %s", s.Status, s.Err, s.Body)
		}
	}
	r.Latency, r.Lag, r.Service = latency.Summarize(took), latency.Summarize(lag), latency.Summarize(service)
	r.PerSec = float64(r.OK) / elapsed.Seconds()
	r.Pass = r.Latency.P99 < targetP99 && r.PerSec >= targetShare*cfg.rate && r.Errors == 0
	return r, nil
}

// prepare seeds the demo universe and runs one full recalculation, with a
// pool of its own that is closed before the API starts.
func prepare(ctx context.Context, bed *testbed.Bed, cfg config, r *result) error {
	db, err := bed.OpenDB(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	store := sqlstore.New(db, sqlstore.Config{})
	t0 := time.Now()
	if _, err := marketimport.SeedDemo(ctx, store, demo.Config{Assets: cfg.assets, Days: cfg.days}); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	r.Seed = time.Since(t0)
	engine, err := recalc.New(store, recalc.Config{})
	if err != nil {
		return err
	}
	t0 = time.Now()
	res, err := engine.Run(ctx, recalc.Scope{}, nil)
	if err != nil {
		return fmt.Errorf("recalculate: %w", err)
	}
	r.Recalc, r.Rows = time.Since(t0), res.Rows
	return nil
}

// check gets the page once and returns its number of items and its size.
func check(ctx context.Context, client *http.Client, url, auth string) (items, size int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Authorization", auth)
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("first request: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, fmt.Errorf("first request: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("first request: status %d: %s", resp.StatusCode, b[:min(len(b), 300)])
	}
	var page struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(b, &page); err != nil {
		return 0, 0, fmt.Errorf("first request: %w", err)
	}
	if len(page.Items) == 0 {
		return 0, len(b), errors.New("first request: no scores in the answer")
	}
	return len(page.Items), len(b), nil
}

func printTable(w io.Writer, cfg config, rs []result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "engine\toffered/s\trequests/s\tp50 ms\tp95 ms\tp99 ms\tmax ms\terrors\tCPU µs/req\ttarget\tresult\tload")
	for _, r := range rs {
		verdict := "FAIL"
		if r.Pass {
			verdict = "PASS"
		}
		var cpu time.Duration
		for _, c := range r.CPU {
			cpu += c
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%d\tp99 < %s, ≥ %.0f%% of offered\t%s\t%s\n", r.Engine, cfg.rate, r.PerSec,
			latency.MS(r.Latency.P50), latency.MS(r.Latency.P95), latency.MS(r.Latency.P99), latency.MS(r.Latency.Max),
			r.Errors, cpu.Microseconds(), targetP99, targetShare*100, verdict, r.Load)
	}
	tw.Flush()
}
