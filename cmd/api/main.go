// Command api is the Tokenlysis HTTP API. "api token" prints a dev token.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/tokenlysis/tokenlysis/internal/api"
	"github.com/tokenlysis/tokenlysis/internal/auth"
	"github.com/tokenlysis/tokenlysis/internal/authz"
	"github.com/tokenlysis/tokenlysis/internal/config"
	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/errreport"
	"github.com/tokenlysis/tokenlysis/internal/events"
	"github.com/tokenlysis/tokenlysis/internal/job"
	"github.com/tokenlysis/tokenlysis/internal/sqlstore"
	"github.com/tokenlysis/tokenlysis/migrations"
	"github.com/tokenlysis/tokenlysis/tasks"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "api:", err)
		os.Exit(1)
	}
}

// run starts the API (or, with "token", prints a dev token) and returns
// when ctx ends, after a graceful shutdown.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	if len(args) > 0 && args[0] == "token" {
		return mintToken(cfg, args[1:], stdout)
	}
	if len(args) > 0 {
		return fmt.Errorf("unknown command %q (usage: api [token --role ROLE --subject NAME [--ttl 1h]])", args[0])
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
	queue := asynq.NewClientFromRedisClient(rdb)
	inspector := asynq.NewInspectorFromRedisClient(rdb)

	bus := events.NewBus(rdb, events.Config{Channel: cfg.EventsChannel(), Logger: log})
	defer bus.Flush(context.WithoutCancel(ctx)) // what the last commits announced
	// The store publishes the job events it commits, a commit's together.
	store := sqlstore.New(db, sqlstore.Config{Announcer: job.NewAnnouncer(bus, log)})
	az, err := authz.New(authz.Config{PolicyPath: cfg.AuthzPolicy})
	if err != nil {
		return err
	}
	registry, err := job.NewRegistry(tasks.Specs()...)
	if err != nil {
		return err
	}
	registry = registry.WithQueuePrefix(cfg.RedisPrefix)

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	if strings.HasSuffix(cfg.HTTPAddr, ":0") {
		cfg.HTTPAddr = ln.Addr().String()
	}
	var devIssuer *auth.DevIssuer
	if cfg.AuthMode == config.AuthDev {
		key, err := auth.LoadOrCreateDevKey(cfg.DevKeyPath())
		if err != nil {
			return err
		}
		devIssuer = auth.NewDevIssuer(key, cfg.IssuerURL(), cfg.OIDCAudience)
	}
	verifier, err := auth.NewVerifier(auth.VerifierConfig{
		Issuer: cfg.IssuerURL(), Audience: cfg.OIDCAudience, RolesClaim: cfg.OIDCRolesClaim, Logger: log,
	})
	if err != nil {
		return err
	}

	reporter, err := errreport.New(cfg.SentryDSN, cfg.Env, "")
	if err != nil {
		return fmt.Errorf("TOKENLYSIS_SENTRY_DSN: %w", err)
	}
	defer reporter.Flush(2 * time.Second)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	jobs := job.NewService(store, queue, inspector, az, registry, job.ServiceConfig{Logger: log})
	srv := api.New(jobs, store, bus, verifier, az, api.Config{
		Logger: log, Registry: reg, Reporter: reporter, MaxBodyBytes: cfg.MaxBodyBytes, DevIssuer: devIssuer,
		QueuesUI: asynqmon.New(asynqmon.Options{RootPath: "/admin/queues", RedisConnOpt: redisOpt}),
		Checks: []api.Checker{
			{Name: "database", Check: store.Ping},
			{Name: "redis", Check: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
		},
	})

	// Streams end when baseCtx does, so that Shutdown does not wait on them.
	baseCtx, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	go bus.Run(baseCtx)
	go srv.Run(baseCtx)
	httpSrv := &http.Server{
		Handler: srv, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return baseCtx },
	}
	errc := make(chan error, 1)
	go func() { errc <- httpSrv.Serve(ln) }()
	log.Info("api: listening", "url", "http://"+cfg.HTTPAddr, "auth_mode", cfg.AuthMode, "database", database.MaskURL(cfg.DatabaseURL))
	fmt.Fprintf(stdout, "tokenlysis api listening on http://%s\n", cfg.HTTPAddr)

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("api: shutting down")
	cancelBase()
	shutCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := httpSrv.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	queue.Close()
	inspector.Close()
	return nil
}

// mintToken prints a token signed by the dev issuer's key.
func mintToken(cfg config.Config, args []string, stdout io.Writer) error {
	if cfg.AuthMode != config.AuthDev {
		return errors.New("token: only in dev mode (TOKENLYSIS_AUTH_MODE=dev); get tokens from your identity provider")
	}
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	roles := fs.String("role", authz.RoleUser, "role(s), comma-separated: admin, analyst, user")
	subject := fs.String("subject", "", "the user's subject (required)")
	email := fs.String("email", "", "email claim")
	ttl := fs.Duration("ttl", time.Hour, "lifetime")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *subject == "" {
		return errors.New("token: --subject is required")
	}
	key, err := auth.LoadOrCreateDevKey(cfg.DevKeyPath())
	if err != nil {
		return err
	}
	tok, err := auth.NewDevIssuer(key, cfg.IssuerURL(), cfg.OIDCAudience).Mint(auth.TokenRequest{
		Subject: *subject, Email: *email, Roles: strings.Split(*roles, ","), TTL: *ttl,
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
