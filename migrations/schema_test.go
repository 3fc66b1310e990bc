package migrations_test

import (
	"context"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/database/databasetest"
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

// TestSchema_Constraints checks that the constraints of 001_core behave the
// same on both engines: they are what the stores rely on.
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

		// A dedupe key is unique among active jobs only.
		mustAdd(t, db, jobRow{id: "d1", status: "running", submittedBy: "u1", dedupeKey: "btc"})
		err = addJob(ctx, db, jobRow{id: "d2", status: "queued", submittedBy: "u2", dedupeKey: "btc"})
		if !database.IsUniqueViolation(err) {
			t.Errorf("second active job with the same dedupe key: %v, want a unique violation", err)
		}
		if _, err := db.ExecContext(ctx, db.Rebind(`UPDATE jobs SET status = ? WHERE id = ?`), "succeeded", "d1"); err != nil {
			t.Fatal(err)
		}
		mustAdd(t, db, jobRow{id: "d3", status: "queued", submittedBy: "u2", dedupeKey: "btc"})

		// Events belong to a job and go with it.
		const insertEvent = `INSERT INTO job_events (job_id, seq, kind, created_at) VALUES (?, ?, ?, ?)`
		for seq := 1; seq <= 2; seq++ {
			if _, err := db.ExecContext(ctx, db.Rebind(insertEvent), "j1", seq, "progress", time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.ExecContext(ctx, db.Rebind(insertEvent), "j1", 2, "progress", time.Now()); !database.IsUniqueViolation(err) {
			t.Errorf("duplicate (job_id, seq): %v, want a unique violation", err)
		}
		if _, err := db.ExecContext(ctx, db.Rebind(insertEvent), "no-such-job", 1, "queued", time.Now()); err == nil {
			t.Error("event of a missing job accepted: foreign keys are off")
		}
		if _, err := db.ExecContext(ctx, db.Rebind(`DELETE FROM jobs WHERE id = ?`), "j1"); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := db.GetContext(ctx, &n, db.Rebind(`SELECT COUNT(*) FROM job_events WHERE job_id = ?`), "j1"); err != nil || n != 0 {
			t.Errorf("events left after deleting their job: %d, %v", n, err)
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
