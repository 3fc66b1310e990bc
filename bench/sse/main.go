// Command sse measures target P3 of the job spine, in two parts.
//
// Latency: the time from a handler's progress call to an SSE client
// receiving the event must have p99 < 20 ms with 100 concurrent streams.
// The API runs in-process (api.New on 127.0.0.1:0); each of 100 running
// jobs has one client on GET /api/jobs/{id}/events, and a worker-side
// goroutine per job reports progress the way job.Report does (the store's
// ProgressAsync on the worker's own pool, which lingers for other writes
// before it commits, then a publish on the worker's own bus), carrying the send time in the event's data. Clients compare their
// receive time with it (same process, same clock).
//
// Memory: the RSS of the API with 5,000 idle SSE streams open must stay
// under 300 MB. The api binary runs as a separate process (built with go
// build unless -api-bin names one), its VmRSS is read from
// /proc/PID/status before and after 5,000 streams are opened on jobs that
// stay queued (no worker runs).
//
// Usage:
//
//	go run ./bench/sse [-what latency,rss] [-engines sqlite,postgres] [-jobs 100]
//	    [-reports 50] [-interval 200ms] [-streams 5000] [-rss-engine sqlite] [-api-bin PATH]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/tokenlysis/tokenlysis/bench/internal/cpuacct"
	"github.com/tokenlysis/tokenlysis/bench/internal/latency"
	"github.com/tokenlysis/tokenlysis/bench/internal/testbed"
	"github.com/tokenlysis/tokenlysis/internal/auth"
	"github.com/tokenlysis/tokenlysis/internal/authz"
	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/events"
	"github.com/tokenlysis/tokenlysis/internal/job"
	"github.com/tokenlysis/tokenlysis/internal/sqlstore"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
	"github.com/tokenlysis/tokenlysis/tasks"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sse:", err)
		os.Exit(1)
	}
}

// Targets of P3.
const (
	targetP99 = 20 * time.Millisecond
	targetRSS = 300 << 20
	// maxStreams caps the memory part: the issue asks for 5,000, no more.
	maxStreams = 5000
)

type config struct {
	latency     bool
	rss         bool
	engines     []database.Dialect
	jobs        int
	reports     int
	interval    time.Duration
	streams     int
	rssEngine   database.Dialect
	apiBin      string
	apiEnv      []string
	settle      time.Duration
	redisURL    string
	postgresURL string
	tuning      testbed.Tuning
	cpuprofile  string
	timeout     time.Duration
}

// report is everything one run measured.
type report struct {
	Latency []latencyResult
	RSS     *rssResult
}

func run(ctx context.Context, args []string, stdout io.Writer) (report, error) {
	var rep report
	cfg, err := parseFlags(args)
	if err != nil {
		return rep, err
	}
	fmt.Fprintf(stdout, "load average before: %s\n", testbed.Load())
	if cfg.latency {
		fmt.Fprintf(stdout, "P3 latency: jobs/streams=%d reports=%d interval=%s (%.0f events/s) redis=%s\n",
			cfg.jobs, cfg.reports, cfg.interval, float64(cfg.jobs)/cfg.interval.Seconds(), cfg.redisURL)
		for _, d := range cfg.engines {
			r, err := measureLatency(ctx, cfg, d)
			if err != nil {
				return rep, fmt.Errorf("latency %s: %w", d, err)
			}
			rep.Latency = append(rep.Latency, r)
			fmt.Fprintf(stdout, "%s: report→client %s; store.ProgressAsync %s; load %s\n",
				d, r.Latency, r.Store, r.Load)
		}
		printLatency(stdout, rep.Latency)
	}
	if cfg.rss {
		fmt.Fprintf(stdout, "P3 memory: %d idle streams on the api process (%s)\n", cfg.streams, cfg.rssEngine)
		r, err := measureRSS(ctx, cfg, stdout)
		if err != nil {
			return rep, fmt.Errorf("rss: %w", err)
		}
		rep.RSS = &r
		printRSS(stdout, r)
	}
	fmt.Fprintf(stdout, "load average after: %s\n", testbed.Load())
	return rep, nil
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("sse", flag.ContinueOnError)
	what := fs.String("what", "latency,rss", "parts to run: latency, rss or both")
	engines := fs.String("engines", "sqlite,postgres", "engines of the latency part, comma-separated")
	rssEngine := fs.String("rss-engine", "sqlite", "engine of the memory part")
	var cfg config
	tuning := testbed.TuningFlags(fs)
	fs.IntVar(&cfg.jobs, "jobs", 100, "latency: running jobs, one stream each")
	fs.IntVar(&cfg.reports, "reports", 50, "latency: progress reports per job")
	fs.DurationVar(&cfg.interval, "interval", 200*time.Millisecond, "latency: time between two reports of a job")
	fs.IntVar(&cfg.streams, "streams", maxStreams, "memory: idle streams to open (at most 5000)")
	fs.StringVar(&cfg.apiBin, "api-bin", "", "memory: api binary to run (default: go build ./cmd/api)")
	fs.DurationVar(&cfg.settle, "settle", 2*time.Second, "memory: how long the api is left alone before each RSS reading (the Go runtime forces a GC, which shrinks stacks, every 2 min)")
	fs.Func("api-env", "memory: extra KEY=VALUE for the api process, e.g. GOMEMLIMIT=200MiB (repeatable)", func(v string) error {
		if !strings.Contains(v, "=") {
			return errors.New("want KEY=VALUE")
		}
		cfg.apiEnv = append(cfg.apiEnv, v)
		return nil
	})
	fs.StringVar(&cfg.redisURL, "redis", testbed.DefaultRedisURL, "Redis URL with the database index to use (flushed!)")
	fs.StringVar(&cfg.postgresURL, "postgres", testbed.DefaultPostgresURL, "PostgreSQL admin URL (creates and drops its own database)")
	fs.StringVar(&cfg.cpuprofile, "cpuprofile", "", "latency: write a CPU profile of each engine's run to FILE.<engine>")
	fs.DurationVar(&cfg.timeout, "timeout", 3*time.Minute, "give up on a part after this long")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	cfg.tuning = *tuning
	for _, w := range strings.Split(*what, ",") {
		switch strings.TrimSpace(w) {
		case "latency":
			cfg.latency = true
		case "rss":
			cfg.rss = true
		default:
			return cfg, fmt.Errorf("-what: unknown part %q (want latency, rss)", w)
		}
	}
	var err error
	if cfg.engines, err = testbed.Dialects(*engines); err != nil {
		return cfg, err
	}
	ds, err := testbed.Dialects(*rssEngine)
	if err != nil || len(ds) != 1 {
		return cfg, fmt.Errorf("-rss-engine: want sqlite or postgres")
	}
	cfg.rssEngine = ds[0]
	switch {
	case cfg.jobs < 1 || cfg.reports < 1 || cfg.interval <= 0:
		return cfg, errors.New("-jobs, -reports and -interval must be positive")
	case cfg.settle < 0:
		return cfg, errors.New("-settle must not be negative")
	case cfg.streams < 1 || cfg.streams > maxStreams:
		return cfg, fmt.Errorf("-streams must be from 1 to %d", maxStreams)
	}
	return cfg, nil
}

// latencyResult is the latency part on one engine.
type latencyResult struct {
	Engine   database.Dialect
	Streams  int
	Sent     int             // progress reports made
	Received int             // progress events the clients received
	Latency  latency.Summary // report call to client receipt
	Store    latency.Summary // duration of store.ProgressAsync until committed
	Pass     bool
	Load     string
}

// sent is what a progress event carries in its data.
type sent struct {
	ReportNS int64 `json:"report_ns"` // when the report was made
}

func measureLatency(ctx context.Context, cfg config, d database.Dialect) (_ latencyResult, err error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	bed, err := testbed.New(ctx, testbed.Config{Dialect: d, PostgresURL: cfg.postgresURL, RedisURL: cfg.redisURL,
		Pool: cfg.tuning.Pool, SynchronousCommit: cfg.tuning.SynchronousCommit})
	if err != nil {
		return latencyResult{}, err
	}
	defer func() { err = errors.Join(err, bed.Close(context.WithoutCancel(ctx))) }()
	api, err := bed.StartAPI(ctx)
	if err != nil {
		return latencyResult{}, err
	}
	defer api.Close()
	token, err := api.Token("bench", authz.RoleUser)
	if err != nil {
		return latencyResult{}, err
	}

	// The worker side: its own pool and Redis client, as in cmd/worker.
	wdb, err := bed.OpenDB(ctx)
	if err != nil {
		return latencyResult{}, err
	}
	defer wdb.Close()
	wrdb, err := bed.Redis(ctx)
	if err != nil {
		return latencyResult{}, err
	}
	defer wrdb.Close()
	wbus := events.NewBus(wrdb, events.Config{Channel: bed.Channel})
	w := &reporter{store: sqlstore.New(wdb, sqlstore.Config{Announcer: job.NewAnnouncer(wbus, nil)})}

	// Running jobs, with their queued and started events recorded.
	p := auth.Principal{Subject: "bench", Roles: []string{authz.RoleUser}}
	ids := make([]string, cfg.jobs)
	for i := range ids {
		j, _, err := api.Service.Submit(ctx, p, job.SubmitRequest{Type: tasks.TypeProbe, Params: json.RawMessage(`{"steps":1,"step_ms":0}`)})
		if err != nil {
			return latencyResult{}, fmt.Errorf("submit: %w", err)
		}
		ids[i] = j.ID
		if err := w.record(ctx, j.ID, func(ctx context.Context) (tokenlysis.JobEvent, error) { return w.store.StartAttempt(ctx, j.ID) }); err != nil {
			return latencyResult{}, fmt.Errorf("start: %w", err)
		}
	}

	// One stream per job; each is live once it has the started event (seq 2).
	tr := &http.Transport{MaxIdleConnsPerHost: cfg.jobs, MaxConnsPerHost: 0}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	streams := make([]*stream, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		streams[i] = &stream{live: make(chan struct{})}
		wg.Go(func() { streams[i].follow(ctx, client, api.URL+"/api/jobs/"+id+"/events", "Bearer "+token, 2) })
	}
	for _, s := range streams {
		select {
		case <-s.live:
		case <-ctx.Done():
			return latencyResult{}, fmt.Errorf("streams did not start: %w", ctx.Err())
		}
	}

	stopProfile, err := cpuacct.Profile(cfg.cpuprofile, string(d))
	if err != nil {
		return latencyResult{}, err
	}
	defer stopProfile()
	storeTimes := make([][]time.Duration, len(ids))
	errc := make(chan error, len(ids))
	var reporters sync.WaitGroup
	for i, id := range ids {
		reporters.Go(func() {
			// Spread the reporters over the interval, as jobs started at
			// different times would be.
			next := time.Now().Add(rand.N(cfg.interval))
			for n := 1; n <= cfg.reports; n++ {
				select {
				case <-ctx.Done():
					errc <- ctx.Err()
					return
				case <-time.After(time.Until(next)):
				}
				next = next.Add(cfg.interval)
				took, err := w.progress(ctx, id, n*100/cfg.reports)
				if err != nil {
					errc <- err
					return
				}
				storeTimes[i] = append(storeTimes[i], took)
			}
			errc <- w.record(ctx, id, func(ctx context.Context) (tokenlysis.JobEvent, error) { return w.store.Succeed(ctx, id, nil) })
		})
	}
	reporters.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			return latencyResult{}, fmt.Errorf("report: %w", err)
		}
	}
	wg.Wait() // every stream ends at the succeeded event
	stopProfile()

	r := latencyResult{Engine: d, Streams: len(streams), Sent: cfg.jobs * cfg.reports, Load: testbed.Load()}
	var lat []time.Duration
	for _, s := range streams {
		if s.err != nil {
			return r, fmt.Errorf("stream: %w", s.err)
		}
		r.Received += len(s.latency)
		lat = append(lat, s.latency...)
	}
	r.Latency, r.Store = latency.Summarize(lat), latency.Summarize(slices.Concat(storeTimes...))
	r.Pass = r.Received == r.Sent && r.Latency.P99 < targetP99
	if r.Received != r.Sent {
		return r, fmt.Errorf("clients received %d progress events of %d sent", r.Received, r.Sent)
	}
	return r, nil
}

// reporter is the worker side: it records events with the store, as
// job.Report and the job.Runner middleware do, and the store publishes
// them on the bus once committed, as in cmd/worker.
type reporter struct {
	store *sqlstore.Store
}

func (w *reporter) record(ctx context.Context, id string, do func(context.Context) (tokenlysis.JobEvent, error)) error {
	_, err := do(ctx)
	return err
}

// progress reports percent for job id, with the report time in the data
// (job.Report encodes its data argument the same way). It returns how long
// the store took.
func (w *reporter) progress(ctx context.Context, id string, percent int) (time.Duration, error) {
	start := time.Now()
	data, _ := json.Marshal(sent{ReportNS: start.UnixNano()})
	_, err := w.store.ProgressAsync(context.WithoutCancel(ctx), id, tokenlysis.JobEvent{
		Kind: tokenlysis.EventProgress, Percent: percent, Message: fmt.Sprintf("%d%%", percent), Data: data,
	})()
	return time.Since(start), err
}

// stream is one SSE client.
type stream struct {
	live    chan struct{} // closed once the event with seq liveSeq arrived
	latency []time.Duration
	err     error
}

// follow reads the stream at url until it ends (after a terminal event)
// or ctx ends, timing every progress event.
func (s *stream) follow(ctx context.Context, client *http.Client, url, authHeader string, liveSeq int64) {
	var once sync.Once
	markLive := func() { once.Do(func() { close(s.live) }) }
	defer markLive() // never leave a waiter hanging
	err := readEvents(ctx, client, url, authHeader, func(ev tokenlysis.JobEvent) bool {
		now := time.Now()
		if ev.Seq >= liveSeq {
			markLive()
		}
		if ev.Kind == tokenlysis.EventProgress {
			var d sent
			if err := json.Unmarshal(ev.Data, &d); err == nil && d.ReportNS > 0 {
				s.latency = append(s.latency, now.Sub(time.Unix(0, d.ReportNS)))
			}
		}
		return !ev.Kind.Terminal()
	})
	if err != nil && ctx.Err() == nil {
		s.err = err
	}
}

// readEvents opens an SSE stream and calls fn for each event until fn
// returns false, the stream ends or ctx ends.
func readEvents(ctx context.Context, client *http.Client, url, authHeader string, fn func(tokenlysis.JobEvent) bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", authHeader)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("GET %s: status %d: %s", url, resp.StatusCode, b)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		data, ok := bytes.CutPrefix(line, []byte("data: "))
		if !ok {
			continue
		}
		var ev tokenlysis.JobEvent
		if err := json.Unmarshal(data, &ev); err != nil {
			return fmt.Errorf("event data %q: %w", data, err)
		}
		if !fn(ev) {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("stream ended before a terminal event")
}

func printLatency(w io.Writer, rs []latencyResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "engine\tstreams\tevents\tp50 ms\tp95 ms\tp99 ms\tmax ms\tstore p99 ms\ttarget\tresult\tload")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%d\t%d/%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\tp99 < %s\t%s\t%s\n", r.Engine, r.Streams,
			r.Received, r.Sent, latency.MS(r.Latency.P50), latency.MS(r.Latency.P95), latency.MS(r.Latency.P99), latency.MS(r.Latency.Max),
			latency.MS(r.Store.P99), targetP99, verdict(r.Pass), r.Load)
	}
	tw.Flush()
}

func verdict(pass bool) string {
	if pass {
		return "PASS"
	}
	return "FAIL"
}
