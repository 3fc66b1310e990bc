package recalc_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/database/databasetest"
	"github.com/tokenlysis/tokenlysis/internal/demo"
	"github.com/tokenlysis/tokenlysis/internal/marketimport"
	"github.com/tokenlysis/tokenlysis/internal/recalc"
	"github.com/tokenlysis/tokenlysis/internal/sqlstore"
)

// BenchmarkRun is P4 end to end: the full-history recompute of 1,000
// assets × 1,826 days (the demo universe, seeded outside the timer) with
// every indicator and the daily scores, including loading the history and
// writing every row. Targets: under 5 s on SQLite, under 3 s on
// PostgreSQL. "first" writes into an empty scores table, "again" replaces
// every row of the previous run (the steady state). Run with
// -benchtime=1x: each iteration writes about 1.8 M rows.
func BenchmarkRun(b *testing.B) {
	for _, d := range databasetest.Dialects() {
		b.Run(string(d), func(b *testing.B) {
			ctx := context.Background()
			db := databasetest.New(b, d)
			store := sqlstore.New(db, sqlstore.Config{})
			t0 := time.Now()
			sum, err := marketimport.SeedDemo(ctx, store, demo.Config{Assets: 1000, Days: 1826})
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("%s: seeded %d assets, %d history rows in %v", d, sum.Assets, sum.Rows, time.Since(t0).Round(time.Millisecond))
			engine, err := recalc.New(store, recalc.Config{})
			if err != nil {
				b.Fatal(err)
			}
			for _, name := range []string{"first", "again"} {
				b.Run(name, func(b *testing.B) {
					var rows int64
					var load, compute, write time.Duration
					b.ReportAllocs()
					for b.Loop() {
						res, err := engine.Run(ctx, recalc.Scope{}, nil)
						if err != nil {
							b.Fatal(err)
						}
						if res.Rows != int64(sum.Rows) {
							b.Fatalf("wrote %d rows, want %d", res.Rows, sum.Rows)
						}
						rows += res.Rows
						load, compute, write = load+res.Load, compute+res.Compute, write+res.Write
					}
					n := float64(b.N)
					b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
					b.ReportMetric(float64(load.Milliseconds())/n, "load-ms")
					b.ReportMetric(float64(compute.Milliseconds())/n, "compute-ms")
					b.ReportMetric(float64(write.Milliseconds())/n, "write-ms")
				})
			}
		})
	}
}
