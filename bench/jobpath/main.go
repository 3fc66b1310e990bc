// Command jobpath measures target P1 of the job spine: the rate of no-op
// system:probe jobs (one step, 0 ms) through the full job path against the
// rate of bare asynq tasks, on the same Redis and machine, in one run.
//
// Full path: job.Service.Submit (job row and "queued" event in SQL, asynq
// enqueue with the job ID as task ID; the queued event is not published, as
// nobody can follow a job before its ID is returned), then the
// worker's job.Runner middleware around the probe handler (the start, one
// Report and the success, queued one after the other and committed
// together, the success after the attempt has returned to asynq; the
// store publishes the events each commit made durable, together, on the
// bus). A run ends when the last success is committed. Bare: asynq
// enqueue of a no-op task with the same payload and options, and an asynq
// server whose handler does nothing. Both use the same server
// configuration as cmd/worker (concurrency, queues, 100 ms task check
// interval) and are timed the same way. The producers (and the full
// path's API side) run in this process; the asynq server (and the full
// path's worker side) in a process of its own for each run, as cmd/api and
// cmd/worker do, each with its own database pool and Redis client
// (-worker inprocess runs it in this process instead).
//
// Usage:
//
//	go run ./bench/jobpath [-engines sqlite,postgres] [-n 10000] [-concurrency 20]
//	    [-producers 20] [-mode pipelined|phased] [-worker process|inprocess]
//	    [-rounds 1] [-cpuprofile FILE]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
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
	if spec, ok := os.LookupEnv(serveEnv); ok {
		if err := serve(ctx, spec, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "jobpath worker:", err)
			os.Exit(1)
		}
		return
	}
	if _, err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "jobpath:", err)
		os.Exit(1)
	}
}

// Targets of P1: full-path rate over bare rate.
var targets = map[database.Dialect]float64{database.Postgres: 0.8, database.SQLite: 0.5}

const (
	modePipelined = "pipelined" // producers enqueue while the server processes
	modePhased    = "phased"    // enqueue all, then start the server
	bareType      = "bench:noop"
)

// probePayload is the params of a no-op probe, as the API canonicalises
// them; the bare tasks carry the same bytes.
var probePayload = []byte(`{"steps":1,"step_ms":0}`)

type config struct {
	engines     []database.Dialect
	n           int
	concurrency int
	producers   int
	mode        string
	worker      string // workerProcess or workerInProcess
	rounds      int
	redisURL    string
	postgresURL string
	tuning      testbed.Tuning
	cpuprofile  string
	timeout     time.Duration
}

// rate is one timed run of n tasks or jobs.
type rate struct {
	Total   time.Duration // first enqueue to last completion
	Enqueue time.Duration // phased mode: time to enqueue everything
	Process time.Duration // phased mode: server start to last completion
	PerSec  float64       // n / Total
	// CPU is the CPU time of the run by group (cpuacct.Self, Redis,
	// Postgres), and CPUPerTask its sum over n.
	CPU        map[string]time.Duration
	CPUPerTask time.Duration
}

// result is the outcome of one engine.
type result struct {
	Engine database.Dialect
	Bare   rate // median round
	Full   rate // median round
	// Ratio is the median over rounds of the full path's rate over the
	// bare rate of the same round (RoundRatios): a round's two runs follow
	// each other, so a machine that speeds up or slows down between rounds
	// moves both.
	Ratio       float64
	RoundRatios []float64
	// Every round's bare and full runs, in order.
	BareRounds, FullRounds []rate
	Target                 float64
	Pass                   bool
	Succeeded              int   // jobs succeeded in SQL after every round
	Events                 int   // job events in SQL
	Published              int64 // notifications published on the bus by the full path
	Messages               int64 // Redis messages that carried them
	Ops                    []opSummary
	Load                   string
	// Job writes and the commits that wrote them (group commit), on the
	// API side and on the worker side, over every round.
	APIWrites, WorkerWrites sqlstore.JobWriteStats
}

func run(ctx context.Context, args []string, stdout io.Writer) ([]result, error) {
	cfg, err := parseFlags(args)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stdout, "P1 job path: n=%d concurrency=%d producers=%d mode=%s worker=%s rounds=%d redis=%s\n",
		cfg.n, cfg.concurrency, cfg.producers, cfg.mode, cfg.worker, cfg.rounds, cfg.redisURL)
	fmt.Fprintf(stdout, "load average before: %s\n", testbed.Load())
	var results []result
	for _, d := range cfg.engines {
		r, err := measureEngine(ctx, cfg, d)
		if err != nil {
			return results, fmt.Errorf("%s: %w", d, err)
		}
		results = append(results, r)
		fmt.Fprintf(stdout, "%s: bare %.0f/s (%s), full %.0f/s (%s); load %s\n",
			d, r.Bare.PerSec, r.Bare.Total.Round(time.Millisecond), r.Full.PerSec, r.Full.Total.Round(time.Millisecond), r.Load)
		fmt.Fprintf(stdout, "  CPU per task: bare %s, full %s\n", cpuLine(r.Bare, cfg.n), cpuLine(r.Full, cfg.n))
		fmt.Fprintf(stdout, "  %s\n", budgetLine(r, cfg.n))
		if len(r.RoundRatios) > 1 {
			fmt.Fprintf(stdout, "  ratio of each round: %s (median %.2f)\n", formatRatios(r.RoundRatios), r.Ratio)
			fmt.Fprintf(stdout, "  rate of each round, bare/full per s: %s\n", formatRates(r.BareRounds, r.FullRounds))
		}
		fmt.Fprintf(stdout, "  job writes: API %d in %d commits, worker %d in %d commits; %d events published in %d Redis messages\n",
			r.APIWrites.Writes, r.APIWrites.Commits, r.WorkerWrites.Writes, r.WorkerWrites.Commits, r.Published, r.Messages)
		for _, o := range r.Ops {
			fmt.Fprintf(stdout, "  %-22s %s\n", o.Name, o.Latency)
		}
		if cfg.mode == modePhased {
			fmt.Fprintf(stdout, "%s phases: bare enqueue %.0f/s process %.0f/s; full submit %.0f/s process %.0f/s\n", d,
				perSec(cfg.n, r.Bare.Enqueue), perSec(cfg.n, r.Bare.Process), perSec(cfg.n, r.Full.Enqueue), perSec(cfg.n, r.Full.Process))
		}
	}
	printTable(stdout, results)
	fmt.Fprintf(stdout, "load average after: %s\n", testbed.Load())
	return results, nil
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("jobpath", flag.ContinueOnError)
	engines := fs.String("engines", "sqlite,postgres", "engines to measure, comma-separated")
	var cfg config
	tuning := testbed.TuningFlags(fs)
	fs.IntVar(&cfg.n, "n", 10_000, "tasks (and jobs) per run")
	fs.IntVar(&cfg.concurrency, "concurrency", 20, "asynq server concurrency (same for both)")
	fs.IntVar(&cfg.producers, "producers", 20, "goroutines enqueueing or submitting")
	fs.StringVar(&cfg.mode, "mode", modePipelined, "pipelined (enqueue while processing) or phased (enqueue all, then process)")
	fs.StringVar(&cfg.worker, "worker", workerProcess, "where the asynq server runs: process (its own, as cmd/worker) or inprocess (this one)")
	fs.IntVar(&cfg.rounds, "rounds", 1, "runs of each kind per engine, alternating; the median is reported")
	fs.StringVar(&cfg.redisURL, "redis", testbed.DefaultRedisURL, "Redis URL with the database index to use (flushed!)")
	fs.StringVar(&cfg.postgresURL, "postgres", testbed.DefaultPostgresURL, "PostgreSQL admin URL (creates and drops its own database)")
	fs.StringVar(&cfg.cpuprofile, "cpuprofile", "", "write a CPU profile of each full-path run to FILE.<engine>, and of the worker processes to FILE.<engine>.{bare,full}.worker")
	fs.DurationVar(&cfg.timeout, "timeout", 5*time.Minute, "give up on a run after this long")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	cfg.tuning = *tuning
	var err error
	if cfg.engines, err = testbed.Dialects(*engines); err != nil {
		return cfg, err
	}
	switch {
	case cfg.n < 1 || cfg.concurrency < 1 || cfg.producers < 1 || cfg.rounds < 1:
		return cfg, errors.New("-n, -concurrency, -producers and -rounds must be at least 1")
	case cfg.mode != modePipelined && cfg.mode != modePhased:
		return cfg, fmt.Errorf("-mode must be %s or %s", modePipelined, modePhased)
	case cfg.worker != workerProcess && cfg.worker != workerInProcess:
		return cfg, fmt.Errorf("-worker must be %s or %s", workerProcess, workerInProcess)
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

	ops := &opTimes{}
	full, err := newFullPath(ctx, bed, ops)
	if err != nil {
		return result{}, err
	}
	defer full.close()

	bareRedis, err := bed.Redis(ctx)
	if err != nil {
		return result{}, err
	}
	defer bareRedis.Close()
	bareClient := &timedQueue{client: asynq.NewClientFromRedisClient(bareRedis), ops: ops, op: opBareEnqueue}

	spec := func(kind string) workerSpec {
		s := workerSpec{Kind: kind, Bed: bed.Share(), N: cfg.n, Concurrency: cfg.concurrency}
		if cfg.cpuprofile != "" && cfg.worker == workerProcess {
			s.CPUProfile = cfg.cpuprofile + "." + string(d) + "." + kind
		}
		return s
	}
	var r result
	for round := range cfg.rounds {
		b, _, err := measure(ctx, cfg, bed, spec(kindBare), bareEnqueue(bareClient))
		if err != nil {
			return result{}, fmt.Errorf("bare round %d: %w", round+1, err)
		}
		r.BareRounds = append(r.BareRounds, b)
		if err := bed.FlushRedis(ctx); err != nil {
			return result{}, err
		}
		stopProfile, err := cpuacct.Profile(cfg.cpuprofile, string(d))
		if err != nil {
			return result{}, err
		}
		f, rep, err := measure(ctx, cfg, bed, spec(kindFull), full.submit)
		stopProfile()
		if err != nil {
			return result{}, fmt.Errorf("full round %d: %w", round+1, err)
		}
		r.FullRounds = append(r.FullRounds, f)
		r.RoundRatios = append(r.RoundRatios, f.PerSec/b.PerSec)
		for op, ds := range rep.Ops {
			ops.add(op, ds)
		}
		r.WorkerWrites.Writes += rep.Writes.Writes
		r.WorkerWrites.Commits += rep.Writes.Commits
		r.Published += rep.Published
		r.Messages += rep.Messages
		if err := bed.FlushRedis(ctx); err != nil {
			return result{}, err
		}
	}
	r.Engine, r.Bare, r.Full, r.Target, r.Load = d, median(r.BareRounds), median(r.FullRounds), targets[d], testbed.Load()
	r.Ratio = medianOf(r.RoundRatios)
	r.Pass = r.Ratio >= r.Target
	published, messages, err := full.flush(ctx)
	if err != nil {
		return r, err
	}
	r.Published += published
	r.Messages += messages
	r.APIWrites = full.store.JobWriteStats()
	r.Ops = ops.summaries()
	if r.Succeeded, r.Events, err = full.counts(ctx); err != nil {
		return r, err
	}
	if want := cfg.rounds * cfg.n; r.Succeeded != want || r.Events != 4*want || r.Published != int64(3*want) {
		return r, fmt.Errorf("full path incomplete: %d jobs succeeded, %d events recorded, %d published; want %d, %d, %d",
			r.Succeeded, r.Events, r.Published, want, 4*want, 3*want)
	}
	return r, nil
}

// medianOf returns the median of xs (the mean of the two middle values of
// an even count), 0 for none.
func medianOf(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	xs = slices.Sorted(slices.Values(xs))
	m := len(xs) / 2
	if len(xs)%2 == 0 {
		return (xs[m-1] + xs[m]) / 2
	}
	return xs[m]
}

// median returns the round with the median rate (the lower middle one of
// an even count).
func median(rs []rate) rate {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b rate) int { return int(a.Total - b.Total) })
	return rs[(len(rs)-1)/2]
}

// enqueueFunc enqueues (or submits) task number i.
type enqueueFunc func(ctx context.Context, i int) error

// measure times n tasks through the worker side that spec describes, fed
// by cfg.producers goroutines calling enqueue. The clock stops when the
// worker side has processed the last task: on the full path, once its
// success is committed (the Runner records a success after asynq hears of
// it, and a job counts once its success is committed).
func measure(ctx context.Context, cfg config, bed *testbed.Bed, spec workerSpec, enqueue enqueueFunc) (rate, workerReport, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	var r rate
	w, err := startWorker(ctx, cfg.worker, spec)
	if err != nil {
		return r, workerReport{}, err
	}
	defer w.close()

	meter := cpuacct.Start(cpuacct.Config{RedisAddr: bed.RedisAddr(), PostgresDatabase: bed.PostgresDatabase})
	defer func() {
		if meter != nil {
			meter.Stop()
		}
	}()
	start := time.Now()
	if cfg.mode == modePhased {
		if err := produce(ctx, cfg.n, cfg.producers, enqueue); err != nil {
			return r, workerReport{}, err
		}
		r.Enqueue = time.Since(start)
	}
	procStart := time.Now()
	if err := w.start(); err != nil {
		return r, workerReport{}, err
	}
	produced := make(chan error, 1)
	if cfg.mode == modePipelined {
		go func() { produced <- produce(ctx, cfg.n, cfg.producers, enqueue) }()
	} else {
		produced <- nil
	}
	waited := make(chan error, 1)
	go func() { waited <- w.wait(ctx) }()
	select {
	case err := <-waited:
		if err != nil {
			return r, workerReport{}, err
		}
	case err := <-produced:
		if err != nil {
			return r, workerReport{}, err // the deferred cancel ends the wait
		}
		if err := <-waited; err != nil {
			return r, workerReport{}, err
		}
	}
	r.Total = time.Since(start)
	r.Process = time.Since(procStart)
	r.PerSec = perSec(cfg.n, r.Total)
	r.CPU, meter = meter.Stop(), nil
	rep, err := w.report(ctx)
	if err != nil {
		return r, rep, err
	}
	if rep.CPU > 0 {
		r.CPU[groupWorker] = rep.CPU
	}
	for _, d := range r.CPU {
		r.CPUPerTask += d / time.Duration(cfg.n)
	}
	return r, rep, nil
}

// groupWorker is the CPU time of a worker process, beside cpuacct's groups.
const groupWorker = "worker"

// produce calls enqueue for 0..n-1 from the given number of goroutines.
func produce(ctx context.Context, n, producers int, enqueue enqueueFunc) error {
	var next atomic.Int64
	errc := make(chan error, producers)
	var wg sync.WaitGroup
	for range producers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := enqueue(ctx, i); err != nil {
					errc <- fmt.Errorf("enqueue %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	return <-errc
}

func perSec(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// newServer returns an asynq server with cmd/worker's concurrency, queues
// and task check interval (its retry settings play no part here).
func newServer(bed *testbed.Bed, concurrency int) *asynq.Server {
	opt, err := asynq.ParseRedisURI(bed.RedisURL)
	if err != nil {
		panic(err) // the bed's URL was checked when it was made
	}
	return asynq.NewServer(opt, asynq.Config{
		Concurrency:       concurrency,
		TaskCheckInterval: 100 * time.Millisecond,
		Queues:            map[string]int{job.QueueCritical: 6, job.QueueDefault: 3, job.QueueLow: 1},
		LogLevel:          asynq.WarnLevel,
	})
}

// bareEnqueue enqueues no-op tasks with the options Service.Submit gives a
// probe (queue, retries, timeout); asynq picks the task ID.
func bareEnqueue(client job.Queue) enqueueFunc {
	return func(ctx context.Context, _ int) error {
		_, err := client.EnqueueContext(ctx, asynq.NewTask(bareType, probePayload),
			asynq.Queue(job.QueueDefault), asynq.MaxRetry(3), asynq.Timeout(2*time.Hour))
		return err
	}
}

// fullPath is the API side (Service) of the job path, on its own pool and
// Redis client; its worker side is a workerSide of kind full.
type fullPath struct {
	svc       *job.Service
	db        *database.DB
	store     *sqlstore.Store
	bus       *events.Bus
	published atomic.Int64
	closers   []func() error
	principal auth.Principal
	ops       *opTimes
}

func newFullPath(ctx context.Context, bed *testbed.Bed, ops *opTimes) (_ *fullPath, err error) {
	f := &fullPath{ops: ops, principal: auth.Principal{Subject: "bench", Roles: []string{authz.RoleUser}}}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	az, err := authz.New(authz.Config{})
	if err != nil {
		return nil, err
	}
	registry, err := job.NewRegistry(tasks.Specs()...)
	if err != nil {
		return nil, err
	}
	if f.db, err = bed.OpenDB(ctx); err != nil {
		return nil, err
	}
	f.closers = append(f.closers, f.db.Close)
	rdb, err := bed.Redis(ctx)
	if err != nil {
		return nil, err
	}
	f.closers = append(f.closers, rdb.Close)
	queue := &timedQueue{client: asynq.NewClientFromRedisClient(rdb), ops: ops, op: opEnqueue}
	inspector := asynq.NewInspectorFromRedisClient(rdb)
	f.bus = events.NewBus(rdb, events.Config{Channel: bed.Channel})
	pub := &countingPublisher{bus: f.bus, n: &f.published}
	f.store = sqlstore.New(f.db, sqlstore.Config{Announcer: job.NewAnnouncer(pub, nil)})
	f.svc = job.NewService(&timedStore{Store: f.store, ops: ops}, queue, inspector, az, registry, job.ServiceConfig{})
	return f, nil
}

func (f *fullPath) close() {
	for _, c := range slices.Backward(f.closers) {
		c()
	}
}

func (f *fullPath) submit(ctx context.Context, _ int) error {
	defer f.ops.observe(opSubmit, time.Now())
	_, _, err := f.svc.Submit(ctx, f.principal, job.SubmitRequest{Type: tasks.TypeProbe, Params: probePayload})
	return err
}

// counts returns the succeeded jobs and the job events recorded in SQL.
func (f *fullPath) counts(ctx context.Context) (succeeded, evs int, err error) {
	if err := f.db.GetContext(ctx, &succeeded, `SELECT COUNT(*) FROM jobs WHERE status = 'succeeded'`); err != nil {
		return 0, 0, err
	}
	if err := f.db.GetContext(ctx, &evs, `SELECT COUNT(*) FROM job_events`); err != nil {
		return 0, 0, err
	}
	return succeeded, evs, nil
}

// countingPublisher counts what the job path publishes on the bus.
type countingPublisher struct {
	bus *events.Bus
	n   *atomic.Int64
}

var _ job.AsyncPublisher = (*countingPublisher)(nil)

func (p *countingPublisher) PublishAsync(ctx context.Context, topic string, payload []byte) {
	p.n.Add(1)
	p.bus.PublishAsync(ctx, topic, payload)
}

// flush waits until the API side's publications are sent and returns how
// many there were and how many Redis messages carried them.
func (f *fullPath) flush(ctx context.Context) (published, messages int64, err error) {
	if err := f.bus.Flush(ctx); err != nil {
		return 0, 0, fmt.Errorf("publish events: %w", err)
	}
	return f.published.Load(), f.bus.Stats().Messages, nil
}

// Operations timed on the way, to show where a job's time goes.
const (
	opBareEnqueue = "bare: asynq enqueue"
	opSubmit      = "full: Service.Submit"
	opCreateJob   = "full: store.CreateJob"
	opEnqueue     = "full: asynq enqueue"
	opAttempt     = "full: Runner attempt"
	opSucceed     = "full: store.SucceedAsync"
)

var opOrder = []string{opBareEnqueue, opSubmit, opCreateJob, opEnqueue, opAttempt, opSucceed}

// opTimes collects the durations of operations.
type opTimes struct {
	mu sync.Mutex
	d  map[string][]time.Duration
}

// opSummary is the latency of one operation.
type opSummary struct {
	Name    string
	Latency latency.Summary
}

func (o *opTimes) observe(op string, start time.Time) {
	d := time.Since(start)
	o.mu.Lock()
	if o.d == nil {
		o.d = map[string][]time.Duration{}
	}
	o.d[op] = append(o.d[op], d)
	o.mu.Unlock()
}

// add records durations of op observed elsewhere (a worker process).
func (o *opTimes) add(op string, ds []time.Duration) {
	o.mu.Lock()
	if o.d == nil {
		o.d = map[string][]time.Duration{}
	}
	o.d[op] = append(o.d[op], ds...)
	o.mu.Unlock()
}

// all returns a copy of every duration recorded, by operation.
func (o *opTimes) all() map[string][]time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[string][]time.Duration, len(o.d))
	for op, ds := range o.d {
		out[op] = slices.Clone(ds)
	}
	return out
}

func (o *opTimes) middleware(op string) asynq.MiddlewareFunc {
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			defer o.observe(op, time.Now())
			return next.ProcessTask(ctx, t)
		})
	}
}

func (o *opTimes) summaries() []opSummary {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []opSummary
	for _, op := range opOrder {
		if ds := o.d[op]; len(ds) > 0 {
			out = append(out, opSummary{Name: op, Latency: latency.Summarize(ds)})
		}
	}
	return out
}

// timedStore times the store calls of the job path.
type timedStore struct {
	*sqlstore.Store
	ops *opTimes
}

var (
	_ job.Store    = (*timedStore)(nil)
	_ job.RunStore = (*timedStore)(nil)
)

func (s *timedStore) CreateJob(ctx context.Context, j tokenlysis.Job) (tokenlysis.Job, bool, error) {
	defer s.ops.observe(opCreateJob, time.Now())
	return s.Store.CreateJob(ctx, j)
}

// SucceedAsync is timed from the call to the commit of the success
// (which usually carries the attempt's start and report too), as the
// Runner hears of it.
func (s *timedStore) SucceedAsync(ctx context.Context, id string, result json.RawMessage, then func(applied bool)) func() (tokenlysis.JobEvent, error) {
	start := time.Now()
	return s.Store.SucceedAsync(ctx, id, result, func(applied bool) {
		s.ops.observe(opSucceed, start)
		then(applied)
	})
}

// timedQueue times asynq enqueues.
type timedQueue struct {
	client *asynq.Client
	ops    *opTimes
	op     string
}

var _ job.Queue = (*timedQueue)(nil)

func (q *timedQueue) EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	defer q.ops.observe(q.op, time.Now())
	return q.client.EnqueueContext(ctx, task, opts...)
}

// attemptMetrics is the worker's attempt counter (cmd/worker has the same).
type attemptMetrics struct{ attempts *prometheus.CounterVec }

func newAttemptMetrics() *attemptMetrics {
	m := &attemptMetrics{attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenlysis_job_attempts_total", Help: "Job attempts by type and outcome.",
	}, []string{"type", "outcome"})}
	prometheus.NewRegistry().MustRegister(m.attempts)
	return m
}

func (m *attemptMetrics) AttemptDone(jobType, outcome string, _ error) {
	m.attempts.WithLabelValues(jobType, outcome).Inc()
}

func formatRatios(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, " ")
}

func formatRates(bare, full []rate) string {
	parts := make([]string, len(bare))
	for i := range bare {
		parts[i] = fmt.Sprintf("%.0f/%.0f", bare[i].PerSec, full[i].PerSec)
	}
	return strings.Join(parts, " ")
}

// cpuLine formats the CPU time per task of a run by group.
func cpuLine(r rate, n int) string {
	per := func(g string) string { return fmt.Sprintf("%dµs", (r.CPU[g] / time.Duration(n)).Microseconds()) }
	return fmt.Sprintf("%dµs (self %s, worker process %s, redis %s, postgres %s)", r.CPUPerTask.Microseconds(),
		per(cpuacct.Self), per(groupWorker), per(cpuacct.Redis), per(cpuacct.Postgres))
}

// budgetLine says how much CPU a job the target leaves the full path (a
// run bound by CPU goes as fast as its CPU per job allows, so a ratio of
// rates r needs full ≤ bare ÷ r) and how far the full path is from it, with
// the PostgreSQL server's share when it has one (SQLite's is the
// benchmark's own).
func budgetLine(r result, n int) string {
	budget := time.Duration(float64(r.Bare.CPUPerTask) / r.Target)
	full := r.Full.CPUPerTask
	gap := fmt.Sprintf("%dµs over", (full - budget).Microseconds())
	if full <= budget {
		gap = fmt.Sprintf("%dµs under", (budget - full).Microseconds())
	}
	line := fmt.Sprintf("CPU budget at %.1f×: the full path may spend %dµs a job (bare ÷ %.1f); it spent %dµs, %s",
		r.Target, budget.Microseconds(), r.Target, full.Microseconds(), gap)
	if pg := r.Full.CPU[cpuacct.Postgres] / time.Duration(n); pg > 0 {
		line += fmt.Sprintf(", of which postgres %dµs (without it %dµs)", pg.Microseconds(), (full - pg).Microseconds())
	}
	return line
}

func printTable(w io.Writer, rs []result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "engine\tbare tasks/s\tfull-path jobs/s\tratio\ttarget\tresult\tCPU µs/task bare\tfull\tCPU ratio\tload")
	for _, r := range rs {
		verdict := "FAIL"
		if r.Pass {
			verdict = "PASS"
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.2f\t≥ %.1f\t%s\t%d\t%d\t%.2f\t%s\n", r.Engine, r.Bare.PerSec, r.Full.PerSec, r.Ratio, r.Target, verdict,
			r.Bare.CPUPerTask.Microseconds(), r.Full.CPUPerTask.Microseconds(), float64(r.Bare.CPUPerTask)/float64(max(1, r.Full.CPUPerTask)), r.Load)
	}
	tw.Flush()
}
