package sqlstore_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/tokenlysis/tokenlysis/internal/database/databasetest"
	"github.com/tokenlysis/tokenlysis/internal/sqlstore"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// BenchmarkJobLifecycle measures the SQL side of the job path alone: each
// op is one job created, started, given one progress event and succeeded
// (four writes), by 20 goroutines at once (a worker's default
// concurrency), on each engine.
func BenchmarkJobLifecycle(b *testing.B) {
	for _, d := range databasetest.Dialects() {
		b.Run(string(d), func(b *testing.B) {
			s := sqlstore.New(databasetest.New(b, d), sqlstore.Config{})
			ctx := context.Background()
			result := json.RawMessage(`{"steps":1}`)
			before := s.JobWriteStats()
			b.SetParallelism(10) // × GOMAXPROCS (2 here) goroutines
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					j, _, err := s.CreateJob(ctx, newJob("bench"))
					if err == nil {
						_, err = s.StartAttempt(ctx, j.ID)
					}
					if err == nil {
						_, err = s.Progress(ctx, j.ID, tokenlysis.JobEvent{Percent: 100, Message: "step 1/1"})
					}
					if err == nil {
						_, err = s.Succeed(ctx, j.ID, result)
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			after := s.JobWriteStats()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
			b.ReportMetric(float64(after.Writes-before.Writes)/float64(max(after.Commits-before.Commits, 1)), "writes/commit")
		})
	}
}
