// Package databasetest gives tests a fresh, real database on each engine
// Tokenlysis supports: a SQLite file in t.TempDir(), or a new PostgreSQL
// database created through an admin URL and dropped when the test ends.
//
// PostgreSQL is reached through TOKENLYSIS_TEST_POSTGRES_URL, by default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable (a user
// allowed to CREATE DATABASE). When it does not answer, tests fail with a
// message saying what to start: they never skip, because every test of the
// data layer must run on both engines.
//
// Typical use, in a store's tests:
//
//	func TestJobStore_Create(t *testing.T) {
//		databasetest.ForEach(t, func(t *testing.T, db *database.DB) {
//			store := sqlstore.NewJobStore(db)
//			…
//		})
//	}
package databasetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/migrations"
)

// EnvPostgresURL names the variable holding the PostgreSQL admin URL.
const EnvPostgresURL = "TOKENLYSIS_TEST_POSTGRES_URL"

// DefaultPostgresURL is the admin URL used when EnvPostgresURL is unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// DatabasePrefix starts the name of every PostgreSQL database New creates.
const DatabasePrefix = "tokenlysis_test_"

// Dialects lists every engine a data-layer test must run on.
func Dialects() []database.Dialect {
	return []database.Dialect{database.SQLite, database.Postgres}
}

// AdminURL returns the PostgreSQL admin URL: EnvPostgresURL or DefaultPostgresURL.
func AdminURL() string {
	if u := strings.TrimSpace(os.Getenv(EnvPostgresURL)); u != "" {
		return u
	}
	return DefaultPostgresURL
}

// ForEach runs fn as one subtest per dialect, named "sqlite" and
// "postgres", each with its own fresh, fully migrated database. fn may call
// t.Parallel.
func ForEach(t *testing.T, fn func(t *testing.T, db *database.DB)) {
	t.Helper()
	for _, d := range Dialects() {
		t.Run(string(d), func(t *testing.T) {
			fn(t, New(t, d))
		})
	}
}

// New returns a fresh database of dialect d with every migration applied.
// It is closed (and, for PostgreSQL, dropped) when the test ends.
func New(t testing.TB, d database.Dialect) *database.DB {
	t.Helper()
	db := NewEmpty(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := migrations.Up(ctx, db); err != nil {
		t.Fatalf("databasetest: migrate %s database up: %v", d, err)
	}
	return db
}

// NewEmpty returns a fresh, empty database of dialect d: no tables, no
// migrations applied. It is closed (and, for PostgreSQL, dropped) when the
// test ends.
func NewEmpty(t testing.TB, d database.Dialect) *database.DB {
	t.Helper()
	u := NewURL(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := database.Open(ctx, u)
	if err != nil {
		t.Fatalf("databasetest: open %s: %v", database.MaskURL(u), err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// NewURL creates a fresh, empty database of dialect d and returns its URL,
// for tests of code that opens the database itself (cmd/migrate, cmd/api).
// The database is removed when the test ends; close every pool opened on
// it before then (a PostgreSQL database is dropped WITH (FORCE) anyway).
func NewURL(t testing.TB, d database.Dialect) string {
	t.Helper()
	switch d {
	case database.SQLite:
		return database.SQLiteURL(filepath.Join(t.TempDir(), "tokenlysis.db"))
	case database.Postgres:
		return newPostgresDatabase(t)
	}
	t.Fatalf("databasetest: unknown dialect %q", d)
	return ""
}

func newPostgresDatabase(t testing.TB) string {
	t.Helper()
	adminURL := AdminURL()
	name := DatabasePrefix + randomHex(t, 8)

	admin := openAdmin(t, adminURL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// name is generated above (lowercase hex), never user input.
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		t.Fatalf("databasetest: CREATE DATABASE %s through %s: %v", name, database.MaskURL(adminURL), err)
	}
	admin.Close() // do not hold an admin connection for the length of the test

	t.Cleanup(func() {
		admin := openAdmin(t, adminURL)
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("databasetest: DROP DATABASE %s: %v", name, err)
		}
	})

	u, err := url.Parse(adminURL)
	if err != nil {
		t.Fatalf("databasetest: %s is not a URL: %v", EnvPostgresURL, err)
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// openAdmin connects to the admin URL or fails the test saying what to start.
func openAdmin(t testing.TB, adminURL string) *sql.DB {
	t.Helper()
	admin, err := sql.Open("pgx", adminURL)
	if err != nil {
		t.Fatalf("databasetest: %s=%s: %v", EnvPostgresURL, database.MaskURL(adminURL), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		t.Fatalf("databasetest: PostgreSQL does not answer at %s: %v\n"+
			"Every data-layer test runs on PostgreSQL too: start PostgreSQL (15 or later) on 127.0.0.1:5432 "+
			"with trust auth for user postgres, or set %s to the URL of a user allowed to CREATE DATABASE.",
			database.MaskURL(adminURL), err, EnvPostgresURL)
	}
	return admin
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("databasetest: random name: %v", err)
	}
	return hex.EncodeToString(b)
}
