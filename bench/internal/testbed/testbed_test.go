package testbed

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/database"
)

// redisURL is the Redis database these tests own (it is flushed).
const redisURL = "redis://127.0.0.1:6379/11"

func TestDialects(t *testing.T) {
	tests := []struct {
		in      string
		want    []database.Dialect
		wantErr bool
	}{
		{"sqlite", []database.Dialect{database.SQLite}, false},
		{"sqlite, postgres", []database.Dialect{database.SQLite, database.Postgres}, false},
		{"mysql", nil, true},
		{"", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Dialects(tt.in)
			if (err != nil) != tt.wantErr || len(got) != len(tt.want) {
				t.Fatalf("Dialects(%q) = %v, %v", tt.in, got, err)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("Dialects(%q)[%d] = %s, want %s", tt.in, i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestBedLeavesNothing checks that a bed's database is migrated and that
// Close removes it: no PostgreSQL database, no directory.
func TestBedLeavesNothing(t *testing.T) {
	for _, d := range []database.Dialect{database.SQLite, database.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			bed, err := New(ctx, Config{Dialect: d, RedisURL: redisURL})
			if err != nil {
				t.Fatal(err)
			}
			db, err := bed.OpenDB(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var n int
			if err := db.GetContext(ctx, &n, `SELECT COUNT(*) FROM jobs`); err != nil {
				t.Fatalf("jobs table: %v", err)
			}
			db.Close()
			if err := bed.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(bed.Dir); !os.IsNotExist(err) {
				t.Errorf("directory %s still there: %v", bed.Dir, err)
			}
			if d == database.Postgres {
				admin, err := database.Open(ctx, DefaultPostgresURL)
				if err != nil {
					t.Fatal(err)
				}
				defer admin.Close()
				if err := admin.GetContext(ctx, &n, `SELECT COUNT(*) FROM pg_database WHERE datname = $1`, bed.pgName); err != nil || n != 0 {
					t.Errorf("database %s: count %d, err %v; want dropped", bed.pgName, n, err)
				}
			}
		})
	}
}
