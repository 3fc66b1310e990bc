// Package config reads the TOKENLYSIS_* environment variables into one
// validated Config. It is the only place that knows variable names and
// defaults; README.md documents the same table.
package config

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// Environments.
const (
	EnvLocal      = "local"
	EnvProduction = "production"
)

// Authentication modes.
const (
	AuthDev  = "dev"
	AuthOIDC = "oidc"
)

// Config is the whole configuration of the API, the worker and the tools.
type Config struct {
	Env             string        // TOKENLYSIS_ENV: local | production
	HTTPAddr        string        // TOKENLYSIS_HTTP_ADDR
	DataDir         string        // TOKENLYSIS_DATA_DIR, absolute
	DatabaseURL     string        // TOKENLYSIS_DATABASE_URL
	RedisURL        string        // TOKENLYSIS_REDIS_URL
	RedisMode       string        // TOKENLYSIS_REDIS_MODE: single | sentinel | cluster
	RedisPrefix     string        // TOKENLYSIS_REDIS_PREFIX: prefix of Tokenlysis' own keys and channels
	AuthMode        string        // TOKENLYSIS_AUTH_MODE: dev | oidc
	OIDCIssuer      string        // TOKENLYSIS_OIDC_ISSUER
	OIDCAudience    string        // TOKENLYSIS_OIDC_AUDIENCE
	OIDCRolesClaim  string        // TOKENLYSIS_OIDC_ROLES_CLAIM
	AuthzPolicy     string        // TOKENLYSIS_AUTHZ_POLICY: path of a Casbin policy overriding the embedded one
	Concurrency     int           // TOKENLYSIS_WORKER_CONCURRENCY
	RetryBaseDelay  time.Duration // TOKENLYSIS_RETRY_BASE_DELAY
	JobRetention    time.Duration // TOKENLYSIS_JOB_RETENTION
	ShutdownTimeout time.Duration // TOKENLYSIS_SHUTDOWN_TIMEOUT
	MaxBodyBytes    int64         // TOKENLYSIS_MAX_BODY_BYTES
	SentryDSN       string        // TOKENLYSIS_SENTRY_DSN
	LogLevel        string        // TOKENLYSIS_LOG_LEVEL: debug | info | warn | error
	LogFormat       string        // TOKENLYSIS_LOG_FORMAT: text | json
	WorkerMetrics   string        // TOKENLYSIS_WORKER_METRICS_ADDR: where the worker serves /metrics ("" = off)
	MemoryLimit     int64         // TOKENLYSIS_MEMORY_LIMIT: Go soft memory limit in bytes (0 = none)

	ReconcileGrace    time.Duration // TOKENLYSIS_RECONCILE_GRACE: unchanged this long, an unfinished job's task is checked
	ReconcileInterval time.Duration // TOKENLYSIS_RECONCILE_INTERVAL: how often the worker checks

	CoinGeckoPlan   string // TOKENLYSIS_COINGECKO_PLAN: public | demo | pro
	CoinGeckoKey    string // TOKENLYSIS_COINGECKO_API_KEY
	CoinGeckoURL    string // TOKENLYSIS_COINGECKO_BASE_URL ("" = the plan's)
	CoinGeckoRate   int    // TOKENLYSIS_COINGECKO_RATE_PER_MINUTE (unset: 0, the plan's rate)
	CoinGeckoBudget int    // TOKENLYSIS_COINGECKO_MONTHLY_BUDGET (0 = the plan's, -1 = unlimited)
	MarketRetries   int    // TOKENLYSIS_MARKET_MAX_RETRIES: HTTP retries of the market APIs (0 = none)
	FearGreedURL    string // TOKENLYSIS_FNG_BASE_URL
	MarketTopN      int    // TOKENLYSIS_MARKET_TOP_N
	MarketFallback  string // TOKENLYSIS_MARKET_FALLBACK: demo | none
	ImportDir       string // TOKENLYSIS_IMPORT_DIR: where market:import may read files
}

// Load reads the configuration through getenv (os.Getenv in production, a
// map in tests). It returns an error naming the variable and the problem
// for the first invalid value.
func Load(getenv func(string) string) (Config, error) {
	get := func(name, def string) string { return cmp.Or(strings.TrimSpace(getenv(name)), def) }
	var c Config
	var err error

	c.Env = get("TOKENLYSIS_ENV", EnvLocal)
	if c.Env != EnvLocal && c.Env != EnvProduction {
		return c, fmt.Errorf("TOKENLYSIS_ENV: must be %q or %q, got %q", EnvLocal, EnvProduction, c.Env)
	}

	c.HTTPAddr = get("TOKENLYSIS_HTTP_ADDR", "127.0.0.1:8000")
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return c, fmt.Errorf("TOKENLYSIS_HTTP_ADDR: must be host:port, got %q", c.HTTPAddr)
	}

	if c.DataDir, err = filepath.Abs(get("TOKENLYSIS_DATA_DIR", "./var")); err != nil {
		return c, fmt.Errorf("TOKENLYSIS_DATA_DIR: %w", err)
	}
	c.DatabaseURL = get("TOKENLYSIS_DATABASE_URL", database.SQLiteURL(filepath.Join(c.DataDir, "tokenlysis.db")))
	if _, err := database.ParseURL(c.DatabaseURL); err != nil {
		return c, fmt.Errorf("TOKENLYSIS_DATABASE_URL: %s", tokenlysis.ErrorMessage(err))
	}

	c.RedisURL = get("TOKENLYSIS_REDIS_URL", "redis://127.0.0.1:6379/0")
	if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
		return c, fmt.Errorf("TOKENLYSIS_REDIS_URL: must be a redis:// or rediss:// URL")
	}
	c.RedisMode = get("TOKENLYSIS_REDIS_MODE", RedisSingle)
	if c.RedisMode != RedisSingle && c.RedisMode != RedisSentinel && c.RedisMode != RedisCluster {
		return c, fmt.Errorf("TOKENLYSIS_REDIS_MODE: must be single, sentinel or cluster, got %q", c.RedisMode)
	}
	if _, err := c.Redis(); err != nil {
		return c, err
	}
	c.RedisPrefix = get("TOKENLYSIS_REDIS_PREFIX", "tokenlysis:")

	defAuth := AuthDev
	if c.Env == EnvProduction {
		defAuth = AuthOIDC
	}
	c.AuthMode = get("TOKENLYSIS_AUTH_MODE", defAuth)
	switch c.AuthMode {
	case AuthDev:
		if c.Env == EnvProduction {
			return c, fmt.Errorf("TOKENLYSIS_AUTH_MODE: dev mode is refused when TOKENLYSIS_ENV=production")
		}
	case AuthOIDC:
	default:
		return c, fmt.Errorf("TOKENLYSIS_AUTH_MODE: must be %q or %q, got %q", AuthDev, AuthOIDC, c.AuthMode)
	}
	// Kept as given: an OIDC issuer is compared exactly, and some (Auth0,
	// Azure AD v1) end in a slash.
	c.OIDCIssuer = get("TOKENLYSIS_OIDC_ISSUER", "")
	if c.AuthMode == AuthOIDC {
		if c.OIDCIssuer == "" {
			return c, fmt.Errorf("TOKENLYSIS_OIDC_ISSUER: required when TOKENLYSIS_AUTH_MODE=oidc")
		}
		if u, err := url.Parse(c.OIDCIssuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return c, fmt.Errorf("TOKENLYSIS_OIDC_ISSUER: must be an http(s) URL, got %q", c.OIDCIssuer)
		}
	}
	c.OIDCAudience = get("TOKENLYSIS_OIDC_AUDIENCE", "tokenlysis")
	c.OIDCRolesClaim = get("TOKENLYSIS_OIDC_ROLES_CLAIM", "roles")
	c.AuthzPolicy = get("TOKENLYSIS_AUTHZ_POLICY", "")

	if c.Concurrency, err = intVar(get, "TOKENLYSIS_WORKER_CONCURRENCY", 20, 1, 1000); err != nil {
		return c, err
	}
	if c.RetryBaseDelay, err = durationVar(get, "TOKENLYSIS_RETRY_BASE_DELAY", 5*time.Second); err != nil {
		return c, err
	}
	if c.JobRetention, err = durationVar(get, "TOKENLYSIS_JOB_RETENTION", 7*24*time.Hour); err != nil {
		return c, err
	}
	if c.ShutdownTimeout, err = durationVar(get, "TOKENLYSIS_SHUTDOWN_TIMEOUT", 30*time.Second); err != nil {
		return c, err
	}
	if c.ReconcileGrace, err = durationVar(get, "TOKENLYSIS_RECONCILE_GRACE", time.Minute); err != nil {
		return c, err
	}
	if c.ReconcileInterval, err = durationVar(get, "TOKENLYSIS_RECONCILE_INTERVAL", time.Minute); err != nil {
		return c, err
	}
	maxBody, err := intVar(get, "TOKENLYSIS_MAX_BODY_BYTES", 1<<20, 1024, 1<<30)
	if err != nil {
		return c, err
	}
	c.MaxBodyBytes = int64(maxBody)
	c.SentryDSN = get("TOKENLYSIS_SENTRY_DSN", "")
	c.LogLevel = get("TOKENLYSIS_LOG_LEVEL", "info")
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return c, fmt.Errorf("TOKENLYSIS_LOG_LEVEL: must be debug, info, warn or error, got %q", c.LogLevel)
	}
	c.LogFormat = get("TOKENLYSIS_LOG_FORMAT", "text")
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return c, fmt.Errorf("TOKENLYSIS_LOG_FORMAT: must be text or json, got %q", c.LogFormat)
	}
	c.WorkerMetrics = get("TOKENLYSIS_WORKER_METRICS_ADDR", "127.0.0.1:9101")
	if c.WorkerMetrics == "off" {
		c.WorkerMetrics = ""
	}

	if c.MemoryLimit, err = sizeVar(get, "TOKENLYSIS_MEMORY_LIMIT", 256<<20); err != nil {
		return c, err
	}

	c.CoinGeckoPlan = get("TOKENLYSIS_COINGECKO_PLAN", "public")
	switch c.CoinGeckoPlan {
	case "public", "demo", "pro":
	default:
		return c, fmt.Errorf("TOKENLYSIS_COINGECKO_PLAN: must be public, demo or pro, got %q", c.CoinGeckoPlan)
	}
	c.CoinGeckoKey = get("TOKENLYSIS_COINGECKO_API_KEY", "")
	if c.CoinGeckoPlan != "public" && c.CoinGeckoKey == "" {
		return c, fmt.Errorf("TOKENLYSIS_COINGECKO_API_KEY: required for the %s plan", c.CoinGeckoPlan)
	}
	c.CoinGeckoURL = get("TOKENLYSIS_COINGECKO_BASE_URL", "")
	if c.CoinGeckoRate, err = intVar(get, "TOKENLYSIS_COINGECKO_RATE_PER_MINUTE", 0, 1, 100_000); err != nil {
		return c, err
	}
	if c.CoinGeckoBudget, err = intVar(get, "TOKENLYSIS_COINGECKO_MONTHLY_BUDGET", 0, -1, 100_000_000); err != nil {
		return c, err
	}
	if c.MarketRetries, err = intVar(get, "TOKENLYSIS_MARKET_MAX_RETRIES", 5, 0, 20); err != nil {
		return c, err
	}
	c.FearGreedURL = get("TOKENLYSIS_FNG_BASE_URL", "https://api.alternative.me")
	if c.MarketTopN, err = intVar(get, "TOKENLYSIS_MARKET_TOP_N", 1000, 1, 20_000); err != nil {
		return c, err
	}
	defFallback := "demo"
	if c.Env == EnvProduction {
		defFallback = "none"
	}
	c.MarketFallback = get("TOKENLYSIS_MARKET_FALLBACK", defFallback)
	if c.MarketFallback != "demo" && c.MarketFallback != "none" {
		return c, fmt.Errorf("TOKENLYSIS_MARKET_FALLBACK: must be demo or none, got %q", c.MarketFallback)
	}
	if c.ImportDir, err = filepath.Abs(get("TOKENLYSIS_IMPORT_DIR", filepath.Join(c.DataDir, "imports"))); err != nil {
		return c, fmt.Errorf("TOKENLYSIS_IMPORT_DIR: %w", err)
	}
	return c, nil
}

func intVar(get func(string, string) string, name string, def, lo, hi int) (int, error) {
	s := get(name, "")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s: must be a whole number from %d to %d, got %q", name, lo, hi, s)
	}
	return n, nil
}

// sizeVar reads a size: bytes, or a number with KiB, MiB or GiB; "0" or
// "off" means no limit.
func sizeVar(get func(string, string) string, name string, def int64) (int64, error) {
	s := get(name, "")
	if s == "" {
		return def, nil
	}
	if s == "off" {
		return 0, nil
	}
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(s, suffix) {
			s, mult = strings.TrimSuffix(s, suffix), m
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%s: must be a size such as 256MiB, 1GiB or a number of bytes, or off", name)
	}
	return n * mult, nil
}

func durationVar(get func(string, string) string, name string, def time.Duration) (time.Duration, error) {
	s := get(name, "")
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s: must be a positive Go duration such as 500ms, 30s or 168h, got %q", name, s)
	}
	return d, nil
}

// NewLogger returns the process logger writing to w in the configured
// format and level.
func (c Config) NewLogger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// ApplyRuntime applies the process-wide settings: the Go soft memory
// limit, under which the GC works harder instead of letting garbage (from
// thousands of streams, say) grow the heap.
func (c Config) ApplyRuntime() {
	if c.MemoryLimit > 0 {
		debug.SetMemoryLimit(c.MemoryLimit)
	}
}

// Redis modes (TOKENLYSIS_REDIS_MODE): how TOKENLYSIS_REDIS_URL is read.
const (
	RedisSingle   = "single"   // one server: redis://[:password@]host:port/db
	RedisSentinel = "sentinel" // a master found through Sentinel: redis://[sentinel-user:sentinel-password@]sentinel:26379/db?master_name=NAME&addr=sentinel2:26379&password=…
	RedisCluster  = "cluster"  // a Redis Cluster: redis://[user:password@]node:6379?addr=node2:6379&addr=node3:6379
)

// RedisConn says how to reach Redis: one server, the master that
// Sentinel names, or a Cluster. It is also asynq's connection option
// (asynq.RedisConnOpt) for the worker's server and the queues dashboard,
// each of which makes its own client.
type RedisConn struct {
	single   *redis.Options
	failover *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

var _ asynq.RedisConnOpt = RedisConn{}

// NewClient returns a new client; the caller closes it.
func (r RedisConn) NewClient() redis.UniversalClient {
	switch {
	case r.failover != nil:
		return redis.NewFailoverClient(r.failover)
	case r.cluster != nil:
		return redis.NewClusterClient(r.cluster)
	}
	return redis.NewClient(r.single)
}

// MakeRedisClient implements asynq.RedisConnOpt.
func (r RedisConn) MakeRedisClient() any { return r.NewClient() }

// Redis returns how to reach the Redis of TOKENLYSIS_REDIS_URL, read as
// TOKENLYSIS_REDIS_MODE says.
func (c Config) Redis() (RedisConn, error) {
	var r RedisConn
	var err error
	switch c.RedisMode {
	case RedisSentinel:
		if r.failover, err = redis.ParseFailoverURL(c.RedisURL); err == nil && r.failover.MasterName == "" {
			err = errors.New("sentinel mode needs the master's name: ?master_name=NAME")
		}
	case RedisCluster:
		r.cluster, err = redis.ParseClusterURL(c.RedisURL)
	default:
		r.single, err = redis.ParseURL(c.RedisURL)
	}
	if err != nil {
		return RedisConn{}, fmt.Errorf("TOKENLYSIS_REDIS_URL (TOKENLYSIS_REDIS_MODE=%s): %w", c.RedisMode, err)
	}
	return r, nil
}

// DevKeyPath is where dev mode keeps its token signing key.
func (c Config) DevKeyPath() string { return filepath.Join(c.DataDir, "dev-signing-key.pem") }

// IssuerURL is the OIDC issuer: TOKENLYSIS_OIDC_ISSUER, or in dev mode the
// API itself at TOKENLYSIS_HTTP_ADDR.
func (c Config) IssuerURL() string {
	if c.OIDCIssuer != "" {
		return c.OIDCIssuer
	}
	return "http://" + c.HTTPAddr
}

// EventsChannel is the Redis pub/sub channel of live notifications.
func (c Config) EventsChannel() string { return c.RedisPrefix + "events" }
