// Package testbed gives the benchmark programs under bench/ a throw-away
// Tokenlysis environment on real services: a fresh, migrated SQLite file or
// PostgreSQL database, a flushed Redis database index with a pub/sub
// channel of its own, and, on request, the HTTP API wired as cmd/api wires
// it, served in-process on 127.0.0.1:0.
//
// A Bed is removed by Close: the PostgreSQL database is dropped, the
// temporary directory deleted and the Redis database flushed.
package testbed

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/tokenlysis/tokenlysis/internal/api"
	"github.com/tokenlysis/tokenlysis/internal/auth"
	"github.com/tokenlysis/tokenlysis/internal/authz"
	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/events"
	"github.com/tokenlysis/tokenlysis/internal/job"
	"github.com/tokenlysis/tokenlysis/internal/sqlstore"
	"github.com/tokenlysis/tokenlysis/migrations"
	"github.com/tokenlysis/tokenlysis/tasks"
)

// Defaults of Config.
const (
	DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	DefaultRedisURL    = "redis://127.0.0.1:6379/12"
	// DatabasePrefix starts the name of every PostgreSQL database a Bed creates.
	DatabasePrefix = "tokenlysis_bench_"
	// Audience is the audience of the API's dev tokens (the config default).
	Audience = "tokenlysis"
)

// Config configures a Bed. Zero fields take the defaults above.
type Config struct {
	Dialect database.Dialect // sqlite or postgres; required
	// PostgresURL is an admin URL of a user allowed to CREATE DATABASE.
	PostgresURL string
	// RedisURL names the Redis database index the bed owns: it is flushed
	// when the bed is made and when it is closed.
	RedisURL string
	// SynchronousCommit, when set (on, off, local…), is the PostgreSQL
	// database's synchronous_commit: "off" shows what the fsync of each
	// commit costs. Empty keeps the server's setting.
	SynchronousCommit string
	// Pool sizes every pool OpenDB opens; zero fields are the product's
	// defaults (database.Options), which is what the benchmarks measure
	// unless told otherwise.
	Pool database.Options
}

// Bed is one benchmark environment.
type Bed struct {
	Dialect     database.Dialect
	DatabaseURL string // the fresh, migrated database
	RedisURL    string
	// Prefix is unique to this bed; Channel (Prefix + "events") is its
	// events bus channel, as config.EventsChannel would make it.
	Prefix  string
	Channel string
	Dir     string // temporary directory (SQLite file, dev signing key)
	Pool    database.Options
	// PostgresDatabase is the name of the PostgreSQL database; "" on SQLite.
	PostgresDatabase string

	adminURL string
	pgName   string
}

// New makes a bed: a temporary directory, a fresh database migrated up
// and a flushed Redis database.
func New(ctx context.Context, cfg Config) (_ *Bed, err error) {
	cfg.PostgresURL = cmp.Or(cfg.PostgresURL, DefaultPostgresURL)
	cfg.RedisURL = cmp.Or(cfg.RedisURL, DefaultRedisURL)
	suffix, err := randomHex(6)
	if err != nil {
		return nil, err
	}
	b := &Bed{Dialect: cfg.Dialect, RedisURL: cfg.RedisURL, Prefix: "bench:" + suffix + ":", Pool: cfg.Pool, adminURL: cfg.PostgresURL}
	b.Channel = channelOf(b.Prefix)
	if b.Dir, err = os.MkdirTemp("", "tokenlysis-bench-"); err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	defer func() {
		if err != nil {
			b.Close(context.WithoutCancel(ctx))
		}
	}()

	switch cfg.Dialect {
	case database.SQLite:
		b.DatabaseURL = database.SQLiteURL(filepath.Join(b.Dir, "tokenlysis.db"))
	case database.Postgres:
		if b.DatabaseURL, err = b.createPostgres(ctx, DatabasePrefix+suffix, cfg.SynchronousCommit); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("testbed: unknown dialect %q (want sqlite or postgres)", cfg.Dialect)
	}
	db, err := database.Open(ctx, b.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("testbed: open %s: %w", database.MaskURL(b.DatabaseURL), err)
	}
	_, err = migrations.Up(ctx, db)
	db.Close()
	if err != nil {
		return nil, fmt.Errorf("testbed: migrate %s: %w", cfg.Dialect, err)
	}
	if err := b.FlushRedis(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *Bed) createPostgres(ctx context.Context, name, syncCommit string) (string, error) {
	admin, err := database.Open(ctx, b.adminURL)
	if err != nil {
		return "", fmt.Errorf("testbed: PostgreSQL at %s does not answer: %w", database.MaskURL(b.adminURL), err)
	}
	defer admin.Close()
	// name is generated (lowercase hex), never user input.
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("testbed: CREATE DATABASE %s: %w", name, err)
	}
	b.pgName, b.PostgresDatabase = name, name
	switch syncCommit {
	case "":
	case "on", "off", "local", "remote_write", "remote_apply":
		// syncCommit is one of the fixed values above.
		if _, err := admin.ExecContext(ctx, "ALTER DATABASE "+name+" SET synchronous_commit = "+syncCommit); err != nil {
			return "", fmt.Errorf("testbed: set synchronous_commit: %w", err)
		}
	default:
		return "", fmt.Errorf("testbed: synchronous_commit %q: want on, off, local, remote_write or remote_apply", syncCommit)
	}
	u, err := url.Parse(b.adminURL)
	if err != nil {
		return "", fmt.Errorf("testbed: PostgreSQL URL: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// Shared is what another process needs to work on a bed: see Join.
type Shared struct {
	Dialect     database.Dialect
	DatabaseURL string
	RedisURL    string
	Prefix      string
	Pool        database.Options
}

// Share describes the bed for Join in another process.
func (b *Bed) Share() Shared {
	return Shared{Dialect: b.Dialect, DatabaseURL: b.DatabaseURL, RedisURL: b.RedisURL, Prefix: b.Prefix, Pool: b.Pool}
}

// Join returns the bed that another process made and shared: its database,
// Redis and channel, to open pools and clients on. It owns none of them:
// never Close it (the process that made the bed does).
func Join(s Shared) *Bed {
	return &Bed{Dialect: s.Dialect, DatabaseURL: s.DatabaseURL, RedisURL: s.RedisURL, Prefix: s.Prefix,
		Channel: channelOf(s.Prefix), Pool: s.Pool}
}

// channelOf is the events channel of the bed with this prefix.
func channelOf(prefix string) string { return prefix + "events" }

// OpenDB opens a new pool on the bed's database. Open one per simulated
// process (the API and the worker each have their own pool).
func (b *Bed) OpenDB(ctx context.Context) (*database.DB, error) {
	db, err := database.Open(ctx, b.DatabaseURL, b.Pool)
	if err != nil {
		return nil, fmt.Errorf("testbed: open %s: %w", database.MaskURL(b.DatabaseURL), err)
	}
	return db, nil
}

// Redis returns a new client on the bed's Redis database, checked to answer.
func (b *Bed) Redis(ctx context.Context) (*redis.Client, error) {
	opt, err := redis.ParseURL(b.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("testbed: Redis URL: %w", err)
	}
	rdb := redis.NewClient(opt)
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("testbed: Redis at %s does not answer: %w", opt.Addr, err)
	}
	return rdb, nil
}

// RedisAddr returns the host:port of the bed's Redis.
func (b *Bed) RedisAddr() string {
	opt, err := redis.ParseURL(b.RedisURL)
	if err != nil {
		return ""
	}
	return opt.Addr
}

// FlushRedis empties the bed's Redis database (asynq's queues live there).
func (b *Bed) FlushRedis(ctx context.Context) error {
	rdb, err := b.Redis(ctx)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		return fmt.Errorf("testbed: flush Redis: %w", err)
	}
	return nil
}

// Close drops the PostgreSQL database, removes the directory and flushes
// Redis. Close every pool on the database first (PostgreSQL is dropped
// WITH (FORCE) anyway).
func (b *Bed) Close(ctx context.Context) error {
	var errs []error
	if b.pgName != "" {
		admin, err := database.Open(ctx, b.adminURL)
		if err == nil {
			_, err = admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+b.pgName+" WITH (FORCE)")
			admin.Close()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("testbed: drop database %s: %w", b.pgName, err))
		}
	}
	if err := b.FlushRedis(ctx); err != nil {
		errs = append(errs, err)
	}
	if b.Dir != "" {
		errs = append(errs, os.RemoveAll(b.Dir))
	}
	return errors.Join(errs...)
}

// API is the HTTP API served in-process, wired like cmd/api (without the
// asynqmon dashboard, which no benchmark touches).
type API struct {
	URL     string // http://127.0.0.1:PORT
	Issuer  *auth.DevIssuer
	Service *job.Service
	Store   *sqlstore.Store
	Bus     *events.Bus

	db     *database.DB
	rdb    *redis.Client
	queue  *asynq.Client
	http   *http.Server
	cancel context.CancelFunc
}

// StartAPI serves the API of the bed on 127.0.0.1:0 with its own database
// pool and Redis client, and runs its events bus.
func (b *Bed) StartAPI(ctx context.Context) (_ *API, err error) {
	a := &API{}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if a.db, err = b.OpenDB(ctx); err != nil {
		return nil, err
	}
	if a.rdb, err = b.Redis(ctx); err != nil {
		return nil, err
	}
	a.queue = asynq.NewClientFromRedisClient(a.rdb)
	a.Bus = events.NewBus(a.rdb, events.Config{Channel: b.Channel})
	a.Store = sqlstore.New(a.db, sqlstore.Config{Announcer: job.NewAnnouncer(a.Bus, nil)})
	az, err := authz.New(authz.Config{})
	if err != nil {
		return nil, err
	}
	registry, err := job.NewRegistry(tasks.Specs()...)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("testbed: listen: %w", err)
	}
	a.URL = "http://" + ln.Addr().String()
	key, err := auth.LoadOrCreateDevKey(filepath.Join(b.Dir, "dev-signing-key.pem"))
	if err != nil {
		ln.Close()
		return nil, err
	}
	a.Issuer = auth.NewDevIssuer(key, a.URL, Audience)
	verifier, err := auth.NewVerifier(auth.VerifierConfig{Issuer: a.URL, Audience: Audience, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		ln.Close()
		return nil, err
	}
	a.Service = job.NewService(a.Store, a.queue, asynq.NewInspectorFromRedisClient(a.rdb), az, registry, job.ServiceConfig{})
	srv := api.New(a.Service, a.Store, a.Bus, verifier, az, api.Config{
		Registry: prometheus.NewRegistry(), DevIssuer: a.Issuer,
		Checks: []api.Checker{{Name: "database", Check: a.Store.Ping}},
	})
	baseCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	go a.Bus.Run(baseCtx)
	a.http = &http.Server{
		Handler: srv, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		BaseContext: func(net.Listener) context.Context { return baseCtx },
	}
	go a.http.Serve(ln)
	return a, nil
}

// Token mints a dev bearer token for subject with the given roles.
func (a *API) Token(subject string, roles ...string) (string, error) {
	return a.Issuer.Mint(auth.TokenRequest{Subject: subject, Roles: roles, TTL: time.Hour})
}

// Close stops serving (ending open streams) and closes the pools.
func (a *API) Close() {
	if a.cancel != nil {
		a.cancel()
	}
	if a.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		a.http.Shutdown(ctx)
		cancel()
	}
	if a.queue != nil {
		a.queue.Close()
	}
	if a.rdb != nil {
		a.rdb.Close()
	}
	if a.db != nil {
		a.db.Close()
	}
}

// Load returns the machine's load averages (/proc/loadavg's first three
// fields), to print next to figures taken on a shared machine.
func Load() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// Tuning is what the experiment flags change from the product's defaults.
type Tuning struct {
	Pool              database.Options
	SynchronousCommit string
}

// TuningFlags declares -max-open-conns, -max-idle-conns and
// -pg-synchronous-commit on fs, which fill the returned Tuning (zero: the
// product's and the server's defaults).
func TuningFlags(fs *flag.FlagSet) *Tuning {
	var t Tuning
	fs.IntVar(&t.Pool.MaxOpenConns, "max-open-conns", 0, "experiment: size of each database pool (0: the product's default)")
	fs.IntVar(&t.Pool.MaxIdleConns, "max-idle-conns", 0, "experiment: idle connections kept by each pool (0: the product's default)")
	fs.StringVar(&t.SynchronousCommit, "pg-synchronous-commit", "", "experiment: synchronous_commit of the PostgreSQL database (on, off; empty: the server's)")
	return &t
}

// Dialects parses a comma-separated list of engines ("sqlite,postgres").
func Dialects(s string) ([]database.Dialect, error) {
	var ds []database.Dialect
	for _, f := range strings.Split(s, ",") {
		switch d := database.Dialect(strings.TrimSpace(f)); d {
		case database.SQLite, database.Postgres:
			ds = append(ds, d)
		default:
			return nil, fmt.Errorf("unknown engine %q (want sqlite, postgres or both, comma-separated)", f)
		}
	}
	return ds, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("testbed: random: %w", err)
	}
	return hex.EncodeToString(b), nil
}
