// Command worker runs Tokenlysis jobs: an asynq server whose one
// middleware (job.Runner) keeps each job's SQL record and event log in
// step, plus housekeeping: the purge of old finished jobs and, every
// minute, the reconciler that re-enqueues unfinished jobs whose task was
// lost (e.g. a Redis restarted without persistence).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/tokenlysis/tokenlysis/internal/coingecko"
	"github.com/tokenlysis/tokenlysis/internal/config"
	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/demo"
	"github.com/tokenlysis/tokenlysis/internal/errreport"
	"github.com/tokenlysis/tokenlysis/internal/events"
	"github.com/tokenlysis/tokenlysis/internal/feargreed"
	"github.com/tokenlysis/tokenlysis/internal/job"
	"github.com/tokenlysis/tokenlysis/internal/marketimport"
	"github.com/tokenlysis/tokenlysis/internal/recalc"
	"github.com/tokenlysis/tokenlysis/internal/sqlstore"
	"github.com/tokenlysis/tokenlysis/migrations"
	"github.com/tokenlysis/tokenlysis/tasks"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string, stderr io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	log := cfg.NewLogger(stderr)
	cfg.ApplyRuntime()

	db, err := migrations.OpenCurrent(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()

	redisOpt, err := cfg.Redis()
	if err != nil {
		return err
	}
	rdb := redisOpt.NewClient()
	defer rdb.Close()
	bus := events.NewBus(rdb, events.Config{Channel: cfg.EventsChannel(), Logger: log})
	defer bus.Flush(context.WithoutCancel(ctx)) // what the last commits announced
	// The store publishes the job events it commits, a commit's together.
	store := sqlstore.New(db, sqlstore.Config{Announcer: job.NewAnnouncer(bus, log)})

	reporter, err := errreport.New(cfg.SentryDSN, cfg.Env, "")
	if err != nil {
		return fmt.Errorf("TOKENLYSIS_SENTRY_DSN: %w", err)
	}
	defer reporter.Flush(2 * time.Second)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	obs := newAttemptObserver(reg, reporter)
	runner := job.NewRunner(store, job.RunnerConfig{Logger: log, Observer: obs})

	registry, err := job.NewRegistry(tasks.Specs()...)
	if err != nil {
		return err
	}
	registry = registry.WithQueuePrefix(cfg.RedisPrefix)

	srv := asynq.NewServer(redisOpt, asynq.Config{
		Concurrency: cfg.Concurrency,
		// Poll idle queues often: a job submitted to an idle worker starts
		// within 100 ms rather than asynq's default second.
		TaskCheckInterval: 100 * time.Millisecond,
		// Retries wait in asynq's retry set until the forwarder moves them;
		// check at least as often as the shortest retry delay.
		DelayedTaskCheckInterval: max(min(cfg.RetryBaseDelay, 5*time.Second), 50*time.Millisecond),
		Queues:                   registry.QueueWeights(),
		RetryDelayFunc:           retryDelay(cfg.RetryBaseDelay),
		ShutdownTimeout:          cfg.ShutdownTimeout,
		Logger:                   asynqLogger{log},
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			id, _ := asynq.GetTaskID(ctx)
			log.Warn("worker: attempt failed", "job_id", id, "job_type", t.Type(), "err", err)
		}),
	})
	handlers, err := newHandlers(cfg, store, rdb, bus, log)
	if err != nil {
		return err
	}
	mux := asynq.NewServeMux()
	mux.Use(runner.Middleware)
	handlers.Register(mux)

	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("start asynq server: %w", err)
	}
	log.Info("worker: started", "concurrency", cfg.Concurrency, "database", database.MaskURL(cfg.DatabaseURL))

	var metricsSrv *http.Server
	if cfg.WorkerMetrics != "" {
		ln, err := net.Listen("tcp", cfg.WorkerMetrics)
		if err != nil {
			srv.Shutdown()
			return fmt.Errorf("TOKENLYSIS_WORKER_METRICS_ADDR: %w", err)
		}
		metricsSrv = &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
		go metricsSrv.Serve(ln)
	}

	queue := asynq.NewClientFromRedisClient(rdb)
	inspector := asynq.NewInspectorFromRedisClient(rdb)
	reconciler := job.NewReconciler(store, queue, inspector, registry, job.ReconcilerConfig{Grace: cfg.ReconcileGrace, Logger: log})

	var house sync.WaitGroup
	houseCtx, stopHouse := context.WithCancel(ctx)
	house.Go(func() { purgeLoop(houseCtx, store, cfg.JobRetention, log) })
	house.Go(func() { reconciler.Run(houseCtx, cfg.ReconcileInterval) })

	<-ctx.Done()
	log.Info("worker: shutting down")
	stopHouse()
	house.Wait()
	runner.Stopping()
	srv.Shutdown() // waits for running tasks up to ShutdownTimeout, then requeues them
	// The attempts' writes (successes still being recorded), and handlers
	// that went on past the timeout, for a little longer.
	waited := make(chan struct{})
	go func() { runner.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		log.Warn("worker: attempts still running 10 s after the shutdown timeout; exiting without them (their tasks were requeued)")
	}
	if metricsSrv != nil {
		metricsSrv.Close()
	}
	return nil
}

// newHandlers builds the task handlers and their clients.
func newHandlers(cfg config.Config, store *sqlstore.Store, rdb redis.UniversalClient, bus *events.Bus, log *slog.Logger) (tasks.Handlers, error) {
	var h tasks.Handlers
	cg, err := coingecko.New(coingecko.Config{
		BaseURL: cfg.CoinGeckoURL, Plan: coingecko.Plan(cfg.CoinGeckoPlan), APIKey: cfg.CoinGeckoKey,
		RatePerMinute: cfg.CoinGeckoRate, Rate: coingecko.NewRedisRate(rdb, cfg.RedisPrefix),
		MonthlyBudget: cfg.CoinGeckoBudget, MaxRetries: httpRetries(cfg.MarketRetries), Logger: log,
	}, coingecko.NewRedisBudget(rdb, cfg.RedisPrefix))
	if err != nil {
		return h, fmt.Errorf("CoinGecko client: %w", err)
	}
	fng, err := feargreed.New(feargreed.Config{BaseURL: cfg.FearGreedURL, MaxRetries: httpRetries(cfg.MarketRetries), Logger: log})
	if err != nil {
		return h, fmt.Errorf("Fear & Greed client: %w", err)
	}
	engine, err := recalc.New(store, recalc.Config{})
	if err != nil {
		return h, err
	}
	h.Recalculate = tasks.RecalculateHandler{Engine: engine, Notifier: bus}
	h.Market = tasks.MarketHandler{Store: store, CoinGecko: cg, FNG: fng, TopN: cfg.MarketTopN}
	if cfg.MarketFallback == "demo" {
		h.Market.Demo = func(ctx context.Context) (any, error) { return marketimport.SeedDemo(ctx, store, demo.Config{}) }
	}
	if err := os.MkdirAll(cfg.ImportDir, 0o755); err != nil {
		return h, fmt.Errorf("TOKENLYSIS_IMPORT_DIR: %w", err)
	}
	h.Import = tasks.ImportHandler{Store: store, Dir: cfg.ImportDir}
	return h, nil
}

// httpRetries maps the configured count to the clients' convention (zero
// means their default there, negative means none).
func httpRetries(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// retryDelay is exponential from base, capped at one hour.
func retryDelay(base time.Duration) asynq.RetryDelayFunc {
	return func(n int, _ error, _ *asynq.Task) time.Duration {
		d := time.Duration(float64(base) * math.Pow(2, float64(min(n, 20))))
		return min(d, time.Hour)
	}
}

// purgeLoop deletes jobs (and their events) finished longer ago than the
// retention, hourly. Several workers doing it at once is harmless.
func purgeLoop(ctx context.Context, store *sqlstore.Store, retention time.Duration, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := store.PurgeFinished(ctx, time.Now().Add(-retention))
		if err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("worker: purge finished jobs", "err", err)
		} else if n > 0 {
			log.Info("worker: purged finished jobs", "count", n, "retention", retention)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// attemptObserver counts attempts by outcome and sends final failures and
// panics to Sentry.
type attemptObserver struct {
	attempts *prometheus.CounterVec
	reporter *errreport.Reporter
}

func newAttemptObserver(reg *prometheus.Registry, reporter *errreport.Reporter) *attemptObserver {
	m := &attemptObserver{reporter: reporter, attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tokenlysis_job_attempts_total", Help: "Job attempts by type and outcome.",
	}, []string{"type", "outcome"})}
	reg.MustRegister(m.attempts)
	return m
}

func (m *attemptObserver) AttemptDone(jobType, outcome string, err error) {
	m.attempts.WithLabelValues(jobType, outcome).Inc()
	var panicErr *job.PanicError
	if outcome == "failed" || errors.As(err, &panicErr) {
		m.reporter.Capture(err, map[string]string{"job_type": jobType, "outcome": outcome})
	}
}

// asynqLogger adapts slog to asynq's logger.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)); os.Exit(1) }
