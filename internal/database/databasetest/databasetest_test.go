package databasetest

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/migrations"
)

func TestNew_IsMigrated(t *testing.T) {
	t.Parallel()
	var ran []string
	var mu sync.Mutex
	ForEach(t, func(t *testing.T, db *database.DB) {
		mu.Lock()
		ran = append(ran, string(db.Dialect))
		mu.Unlock()
		if !strings.HasSuffix(t.Name(), "/"+string(db.Dialect)) {
			t.Errorf("subtest %s runs on %s", t.Name(), db.Dialect)
		}
		if err := migrations.Check(context.Background(), db); err != nil {
			t.Errorf("Check: %v", err)
		}
	})
	if !slices.Equal(ran, []string{"sqlite", "postgres"}) {
		t.Errorf("ForEach ran %v", ran)
	}
}

func TestNewEmpty_HasNoTables(t *testing.T) {
	t.Parallel()
	for _, d := range Dialects() {
		db := NewEmpty(t, d)
		recs, err := migrations.Status(context.Background(), db)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.Applied() {
				t.Errorf("%s: %s applied in an empty database", d, r.ID)
			}
		}
	}
}

func TestNew_PostgresDatabaseIsDroppedAfterTheTest(t *testing.T) {
	t.Parallel()
	var name string
	t.Run("inner", func(t *testing.T) {
		db := New(t, database.Postgres)
		if err := db.GetContext(context.Background(), &name, `SELECT current_database()`); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(name, DatabasePrefix) {
			t.Errorf("database %q lacks the prefix %q", name, DatabasePrefix)
		}
	})
	admin := openAdmin(t, AdminURL())
	defer admin.Close()
	var n int
	if err := admin.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM pg_database WHERE datname = $1`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if name == "" || n != 0 {
		t.Errorf("database %q still exists after its test (%d)", name, n)
	}
}

// fatalRecorder is a testing.TB whose Fatalf records the message and stops
// the goroutine, as the real one does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestOpenAdmin_SaysWhatToStart(t *testing.T) {
	t.Parallel()
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		db := openAdmin(rec, "postgres://postgres:secret@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2")
		db.Close()
	}()
	<-done
	for _, want := range []string{"PostgreSQL does not answer", "127.0.0.1:1", "start PostgreSQL", EnvPostgresURL} {
		if !strings.Contains(rec.msg, want) {
			t.Errorf("message %q does not mention %q", rec.msg, want)
		}
	}
	if strings.Contains(rec.msg, "secret") {
		t.Errorf("message leaks the password: %q", rec.msg)
	}
}

// BenchmarkNew measures what a fresh, migrated database costs a test.
// Databases are removed when the benchmark ends, so bound the iterations:
// go test -run '^$' -bench New -benchtime=20x ./internal/database/databasetest
func BenchmarkNew(b *testing.B) {
	for _, d := range Dialects() {
		b.Run(string(d), func(b *testing.B) {
			for b.Loop() {
				New(b, d)
			}
		})
	}
}
