package migrations_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/database/databasetest"
	"github.com/tokenlysis/tokenlysis/migrations"
)

const insertJob = `INSERT INTO jobs (id, type, queue, params, status, submitted_by, idempotency_key, dedupe_key, created_at, updated_at)
VALUES (?, ?, 'default', '{}', ?, ?, ?, ?, ?, ?)`

type jobRow struct {
	id, status, submittedBy string
	idempotencyKey          any
	dedupeKey               any
}

func addJob(ctx context.Context, db *database.DB, j jobRow) error {
	now := time.Now().UTC()
	_, err := db.ExecContext(ctx, db.Rebind(insertJob), j.id, "score:compute", j.status, j.submittedBy, j.idempotencyKey, j.dedupeKey, now, now)
	return err
}

// TestSchema_Constraints checks that the constraints of the jobs tables
// behave the same on both engines: they are what the stores rely on.
func TestSchema_Constraints(t *testing.T) {
	t.Parallel()
	databasetest.ForEach(t, func(t *testing.T, db *database.DB) {
		t.Parallel()
		ctx := context.Background()

		if err := addJob(ctx, db, jobRow{id: "j-bad", status: "paused", submittedBy: "u1"}); err == nil {
			t.Error("status outside the CHECK list accepted")
		}

		// Idempotency keys are unique per submitter, NULLs never collide.
		mustAdd(t, db, jobRow{id: "j1", status: "queued", submittedBy: "u1", idempotencyKey: "k"})
		mustAdd(t, db, jobRow{id: "j2", status: "queued", submittedBy: "u2", idempotencyKey: "k"})
		mustAdd(t, db, jobRow{id: "j3", status: "queued", submittedBy: "u1"})
		mustAdd(t, db, jobRow{id: "j4", status: "queued", submittedBy: "u1"})
		err := addJob(ctx, db, jobRow{id: "j5", status: "queued", submittedBy: "u1", idempotencyKey: "k"})
		if !database.IsUniqueViolation(err) {
			t.Errorf("same submitter and idempotency key: %v, want a unique violation", err)
		}

		// An active dedupe key is unique; NULLs (finished jobs, jobs
		// without a key) never collide. The store keeps active_dedupe_key
		// equal to dedupe_key while a job is unfinished, NULL after.
		const setActive = `UPDATE jobs SET active_dedupe_key = ? WHERE id = ?`
		mustAdd(t, db, jobRow{id: "d1", status: "running", submittedBy: "u1", dedupeKey: "btc"})
		mustAdd(t, db, jobRow{id: "d2", status: "queued", submittedBy: "u2", dedupeKey: "btc"})
		if _, err := db.ExecContext(ctx, db.Rebind(setActive), "btc", "d1"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, db.Rebind(setActive), "btc", "d2"); !database.IsUniqueViolation(err) {
			t.Errorf("second active job with the same dedupe key: %v, want a unique violation", err)
		}
		if _, err := db.ExecContext(ctx, db.Rebind(setActive), nil, "d1"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, db.Rebind(setActive), "btc", "d2"); err != nil {
			t.Errorf("active dedupe key once the other job let it go: %v", err)
		}

		// Events are numbered per job. There is no foreign key to jobs (it
		// cost a check per event): the store deletes a job's events with it.
		const insertEvent = `INSERT INTO job_events (job_id, seq, kind, created_at) VALUES (?, ?, ?, ?)`
		for seq := 1; seq <= 2; seq++ {
			if _, err := db.ExecContext(ctx, db.Rebind(insertEvent), "j1", seq, "progress", time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.ExecContext(ctx, db.Rebind(insertEvent), "j1", 2, "progress", time.Now()); !database.IsUniqueViolation(err) {
			t.Errorf("duplicate (job_id, seq): %v, want a unique violation", err)
		}
	})
}

// TestSchema_NoJobsIndexUsesStatus keeps the update of a job row a HOT
// update on PostgreSQL (003_hot_jobs): status changes on every transition,
// and a row whose indexed column changes (key, expression or partial
// index predicate) gets a new entry in every index. SQLite has the same
// indexes.
func TestSchema_NoJobsIndexUsesStatus(t *testing.T) {
	t.Parallel()
	databasetest.ForEach(t, func(t *testing.T, db *database.DB) {
		t.Parallel()
		q := `SELECT name || ' ' || COALESCE(sql, '') FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs'`
		if db.Dialect == database.Postgres {
			q = `SELECT indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'jobs'`
		}
		var defs []string
		if err := db.SelectContext(context.Background(), &defs, q); err != nil {
			t.Fatal(err)
		}
		if len(defs) == 0 {
			t.Fatal("no index of jobs found")
		}
		for _, d := range defs {
			if strings.Contains(strings.ToLower(d), "status") {
				t.Errorf("index uses status, so every transition writes every index: %s", d)
			}
		}
	})
}

// TestSchema_JobIDOrder checks that job IDs sort byte-wise on both engines,
// whatever the PostgreSQL locale: keyset pagination depends on it.
func TestSchema_JobIDOrder(t *testing.T) {
	t.Parallel()
	databasetest.ForEach(t, func(t *testing.T, db *database.DB) {
		t.Parallel()
		ctx := context.Background()
		// Under a natural-language collation "a-b" and "ab" or "B"/"a" order differently.
		ids := []string{"ab", "a-c", "B", "a", "0"}
		for _, id := range ids {
			mustAdd(t, db, jobRow{id: id, status: "queued", submittedBy: "u"})
		}
		var got []string
		if err := db.SelectContext(ctx, &got, `SELECT id FROM jobs ORDER BY id`); err != nil {
			t.Fatal(err)
		}
		want := []string{"0", "B", "a", "a-c", "ab"}
		if len(got) != len(want) {
			t.Fatalf("got %v", got)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("ORDER BY id = %v, want byte order %v", got, want)
			}
		}
		if db.Dialect == database.Postgres {
			// The test server's own locale may already be C: check the columns too.
			var colls []string
			err := db.SelectContext(ctx, &colls, `SELECT table_name || '.' || column_name || '=' || COALESCE(collation_name, '')
				FROM information_schema.columns WHERE table_schema = current_schema()
				 AND (table_name, column_name) IN (('jobs', 'id'), ('job_events', 'job_id')) ORDER BY 1`)
			if err != nil {
				t.Fatal(err)
			}
			if len(colls) != 2 || colls[0] != "job_events.job_id=C" || colls[1] != "jobs.id=C" {
				t.Errorf("collations = %v, want C for jobs.id and job_events.job_id", colls)
			}
		}
	})
}

func mustAdd(t *testing.T, db *database.DB, j jobRow) {
	t.Helper()
	if err := addJob(context.Background(), db, j); err != nil {
		t.Fatalf("insert job %s: %v", j.id, err)
	}
}

// TestMigration003_KeepsData applies 003_hot_jobs over jobs and events and
// rolls it back: Up sets the active dedupe key of the unfinished jobs only
// and keeps every event; Down keeps the events of existing jobs, drops
// those whose job is gone (the foreign key comes back) and restores the
// old dedupe rule.
func TestMigration003_KeepsData(t *testing.T) {
	t.Parallel()
	for _, d := range databasetest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := databasetest.NewEmpty(t, d)
			upOne(t, db, "001_core.sql")
			upOne(t, db, "002_market.sql")
			jobs := []jobRow{
				{id: "queued", status: "queued", submittedBy: "u", dedupeKey: "a"},
				{id: "running", status: "running", submittedBy: "u", dedupeKey: "b"},
				{id: "retrying", status: "retrying", submittedBy: "u", dedupeKey: "c"},
				{id: "done", status: "succeeded", submittedBy: "u", dedupeKey: "a"},
				{id: "failed", status: "failed", submittedBy: "u", dedupeKey: "b"},
				{id: "plain", status: "queued", submittedBy: "u"},
			}
			const insertEvent = `INSERT INTO job_events (job_id, seq, kind, created_at) VALUES (?, ?, ?, ?)`
			for _, j := range jobs {
				mustAdd(t, db, j)
				if _, err := db.ExecContext(ctx, db.Rebind(insertEvent), j.id, 1, "queued", time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			upOne(t, db, "003_hot_jobs.sql")

			var active []string
			err := db.SelectContext(ctx, &active, `SELECT id || '=' || COALESCE(active_dedupe_key, '-') FROM jobs ORDER BY id`)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := strings.Join(active, " "), "done=- failed=- plain=- queued=a retrying=c running=b"; got != want {
				t.Errorf("active dedupe keys after Up: %s, want %s", got, want)
			}
			countEvents := func() int {
				t.Helper()
				var n int
				if err := db.GetContext(ctx, &n, `SELECT COUNT(*) FROM job_events`); err != nil {
					t.Fatal(err)
				}
				return n
			}
			if n := countEvents(); n != len(jobs) {
				t.Errorf("%d events after Up, want %d", n, len(jobs))
			}
			// Without the foreign key, an event of a missing job is accepted.
			if _, err := db.ExecContext(ctx, db.Rebind(insertEvent), "gone", 1, "queued", time.Now()); err != nil {
				t.Fatalf("event without its job after Up: %v", err)
			}

			if n, err := migrations.Down(ctx, db, 1); err != nil || n != 1 {
				t.Fatalf("Down 003: n=%d, err=%v", n, err)
			}
			if n := countEvents(); n != len(jobs) {
				t.Errorf("%d events after Down, want %d (the orphan dropped)", n, len(jobs))
			}
			if _, err := db.ExecContext(ctx, db.Rebind(insertEvent), "gone", 1, "queued", time.Now()); err == nil {
				t.Error("event without its job accepted after Down: the foreign key is not back")
			}
			if _, err := db.ExecContext(ctx, db.Rebind(`DELETE FROM jobs WHERE id = ?`), "plain"); err != nil {
				t.Fatal(err)
			}
			if n := countEvents(); n != len(jobs)-1 {
				t.Errorf("%d events after deleting a job under 001, want %d (ON DELETE CASCADE)", n, len(jobs)-1)
			}
			err = addJob(ctx, db, jobRow{id: "again", status: "queued", submittedBy: "u", dedupeKey: "a"})
			if !database.IsUniqueViolation(err) {
				t.Errorf("second unfinished job with dedupe key a after Down: %v, want a unique violation", err)
			}
		})
	}
}
