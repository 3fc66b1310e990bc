package cpuacct

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/bench/internal/testbed"
	"github.com/tokenlysis/tokenlysis/internal/database"
)

// redisURL is the Redis database this test owns (it is flushed).
const redisURL = "redis://127.0.0.1:6379/11"

// newBed returns a PostgreSQL test bed, closed at the end of the test, and
// a context that ends a minute from now.
func newBed(t *testing.T) (context.Context, *testbed.Bed) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	bed, err := testbed.New(ctx, testbed.Config{Dialect: database.Postgres, RedisURL: redisURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bed.Close(context.Background()) })
	return ctx, bed
}

// TestMeter burns CPU in this process, in Redis and in a PostgreSQL
// backend of the bed's database, and expects each group to show some.
func TestMeter(t *testing.T) {
	ctx, bed := newBed(t)
	db, err := bed.OpenDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rdb, err := bed.Redis(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()

	m := Start(Config{RedisAddr: bed.RedisAddr(), PostgresDatabase: bed.PostgresDatabase, Interval: 20 * time.Millisecond})
	for end := time.Now().Add(100 * time.Millisecond); time.Now().Before(end); {
	}
	var sum int64
	if err := db.GetContext(ctx, &sum, `SELECT SUM(x) FROM generate_series(1, 3000000) AS x`); err != nil {
		t.Fatal(err)
	}
	pipe := rdb.Pipeline()
	for i := range 50_000 {
		pipe.Set(ctx, "k", i, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	got := m.Stop()
	if got[Self] < 80*time.Millisecond {
		t.Errorf("self CPU %s after a 100 ms busy loop", got[Self])
	}
	if got[Postgres] <= 0 {
		t.Errorf("postgres CPU %s after summing 3M rows", got[Postgres])
	}
	if got[Redis] <= 0 {
		t.Errorf("redis CPU %s after 50,000 SETs", got[Redis])
	}
	t.Logf("%v", got)
}

func TestProfileWritesAFile(t *testing.T) {
	base := t.TempDir() + "/cpu.prof"
	stop, err := Profile(base, "sqlite")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1e6; i++ {
		_ = strconv.Itoa(i)
	}
	stop()
	if fi, err := os.Stat(base + ".sqlite"); err != nil || fi.Size() == 0 {
		t.Fatalf("profile file: %v, %v", fi, err)
	}
	noop, err := Profile("", "sqlite")
	if err != nil {
		t.Fatal(err)
	}
	noop()
}

// TestMeterReadsEachCommandLineOnce: sampling reads the command line of a
// process only when it first sees it, yet still finds the processes that
// start after it (here a new PostgreSQL backend).
func TestMeterReadsEachCommandLineOnce(t *testing.T) {
	ctx, bed := newBed(t)

	reads := map[string]int{}
	m := newMeter(Config{RedisAddr: bed.RedisAddr(), PostgresDatabase: bed.PostgresDatabase}, func(dir string) ([]byte, error) {
		reads[dir]++
		return os.ReadFile(dir + "/cmdline")
	})
	m.scan()
	m.scan()
	self := "/proc/" + strconv.Itoa(os.Getpid())
	if reads[self] != 1 {
		t.Errorf("this process's command line read %d times in two samples, want 1", reads[self])
	}

	db, err := bed.OpenDB(ctx) // a backend that did not exist at the first sample
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var sum int64
	if err := db.GetContext(ctx, &sum, `SELECT SUM(x) FROM generate_series(1, 3000000) AS x`); err != nil {
		t.Fatal(err)
	}
	var cpu time.Duration
	for _, s := range m.scan() {
		if s.group == Postgres {
			cpu += s.cpu
		}
	}
	if cpu <= 0 {
		t.Errorf("no CPU found for the backend that summed 3M rows after the meter started")
	}
	if reads[self] != 1 {
		t.Errorf("this process's command line read %d times in three samples, want 1", reads[self])
	}
}
