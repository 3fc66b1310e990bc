package sqlstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/database/databasetest"
	"github.com/tokenlysis/tokenlysis/internal/sqlstore"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
	"github.com/tokenlysis/tokenlysis/migrations"
)

// newJob is the row factory: a valid job submitted by owner.
func newJob(owner string) tokenlysis.Job {
	return tokenlysis.Job{
		ID: uuid.Must(uuid.NewV7()).String(), Type: "system:probe", Queue: "default",
		Params: json.RawMessage(`{"steps":1}`), MaxRetry: 3, SubmittedBy: owner,
	}
}

func mustCreate(t *testing.T, s *sqlstore.Store, j tokenlysis.Job) tokenlysis.Job {
	t.Helper()
	got, created, err := s.CreateJob(context.Background(), j)
	if err != nil || !created {
		t.Fatalf("CreateJob: created=%v err=%v", created, err)
	}
	return got
}

func code(err error) string { return tokenlysis.ErrorCode(err) }

func TestJobs(t *testing.T) {
	databasetest.ForEach(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s := sqlstore.New(db, sqlstore.Config{})

		t.Run("create and find", func(t *testing.T) {
			j := mustCreate(t, s, newJob("alice"))
			got, err := s.FindJob(ctx, j.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tokenlysis.JobQueued || got.SubmittedBy != "alice" || got.LastSeq != 1 || got.MaxRetry != 3 {
				t.Fatalf("unexpected job %+v", got)
			}
			var params map[string]int
			if err := json.Unmarshal(got.Params, &params); err != nil || params["steps"] != 1 {
				t.Fatalf("params = %s (%v)", got.Params, err)
			}
			if got.CreatedAt.IsZero() || got.CreatedAt.Location() != time.UTC {
				t.Fatalf("created_at = %v", got.CreatedAt)
			}
			evs, err := s.Events(ctx, j.ID, 0, 10)
			if err != nil || len(evs) != 1 || evs[0].Seq != 1 || evs[0].Kind != tokenlysis.EventQueued {
				t.Fatalf("events = %+v, %v", evs, err)
			}
			if _, err := s.FindJob(ctx, "nope"); code(err) != tokenlysis.ENOTFOUND {
				t.Fatalf("FindJob(nope) = %v, want not_found", err)
			}
		})

		t.Run("idempotency key returns the same job", func(t *testing.T) {
			j := newJob("bob")
			j.IdempotencyKey = "k-1"
			first := mustCreate(t, s, j)
			again := newJob("bob")
			again.IdempotencyKey = "k-1"
			got, created, err := s.CreateJob(ctx, again)
			if err != nil || created || got.ID != first.ID {
				t.Fatalf("replay: id=%s created=%v err=%v, want id %s", got.ID, created, err, first.ID)
			}
			other := newJob("carol")
			other.IdempotencyKey = "k-1"
			mustCreate(t, s, other) // same key, other user: a new job
		})

		t.Run("dedupe key refuses a second active job", func(t *testing.T) {
			j := newJob("dan")
			j.DedupeKey = "recalc:all"
			first := mustCreate(t, s, j)
			dup := newJob("erin")
			dup.DedupeKey = "recalc:all"
			got, created, err := s.CreateJob(ctx, dup)
			if code(err) != tokenlysis.ECONFLICT || created || got.ID != first.ID {
				t.Fatalf("dup: id=%s created=%v err=%v", got.ID, created, err)
			}
			if _, err := s.Cancel(ctx, first.ID); err != nil {
				t.Fatal(err)
			}
			mustCreate(t, s, dup) // the first one ended: allowed again
		})

		t.Run("a dedupe key is free again once its job ends, however it ends", func(t *testing.T) {
			for _, end := range []struct {
				name   string
				finish func(id string) error
			}{
				{"succeed", func(id string) error {
					if _, err := s.StartAttempt(ctx, id); err != nil {
						return err
					}
					_, err := s.Succeed(ctx, id, json.RawMessage(`{"ok":true}`))
					return err
				}},
				{"fail", func(id string) error {
					if _, err := s.StartAttempt(ctx, id); err != nil {
						return err
					}
					_, err := s.Fail(ctx, id, "boom")
					return err
				}},
				{"fail queued", func(id string) error {
					_, err := s.FailQueued(ctx, id, "not enqueued")
					return err
				}},
				{"cancel", func(id string) error {
					_, err := s.Cancel(ctx, id)
					return err
				}},
			} {
				t.Run(end.name, func(t *testing.T) {
					key := "dedupe:" + end.name + ":" + uuid.NewString()
					j := newJob("dan")
					j.DedupeKey = key
					first := mustCreate(t, s, j)
					dup := newJob("erin")
					dup.DedupeKey = key
					if got, created, err := s.CreateJob(ctx, dup); code(err) != tokenlysis.ECONFLICT || created || got.ID != first.ID {
						t.Fatalf("second unfinished job: id=%s created=%v err=%v; want a conflict naming %s", got.ID, created, err, first.ID)
					}
					if err := end.finish(first.ID); err != nil {
						t.Fatal(err)
					}
					again := newJob("erin")
					again.DedupeKey = key
					second := mustCreate(t, s, again)
					if got, _ := s.FindJob(ctx, first.ID); got.DedupeKey != key || !got.Status.Terminal() {
						t.Fatalf("finished job = %+v; want it to keep its dedupe key", got)
					}
					third := newJob("frank")
					third.DedupeKey = key
					if got, created, err := s.CreateJob(ctx, third); code(err) != tokenlysis.ECONFLICT || created || got.ID != second.ID {
						t.Fatalf("job beside the new holder: id=%s created=%v err=%v; want a conflict naming %s", got.ID, created, err, second.ID)
					}
				})
			}
		})

		t.Run("requeue refuses a job whose dedupe key another unfinished job holds", func(t *testing.T) {
			key := "dedupe:requeue:" + uuid.NewString()
			j := newJob("dan")
			j.DedupeKey = key
			first := mustCreate(t, s, j)
			if _, err := s.Cancel(ctx, first.ID); err != nil {
				t.Fatal(err)
			}
			j = newJob("erin")
			j.DedupeKey = key
			holder := mustCreate(t, s, j)
			before, _ := s.FindJob(ctx, first.ID)

			_, err := s.Requeue(ctx, first.ID)
			if code(err) != tokenlysis.ECONFLICT || !strings.Contains(tokenlysis.ErrorMessage(err), holder.ID) {
				t.Fatalf("Requeue while %s holds the key = %v; want a conflict naming it", holder.ID, err)
			}
			if after, _ := s.FindJob(ctx, first.ID); !reflect.DeepEqual(after, before) {
				t.Fatalf("refused requeue changed the job:\nbefore %+v\nafter  %+v", before, after)
			}
			if evs, _ := s.Events(ctx, first.ID, 0, 10); len(evs) != 2 {
				t.Fatalf("refused requeue left %d events, want 2", len(evs))
			}

			// Once the holder ends, the requeue goes through and the key is
			// held by the requeued job.
			if _, err := s.Cancel(ctx, holder.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Requeue(ctx, first.ID); err != nil {
				t.Fatalf("Requeue once the key is free: %v", err)
			}
			j = newJob("frank")
			j.DedupeKey = key
			if got, created, err := s.CreateJob(ctx, j); code(err) != tokenlysis.ECONFLICT || created || got.ID != first.ID {
				t.Fatalf("job beside the requeued one: id=%s created=%v err=%v; want a conflict naming %s", got.ID, created, err, first.ID)
			}
			// A job without a dedupe key requeues as before.
			plain := mustCreate(t, s, newJob("dan"))
			if _, err := s.Cancel(ctx, plain.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Requeue(ctx, plain.ID); err != nil {
				t.Fatalf("Requeue without a dedupe key: %v", err)
			}
		})

		t.Run("lifecycle numbers events without gaps", func(t *testing.T) {
			j := mustCreate(t, s, newJob("alice"))
			if _, err := s.StartAttempt(ctx, j.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Progress(ctx, j.ID, tokenlysis.JobEvent{Percent: 50, Message: "half", Data: json.RawMessage(`{"step":1}`)}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Retrying(ctx, j.ID, "boom"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.StartAttempt(ctx, j.ID); err != nil {
				t.Fatal(err)
			}
			ev, err := s.Succeed(ctx, j.ID, json.RawMessage(`{"ok":true}`))
			if err != nil || ev.Seq != 6 || ev.Kind != tokenlysis.EventSucceeded {
				t.Fatalf("Succeed = %+v, %v", ev, err)
			}
			got, _ := s.FindJob(ctx, j.ID)
			if got.Status != tokenlysis.JobSucceeded || got.Percent != 100 || got.Attempts != 2 || got.StartedAt == nil || got.FinishedAt == nil || got.LastSeq != 6 {
				t.Fatalf("job after success: %+v", got)
			}
			if string(got.Result) == "" {
				t.Fatal("result lost")
			}
			evs, _ := s.Events(ctx, j.ID, 0, 100)
			kinds := []tokenlysis.EventKind{"queued", "started", "progress", "retrying", "started", "succeeded"}
			if len(evs) != len(kinds) {
				t.Fatalf("got %d events, want %d", len(evs), len(kinds))
			}
			for i, ev := range evs {
				if ev.Seq != int64(i+1) || ev.Kind != kinds[i] {
					t.Fatalf("event %d = %+v, want seq %d kind %s", i, ev, i+1, kinds[i])
				}
			}
			if evs[2].Percent != 50 || evs[2].Message != "half" || string(evs[2].Data) == "" {
				t.Fatalf("progress event = %+v", evs[2])
			}
			after, _ := s.Events(ctx, j.ID, 4, 100)
			if len(after) != 2 || after[0].Seq != 5 {
				t.Fatalf("Events after 4 = %+v", after)
			}
			// A finished job accepts no further transition.
			if _, err := s.Cancel(ctx, j.ID); code(err) != tokenlysis.ECONFLICT {
				t.Fatalf("Cancel(succeeded) = %v, want conflict", err)
			}
			if _, err := s.Fail(ctx, j.ID, "late"); code(err) != tokenlysis.ECONFLICT {
				t.Fatalf("Fail(succeeded) = %v, want conflict", err)
			}
			if _, err := s.StartAttempt(ctx, "missing"); code(err) != tokenlysis.ENOTFOUND {
				t.Fatalf("StartAttempt(missing) = %v, want not_found", err)
			}
		})

		t.Run("cancel wins over a late success and requeue restarts", func(t *testing.T) {
			j := mustCreate(t, s, newJob("alice"))
			s.StartAttempt(ctx, j.ID)
			if _, err := s.Cancel(ctx, j.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Progress(ctx, j.ID, tokenlysis.JobEvent{Percent: 10}); code(err) != tokenlysis.ECONFLICT {
				t.Fatalf("Progress(canceled) = %v, want conflict", err)
			}
			if _, err := s.Succeed(ctx, j.ID, nil); code(err) != tokenlysis.ECONFLICT {
				t.Fatalf("Succeed(canceled) = %v, want conflict", err)
			}
			ev, err := s.Requeue(ctx, j.ID)
			if err != nil || ev.Kind != tokenlysis.EventQueued {
				t.Fatalf("Requeue = %+v, %v", ev, err)
			}
			got, _ := s.FindJob(ctx, j.ID)
			if got.Status != tokenlysis.JobQueued || got.FinishedAt != nil || got.Attempts != 0 {
				t.Fatalf("requeued job = %+v", got)
			}
			if _, err := s.Requeue(ctx, j.ID); code(err) != tokenlysis.ECONFLICT {
				t.Fatalf("Requeue(queued) = %v, want conflict", err)
			}
		})

		t.Run("concurrent writers never duplicate or skip a sequence number", func(t *testing.T) {
			j := mustCreate(t, s, newJob("alice"))
			s.StartAttempt(ctx, j.ID)
			var wg sync.WaitGroup
			for w := 0; w < 4; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 10; i++ {
						if _, err := s.Progress(ctx, j.ID, tokenlysis.JobEvent{Percent: i}); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			evs, _ := s.Events(ctx, j.ID, 0, 1000)
			if len(evs) != 42 {
				t.Fatalf("got %d events, want 42", len(evs))
			}
			for i, ev := range evs {
				if ev.Seq != int64(i+1) {
					t.Fatalf("event %d has seq %d", i, ev.Seq)
				}
			}
		})

		t.Run("concurrent job writes commit in groups and fail alone", func(t *testing.T) {
			// 48 jobs go through their whole life at the same time, and one
			// of them is canceled before its progress: the writes of all of
			// them share transactions (fewer commits than writes), and the
			// canceled one's conflict touches no other job.
			const n = 48
			jobs := make([]tokenlysis.Job, n)
			before := s.JobWriteStats()
			start := make(chan struct{})
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					j, created, err := s.CreateJob(ctx, newJob(fmt.Sprintf("group-%d", i)))
					if err != nil || !created {
						errs[i] = fmt.Errorf("create: %v", err)
						return
					}
					jobs[i] = j
					if _, err := s.StartAttempt(ctx, j.ID); err != nil {
						errs[i] = fmt.Errorf("start: %v", err)
						return
					}
					if i == 7 {
						if _, err := s.Cancel(ctx, j.ID); err != nil {
							errs[i] = fmt.Errorf("cancel: %v", err)
							return
						}
					}
					if _, err := s.Progress(ctx, j.ID, tokenlysis.JobEvent{Percent: 50, Message: "half"}); err != nil {
						errs[i] = err
						return
					}
					if _, err := s.Succeed(ctx, j.ID, json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))); err != nil {
						errs[i] = fmt.Errorf("succeed: %v", err)
					}
				}()
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if i == 7 {
					if code(err) != tokenlysis.ECONFLICT {
						t.Fatalf("progress of the canceled job: %v, want conflict", err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("job %d: %v", i, err)
				}
			}
			for i, j := range jobs {
				got, err := s.FindJob(ctx, j.ID)
				if err != nil {
					t.Fatal(err)
				}
				evs, _ := s.Events(ctx, j.ID, 0, 100)
				want := []tokenlysis.EventKind{"queued", "started", "progress", "succeeded"}
				wantStatus := tokenlysis.JobSucceeded
				if i == 7 {
					want, wantStatus = []tokenlysis.EventKind{"queued", "started", "canceled"}, tokenlysis.JobCanceled
				}
				if got.Status != wantStatus || got.LastSeq != int64(len(want)) || len(evs) != len(want) {
					t.Fatalf("job %d: status %s last_seq %d, %d events; want %s, %d", i, got.Status, got.LastSeq, len(evs), wantStatus, len(want))
				}
				for k, ev := range evs {
					if ev.Seq != int64(k+1) || ev.Kind != want[k] {
						t.Fatalf("job %d event %d = %+v, want seq %d kind %s", i, k, ev, k+1, want[k])
					}
				}
				if i != 7 && (string(got.Result) != fmt.Sprintf(`{"i": %d}`, i) && string(got.Result) != fmt.Sprintf(`{"i":%d}`, i)) {
					t.Fatalf("job %d result = %s", i, got.Result)
				}
			}
			after := s.JobWriteStats()
			writes, commits := after.Writes-before.Writes, after.Commits-before.Commits
			if writes != 4*n {
				t.Fatalf("%d writes counted, want %d", writes, 4*n)
			}
			if commits >= writes {
				t.Fatalf("%d writes took %d commits: no grouping", writes, commits)
			}
			t.Logf("%d job writes in %d commits", writes, commits)
		})

		t.Run("a progress written in the background lands before the next write", func(t *testing.T) {
			j := mustCreate(t, s, newJob("async"))
			if _, err := s.StartAttempt(ctx, j.ID); err != nil {
				t.Fatal(err)
			}
			wait := s.ProgressAsync(ctx, j.ID, tokenlysis.JobEvent{Percent: 100, Message: "done"})
			done, err := s.Succeed(ctx, j.ID, nil)
			if err != nil || done.Seq != 4 {
				t.Fatalf("Succeed after a queued progress = %+v, %v; want seq 4", done, err)
			}
			ev, err := wait()
			if err != nil || ev.Seq != 3 || ev.Kind != tokenlysis.EventProgress || ev.CreatedAt.IsZero() {
				t.Fatalf("queued progress = %+v, %v; want seq 3", ev, err)
			}
			evs, _ := s.Events(ctx, j.ID, 0, 10)
			if len(evs) != 4 || evs[2].Message != "done" || evs[3].Kind != tokenlysis.EventSucceeded {
				t.Fatalf("events = %+v", evs)
			}
			// On a job that ended meanwhile, the outcome is the conflict.
			if _, err := s.ProgressAsync(ctx, j.ID, tokenlysis.JobEvent{Percent: 1})(); code(err) != tokenlysis.ECONFLICT {
				t.Fatalf("progress of a finished job = %v, want conflict", err)
			}
		})

		t.Run("a start, a progress and a success queued together land in order", func(t *testing.T) {
			j := mustCreate(t, s, newJob("chain"))
			start := s.StartAttemptAsync(ctx, j.ID)
			progress := s.ProgressAsync(ctx, j.ID, tokenlysis.JobEvent{Percent: 40, Message: "almost"})
			done, err := s.Succeed(ctx, j.ID, json.RawMessage(`{"steps":1}`))
			if err != nil || done.Seq != 4 {
				t.Fatalf("Succeed = %+v, %v; want seq 4", done, err)
			}
			if ev, err := start(); err != nil || ev.Seq != 2 || ev.Kind != tokenlysis.EventStarted {
				t.Fatalf("queued start = %+v, %v; want seq 2", ev, err)
			}
			if ev, err := progress(); err != nil || ev.Seq != 3 || ev.Message != "almost" {
				t.Fatalf("queued progress = %+v, %v; want seq 3", ev, err)
			}
			got, err := s.FindJob(ctx, j.ID)
			if err != nil || got.Status != tokenlysis.JobSucceeded || got.Attempts != 1 || got.Percent != 100 ||
				got.Message != "almost" || string(got.Result) != `{"steps": 1}` && string(got.Result) != `{"steps":1}` ||
				got.StartedAt == nil || got.FinishedAt == nil || got.LastSeq != 4 {
				t.Fatalf("job after the chain = %+v, %v", got, err)
			}
			evs, _ := s.Events(ctx, j.ID, 0, 10)
			kinds := make([]tokenlysis.EventKind, len(evs))
			for i, ev := range evs {
				kinds[i] = ev.Kind
				if ev.Seq != int64(i+1) {
					t.Fatalf("event %d has seq %d", i, ev.Seq)
				}
			}
			want := []tokenlysis.EventKind{tokenlysis.EventQueued, tokenlysis.EventStarted, tokenlysis.EventProgress, tokenlysis.EventSucceeded}
			if fmt.Sprint(kinds) != fmt.Sprint(want) {
				t.Fatalf("event kinds = %v, want %v", kinds, want)
			}
		})

		t.Run("a start, a progress and a success all queued linger into one commit", func(t *testing.T) {
			ls := sqlstore.New(db, sqlstore.Config{AsyncLinger: 200 * time.Millisecond, AsyncLingerIdle: 200 * time.Millisecond})
			j := mustCreate(t, ls, newJob("lingered"))
			before := ls.JobWriteStats()
			start := ls.StartAttemptAsync(ctx, j.ID)
			progress := ls.ProgressAsync(ctx, j.ID, tokenlysis.JobEvent{Percent: 100, Message: "step 1 of 1"})
			applied := make(chan bool, 2)
			done := ls.SucceedAsync(ctx, j.ID, json.RawMessage(`{"steps":1}`), func(ok bool) { applied <- ok })
			if ev, err := done(); err != nil || ev.Seq != 4 || ev.Kind != tokenlysis.EventSucceeded || ev.CreatedAt.IsZero() {
				t.Fatalf("queued success = %+v, %v; want seq 4", ev, err)
			}
			if ok := <-applied; !ok {
				t.Fatal("the success's then was told it did not apply")
			}
			if ev, err := start(); err != nil || ev.Seq != 2 {
				t.Fatalf("queued start = %+v, %v; want seq 2", ev, err)
			}
			if ev, err := progress(); err != nil || ev.Seq != 3 {
				t.Fatalf("queued progress = %+v, %v; want seq 3", ev, err)
			}
			after := ls.JobWriteStats()
			if w, c := after.Writes-before.Writes, after.Commits-before.Commits; w != 3 || c != 1 {
				t.Fatalf("%d writes in %d commits, want 3 in 1: the first queued write's group should linger for the others", w, c)
			}
			got, err := ls.FindJob(ctx, j.ID)
			if err != nil || got.Status != tokenlysis.JobSucceeded || got.LastSeq != 4 || got.Attempts != 1 {
				t.Fatalf("job = %+v, %v", got, err)
			}
			// A queued success of a job that is not running is refused.
			if _, err := ls.SucceedAsync(ctx, j.ID, nil, func(ok bool) { applied <- ok })(); code(err) != tokenlysis.ECONFLICT {
				t.Fatalf("second success = %v, want conflict", err)
			}
			if ok := <-applied; ok {
				t.Fatal("the refused success's then was told it applied")
			}
			// A write whose caller waits does not linger.
			slow := sqlstore.New(db, sqlstore.Config{AsyncLinger: 5 * time.Second})
			k := mustCreate(t, slow, newJob("waits"))
			began := time.Now()
			for _, write := range []func() error{
				func() error { _, err := slow.StartAttempt(ctx, k.ID); return err },
				func() error { _, err := slow.Progress(ctx, k.ID, tokenlysis.JobEvent{Percent: 1}); return err },
				func() error { _, err := slow.Succeed(ctx, k.ID, nil); return err },
			} {
				if err := write(); err != nil {
					t.Fatal(err)
				}
			}
			if d := time.Since(began); d >= 5*time.Second {
				t.Fatalf("three waited-for writes took %v: they lingered", d)
			}
		})

		t.Run("writes queued together after a cancel are all refused", func(t *testing.T) {
			j := mustCreate(t, s, newJob("chain"))
			if _, err := s.Cancel(ctx, j.ID); err != nil {
				t.Fatal(err)
			}
			start := s.StartAttemptAsync(ctx, j.ID)
			progress := s.ProgressAsync(ctx, j.ID, tokenlysis.JobEvent{Percent: 40})
			if _, err := s.Succeed(ctx, j.ID, nil); code(err) != tokenlysis.ECONFLICT {
				t.Fatalf("Succeed of a canceled job = %v, want conflict", err)
			}
			if _, err := start(); code(err) != tokenlysis.ECONFLICT {
				t.Fatalf("start of a canceled job = %v, want conflict", err)
			}
			if _, err := progress(); code(err) != tokenlysis.ECONFLICT {
				t.Fatalf("progress of a canceled job = %v, want conflict", err)
			}
			if _, err := s.StartAttemptAsync(ctx, "missing")(); code(err) != tokenlysis.ENOTFOUND {
				t.Fatalf("start of a missing job = %v, want not_found", err)
			}
			got, _ := s.FindJob(ctx, j.ID)
			if got.Status != tokenlysis.JobCanceled || got.Attempts != 0 || got.LastSeq != 2 {
				t.Fatalf("canceled job after refused writes = %+v", got)
			}
		})

		t.Run("a write the database refuses fails alone", func(t *testing.T) {
			// PostgreSQL refuses a result that is not JSON; in a group, that
			// must fail only its own write. (SQLite stores it as text.)
			const n = 24
			ids := make([]string, n)
			for i := range ids {
				ids[i] = mustCreate(t, s, newJob("refused")).ID
				if _, err := s.StartAttempt(ctx, ids[i]); err != nil {
					t.Fatal(err)
				}
			}
			errs := make([]error, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i, id := range ids {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					result := json.RawMessage(`{"ok":true}`)
					if i == 5 {
						result = json.RawMessage(`{"truncated":`)
					}
					_, errs[i] = s.Succeed(ctx, id, result)
				}()
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				bad := i == 5 && db.Dialect == database.Postgres
				if bad != (err != nil) {
					t.Fatalf("Succeed %d: %v (refusal expected: %v)", i, err, bad)
				}
				got, _ := s.FindJob(ctx, ids[i])
				if want := map[bool]tokenlysis.JobStatus{false: tokenlysis.JobSucceeded, true: tokenlysis.JobRunning}[bad]; got.Status != want {
					t.Fatalf("job %d is %s, want %s", i, got.Status, want)
				}
			}
		})

		t.Run("list filters and paginates newest first", func(t *testing.T) {
			owner := "lister-" + uuid.NewString()[:8]
			var ids []string
			for i := 0; i < 5; i++ {
				j := newJob(owner)
				if i%2 == 0 {
					j.Type = "other:type"
				}
				ids = append(ids, mustCreate(t, s, j).ID)
			}
			s.Cancel(ctx, ids[4])
			page, err := s.ListJobs(ctx, tokenlysis.JobFilter{SubmittedBy: &owner, Limit: 2})
			if err != nil || len(page) != 2 || page[0].ID != ids[4] || page[1].ID != ids[3] {
				t.Fatalf("page 1 = %v, %v", jobIDs(page), err)
			}
			page, _ = s.ListJobs(ctx, tokenlysis.JobFilter{SubmittedBy: &owner, Limit: 2, After: page[1].ID})
			if len(page) != 2 || page[0].ID != ids[2] || page[1].ID != ids[1] {
				t.Fatalf("page 2 = %v", jobIDs(page))
			}
			typ := "other:type"
			page, _ = s.ListJobs(ctx, tokenlysis.JobFilter{SubmittedBy: &owner, Type: &typ})
			if len(page) != 3 {
				t.Fatalf("type filter = %v", jobIDs(page))
			}
			st := tokenlysis.JobCanceled
			page, _ = s.ListJobs(ctx, tokenlysis.JobFilter{SubmittedBy: &owner, Status: &st})
			if len(page) != 1 || page[0].ID != ids[4] {
				t.Fatalf("status filter = %v", jobIDs(page))
			}
		})

		t.Run("purge removes old finished jobs with their events", func(t *testing.T) {
			j := mustCreate(t, s, newJob("purger"))
			s.Cancel(ctx, j.ID)
			keep := mustCreate(t, s, newJob("purger"))
			if _, err := s.PurgeFinished(ctx, time.Now().Add(-time.Hour)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.FindJob(ctx, j.ID); err != nil {
				t.Fatal("purged a job that finished less than an hour ago")
			}
			n, err := s.PurgeFinished(ctx, time.Now().Add(time.Second))
			if err != nil || n < 1 {
				t.Fatalf("PurgeFinished = %d, %v", n, err)
			}
			if _, err := s.FindJob(ctx, j.ID); code(err) != tokenlysis.ENOTFOUND {
				t.Fatalf("finished job still there: %v", err)
			}
			if evs, _ := s.Events(ctx, j.ID, 0, 10); len(evs) != 0 {
				t.Fatalf("events survived the purge: %v", evs)
			}
			if _, err := s.FindJob(ctx, keep.ID); err != nil {
				t.Fatalf("purged an unfinished job: %v", err)
			}
		})

		t.Run("delete undoes a job", func(t *testing.T) {
			j := mustCreate(t, s, newJob("alice"))
			if err := s.DeleteJob(ctx, j.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := s.FindJob(ctx, j.ID); code(err) != tokenlysis.ENOTFOUND {
				t.Fatalf("deleted job found: %v", err)
			}
		})

		t.Run("a dedupe key left held by a finished job is released", func(t *testing.T) {
			// A release older than 003_hot_jobs ends jobs without clearing
			// active_dedupe_key (a rolling deploy): such a stale hold must
			// not refuse the key for ever.
			key := "dedupe:stale:" + uuid.NewString()
			hold := func(id string) {
				t.Helper()
				if _, err := db.ExecContext(ctx, db.Rebind(`UPDATE jobs SET active_dedupe_key = dedupe_key WHERE id = ?`), id); err != nil {
					t.Fatal(err)
				}
			}
			j := newJob("dan")
			j.DedupeKey = key
			stale := mustCreate(t, s, j)
			if _, err := s.Cancel(ctx, stale.ID); err != nil {
				t.Fatal(err)
			}
			hold(stale.ID)
			j = newJob("erin")
			j.DedupeKey = key
			fresh := mustCreate(t, s, j)

			if _, err := s.Cancel(ctx, fresh.ID); err != nil {
				t.Fatal(err)
			}
			hold(fresh.ID)
			if _, err := s.Requeue(ctx, stale.ID); err != nil {
				t.Fatalf("Requeue beside a stale hold: %v", err)
			}
			if got, _ := s.FindJob(ctx, stale.ID); got.Status != tokenlysis.JobQueued {
				t.Fatalf("requeued job = %+v", got)
			}
		})

		t.Run("delete and purge remove their jobs' events and no other", func(t *testing.T) {
			// job_events has no foreign key to jobs (003_hot_jobs): the
			// store deletes the events itself.
			events := func(id string) int {
				t.Helper()
				var n int
				if err := db.GetContext(ctx, &n, db.Rebind(`SELECT COUNT(*) FROM job_events WHERE job_id = ?`), id); err != nil {
					t.Fatal(err)
				}
				return n
			}
			deleted := mustCreate(t, s, newJob("events"))
			if _, err := s.StartAttempt(ctx, deleted.ID); err != nil {
				t.Fatal(err)
			}
			purged := mustCreate(t, s, newJob("events"))
			if _, err := s.Cancel(ctx, purged.ID); err != nil {
				t.Fatal(err)
			}
			unfinished := mustCreate(t, s, newJob("events"))
			if _, err := s.StartAttempt(ctx, unfinished.ID); err != nil {
				t.Fatal(err)
			}
			if n := events(deleted.ID) + events(purged.ID); n != 4 {
				t.Fatalf("%d events before the deletes, want 4", n)
			}

			if err := s.DeleteJob(ctx, deleted.ID); err != nil {
				t.Fatal(err)
			}
			if n := events(deleted.ID); n != 0 {
				t.Fatalf("DeleteJob left %d events", n)
			}
			if n, err := s.PurgeFinished(ctx, time.Now().Add(time.Second)); err != nil || n < 1 {
				t.Fatalf("PurgeFinished = %d, %v", n, err)
			}
			if n := events(purged.ID); n != 0 {
				t.Fatalf("PurgeFinished left %d events", n)
			}
			if n := events(unfinished.ID); n != 2 {
				t.Fatalf("the unfinished job has %d events, want 2", n)
			}
			var orphans int
			if err := db.GetContext(ctx, &orphans, `SELECT COUNT(*) FROM job_events e WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = e.job_id)`); err != nil || orphans != 0 {
				t.Fatalf("%d events of deleted jobs left (%v)", orphans, err)
			}
		})
	})
}

func jobIDs(js []tokenlysis.Job) []string {
	ids := make([]string, len(js))
	for i, j := range js {
		ids[i] = j.ID
	}
	return ids
}

func TestUsers(t *testing.T) {
	databasetest.ForEach(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s := sqlstore.New(db, sqlstore.Config{})
		var created []tokenlysis.User
		for i := 0; i < 3; i++ {
			u := tokenlysis.User{Email: fmt.Sprintf("u%d@example.com", i), FullName: fmt.Sprintf("User %d", i)}
			if err := s.CreateUser(ctx, &u); err != nil {
				t.Fatal(err)
			}
			if u.ID == 0 {
				t.Fatal("CreateUser did not set the ID")
			}
			created = append(created, u)
		}
		dup := tokenlysis.User{Email: "u1@example.com"}
		if err := s.CreateUser(ctx, &dup); code(err) != tokenlysis.ECONFLICT || tokenlysis.ErrorField(err) != "email" {
			t.Fatalf("duplicate email: %v", err)
		}
		list, err := s.ListUsers(ctx, 0, 2)
		if err != nil || len(list) != 2 || list[0].Email != "u0@example.com" {
			t.Fatalf("ListUsers = %+v, %v", list, err)
		}
		list, _ = s.ListUsers(ctx, list[1].ID, 10)
		if len(list) != 1 || list[0].ID != created[2].ID {
			t.Fatalf("page 2 = %+v", list)
		}
		u, err := s.FindUserByEmail(ctx, "u2@example.com")
		if err != nil || u.FullName != "User 2" {
			t.Fatalf("FindUserByEmail = %+v, %v", u, err)
		}
		if _, err := s.FindUserByEmail(ctx, "none@example.com"); code(err) != tokenlysis.ENOTFOUND {
			t.Fatalf("missing user: %v", err)
		}
	})
}

// TestJobs_HOTUpdatesPostgres checks that PostgreSQL updates a job row
// through its life as heap-only tuples (HOT, no index entry written): no
// index of jobs may cover a column that a transition changes, status
// first (003_hot_jobs). The store runs on a pool of one connection, so
// that pg_stat_force_next_flush() on it publishes the counts of every
// update the store made, before the next query reads them.
func TestJobs_HOTUpdatesPostgres(t *testing.T) {
	ctx := context.Background()
	u := databasetest.NewURL(t, database.Postgres)
	// Migrations hold an advisory lock on a connection of their own: not
	// on the pool of one.
	mdb, err := database.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	_, err = migrations.Up(ctx, mdb)
	mdb.Close()
	if err != nil {
		t.Fatal(err)
	}
	db, err := database.Open(ctx, u, database.Options{MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := sqlstore.New(db, sqlstore.Config{})
	updates := func() (all, hot int64) {
		t.Helper()
		if _, err := db.ExecContext(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
			t.Fatal(err)
		}
		err := db.QueryRowContext(ctx, `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'jobs'`).Scan(&all, &hot)
		if err != nil {
			t.Fatal(err)
		}
		return all, hot
	}

	j := mustCreate(t, s, newJob("hot"))
	all0, hot0 := updates()
	if _, err := s.StartAttempt(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Progress(ctx, j.ID, tokenlysis.JobEvent{Percent: 50, Message: "half"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Succeed(ctx, j.ID, json.RawMessage(`{"ok":true}`)); err != nil {
		t.Fatal(err)
	}
	all, hot := updates()
	if all-all0 != 3 || hot-hot0 != 3 {
		t.Fatalf("start, progress and success: %d updates of jobs, %d of them HOT; want 3 and 3", all-all0, hot-hot0)
	}
}
