// Package redistest gives tests a real Redis: the server at
// TOKENLYSIS_TEST_REDIS_URL (default redis://127.0.0.1:6379), on the
// database index each test package asks for, with a unique key prefix per
// test. A Redis that does not answer fails the test; it is never skipped.
package redistest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// URL returns the Redis URL for database index db.
func URL(t testing.TB, db int) string {
	t.Helper()
	base := os.Getenv("TOKENLYSIS_TEST_REDIS_URL")
	if base == "" {
		base = "redis://127.0.0.1:6379"
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("TOKENLYSIS_TEST_REDIS_URL: %v", err)
	}
	u.Path = fmt.Sprintf("/%d", db)
	return u.String()
}

// Client returns a client on database index db, checked to answer, closed
// at the end of the test.
func Client(t testing.TB, db int, name string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(URL(t, db))
	if err != nil {
		t.Fatal(err)
	}
	opt.ClientName = name
	rdb := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis at %s does not answer (%v): start one (./test.sh does) or set TOKENLYSIS_TEST_REDIS_URL", opt.Addr, err)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// Prefix returns a key prefix unique to this test run.
func Prefix() string {
	return "test:" + strings.ReplaceAll(uuid.NewString()[:13], "-", "") + ":"
}
