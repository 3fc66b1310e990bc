package config

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadDefaults(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("./var")
	if c.HTTPAddr != "127.0.0.1:8000" || c.DataDir != abs || c.Env != EnvLocal || c.AuthMode != AuthDev {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if want := "sqlite:///" + filepath.Join(abs, "tokenlysis.db"); c.DatabaseURL != want {
		t.Fatalf("DatabaseURL = %q, want %q", c.DatabaseURL, want)
	}
	if c.RedisURL != "redis://127.0.0.1:6379/0" || c.OIDCAudience != "tokenlysis" || c.OIDCRolesClaim != "roles" {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if c.MarketTopN != 1000 || c.MarketFallback != "demo" || c.CoinGeckoPlan != "public" || c.ImportDir != filepath.Join(abs, "imports") {
		t.Fatalf("unexpected market defaults: %+v", c)
	}
	if c.RetryBaseDelay != 5*time.Second || c.Concurrency != 20 || c.JobRetention != 7*24*time.Hour {
		t.Fatalf("unexpected defaults: %+v", c)
	}
	if c.ReconcileGrace != time.Minute || c.ReconcileInterval != time.Minute {
		t.Fatalf("reconciler defaults: grace %v, interval %v; want 1m, 1m", c.ReconcileGrace, c.ReconcileInterval)
	}

	// A data directory whose name holds URL characters gives a database
	// URL that names it.
	c, err = Load(env(map[string]string{"TOKENLYSIS_DATA_DIR": "/srv/a#b%41"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := "sqlite:////srv/a%23b%2541/tokenlysis.db"; c.DatabaseURL != want {
		t.Fatalf("DatabaseURL = %q, want %q", c.DatabaseURL, want)
	}
}

func TestLoadOverrides(t *testing.T) {
	c, err := Load(env(map[string]string{
		"TOKENLYSIS_ENV":                "production",
		"TOKENLYSIS_OIDC_ISSUER":        "https://id.example.com/realms/x/",
		"TOKENLYSIS_DATABASE_URL":       "postgres://u:p@db/x",
		"TOKENLYSIS_WORKER_CONCURRENCY": "7",
		"TOKENLYSIS_RETRY_BASE_DELAY":   "150ms",
		"TOKENLYSIS_MEMORY_LIMIT":       "1GiB",
		"TOKENLYSIS_RECONCILE_GRACE":    "5s",
		"TOKENLYSIS_RECONCILE_INTERVAL": "2s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.ReconcileGrace != 5*time.Second || c.ReconcileInterval != 2*time.Second {
		t.Fatalf("reconciler: grace %v, interval %v; want 5s, 2s", c.ReconcileGrace, c.ReconcileInterval)
	}
	if c.MemoryLimit != 1<<30 {
		t.Fatalf("MemoryLimit = %d, want 1 GiB", c.MemoryLimit)
	}
	if c.AuthMode != AuthOIDC || c.OIDCIssuer != "https://id.example.com/realms/x/" || c.Concurrency != 7 || c.RetryBaseDelay != 150*time.Millisecond {
		t.Fatalf("unexpected: %+v", c)
	}
}

// Each Redis mode reads its own URL form, and gives asynq a connection
// option that makes clients of the right kind.
func TestRedisModes(t *testing.T) {
	for _, tc := range []struct {
		mode, url string
		client    string // the client's type
	}{
		{"", "redis://127.0.0.1:6379/3", "*redis.Client"},
		{"sentinel", "redis://:spw@s1:26379/2?master_name=mymaster&addr=s2:26379&password=mpw", "*redis.Client"},
		{"cluster", "redis://n1:6379?addr=n2:6379&addr=n3:6379", "*redis.ClusterClient"},
	} {
		c, err := Load(env(map[string]string{"TOKENLYSIS_REDIS_MODE": tc.mode, "TOKENLYSIS_REDIS_URL": tc.url}))
		if err != nil {
			t.Fatalf("%s %s: %v", tc.mode, tc.url, err)
		}
		conn, err := c.Redis()
		if err != nil {
			t.Fatal(err)
		}
		rdb := conn.NewClient()
		if got := fmt.Sprintf("%T", rdb); got != tc.client {
			t.Errorf("%s: client %s, want %s", tc.mode, got, tc.client)
		}
		rdb.Close()
		made := conn.MakeRedisClient()
		if got := fmt.Sprintf("%T", made); got != tc.client {
			t.Errorf("%s: asynq's client %s, want %s", tc.mode, got, tc.client)
		}
		made.(interface{ Close() error }).Close()
	}
}

func TestLoadRejects(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"TOKENLYSIS_ENV": "staging"}, "TOKENLYSIS_ENV"},
		{map[string]string{"TOKENLYSIS_HTTP_ADDR": "8000"}, "TOKENLYSIS_HTTP_ADDR"},
		{map[string]string{"TOKENLYSIS_DATABASE_URL": "mysql://x"}, "TOKENLYSIS_DATABASE_URL"},
		{map[string]string{"TOKENLYSIS_DATABASE_URL": "sqlite://foo.db"}, "TOKENLYSIS_DATABASE_URL: sqlite database URL \"sqlite://foo.db\" names a host"},
		{map[string]string{"TOKENLYSIS_DATABASE_URL": "postgres://app:pw@db:notaport/x"}, "TOKENLYSIS_DATABASE_URL: invalid postgres"},
		{map[string]string{"TOKENLYSIS_MEMORY_LIMIT": "17179869184GiB"}, "TOKENLYSIS_MEMORY_LIMIT"},
		{map[string]string{"TOKENLYSIS_MEMORY_LIMIT": "8589934592GiB"}, "TOKENLYSIS_MEMORY_LIMIT"},
		{map[string]string{"TOKENLYSIS_REDIS_URL": "http://x"}, "TOKENLYSIS_REDIS_URL"},
		{map[string]string{"TOKENLYSIS_REDIS_MODE": "ring"}, "TOKENLYSIS_REDIS_MODE: must be single, sentinel or cluster"},
		{map[string]string{"TOKENLYSIS_REDIS_MODE": "sentinel", "TOKENLYSIS_REDIS_URL": "redis://s1:26379/0"}, "TOKENLYSIS_REDIS_URL (TOKENLYSIS_REDIS_MODE=sentinel): sentinel mode needs the master's name"},
		{map[string]string{"TOKENLYSIS_REDIS_URL": "redis://h:6379/0?master_name=m"}, "TOKENLYSIS_REDIS_URL (TOKENLYSIS_REDIS_MODE=single)"},
		{map[string]string{"TOKENLYSIS_REDIS_MODE": "cluster", "TOKENLYSIS_REDIS_URL": "redis://n1:6379?addr=n2:6379&bogus=1"}, "TOKENLYSIS_REDIS_URL (TOKENLYSIS_REDIS_MODE=cluster)"},
		{map[string]string{"TOKENLYSIS_ENV": "production", "TOKENLYSIS_AUTH_MODE": "dev"}, "dev mode is refused"},
		{map[string]string{"TOKENLYSIS_ENV": "production"}, "TOKENLYSIS_OIDC_ISSUER: required"},
		{map[string]string{"TOKENLYSIS_AUTH_MODE": "oidc", "TOKENLYSIS_OIDC_ISSUER": "ftp://x"}, "TOKENLYSIS_OIDC_ISSUER"},
		{map[string]string{"TOKENLYSIS_WORKER_CONCURRENCY": "0"}, "TOKENLYSIS_WORKER_CONCURRENCY"},
		{map[string]string{"TOKENLYSIS_RETRY_BASE_DELAY": "soon"}, "TOKENLYSIS_RETRY_BASE_DELAY"},
		{map[string]string{"TOKENLYSIS_LOG_LEVEL": "loud"}, "TOKENLYSIS_LOG_LEVEL"},
		{map[string]string{"TOKENLYSIS_RECONCILE_GRACE": "-1s"}, "TOKENLYSIS_RECONCILE_GRACE"},
		{map[string]string{"TOKENLYSIS_RECONCILE_INTERVAL": "often"}, "TOKENLYSIS_RECONCILE_INTERVAL"},
		{map[string]string{"TOKENLYSIS_COINGECKO_PLAN": "gold"}, "TOKENLYSIS_COINGECKO_PLAN"},
		{map[string]string{"TOKENLYSIS_MEMORY_LIMIT": "lots"}, "TOKENLYSIS_MEMORY_LIMIT"},
		{map[string]string{"TOKENLYSIS_COINGECKO_PLAN": "pro"}, "TOKENLYSIS_COINGECKO_API_KEY"},
		{map[string]string{"TOKENLYSIS_MARKET_TOP_N": "0"}, "TOKENLYSIS_MARKET_TOP_N"},
		{map[string]string{"TOKENLYSIS_MARKET_FALLBACK": "seed"}, "TOKENLYSIS_MARKET_FALLBACK"},
	} {
		_, err := Load(env(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%v) error = %v, want mention of %q", tc.env, err, tc.want)
		}
	}
}
