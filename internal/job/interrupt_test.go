package job_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/job"
	"github.com/tokenlysis/tokenlysis/internal/sqlstore"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// A worker's shutdown timeout ends an attempt (its last one: max_retry 0)
// whose handler stops when its context is canceled: asynq requeues the
// task, so the attempt must not be recorded as failed. Before, the job
// ended failed with "context canceled", and the next worker dropped the
// requeued task of a finished job. Found by a review helper.
func TestShutdownHandsTheLastAttemptOn(t *testing.T) {
	started := make(chan struct{}, 4)
	h := func(ctx context.Context, _ *asynq.Task) error {
		started <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}
	tb := setup(t, database.SQLite, map[string]asynq.HandlerFunc{"t:long": h})
	tb.srv.Shutdown()
	srv, runner := startServer(t, tb.store, 300*time.Millisecond, job.RunnerConfig{}, map[string]asynq.HandlerFunc{"t:long": h})
	zero := 0
	j, _, err := tb.svc.Submit(context.Background(), tb.user, job.SubmitRequest{Type: "t:long", Params: json.RawMessage(`{}`), MaxRetry: &zero})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	tb.waitFor(t, j.ID, func(j tokenlysis.Job) bool { return j.Status == tokenlysis.JobRunning })
	runner.Stopping()
	srv.Shutdown()
	runner.Wait()
	if got, _ := tb.store.FindJob(context.Background(), j.ID); got.Status != tokenlysis.JobRunning {
		t.Fatalf("after the shutdown the job is %s (%q), want running: its task was requeued", got.Status, got.Error)
	}
	startServer(t, tb.store, time.Second, job.RunnerConfig{}, map[string]asynq.HandlerFunc{"t:long": func(context.Context, *asynq.Task) error { return nil }})
	done := tb.waitFor(t, j.ID, func(j tokenlysis.Job) bool { return j.Status.Terminal() })
	if done.Status != tokenlysis.JobSucceeded {
		t.Fatalf("job %s (%q) after a new worker, want succeeded; events %s", done.Status, done.Error, tb.kinds(t, j.ID))
	}
	if k := tb.kinds(t, j.ID); k != "queued,started,started,succeeded" {
		t.Fatalf("events %s", k)
	}
}

// failFails is a store whose Fail cannot be written (a database blip).
type failFails struct{ *sqlstore.Store }

func (s failFails) Fail(context.Context, string, string) (tokenlysis.JobEvent, error) {
	return tokenlysis.JobEvent{}, tokenlysis.Errorf(tokenlysis.EUNAVAILABLE, "The database is unavailable.")
}

// The last attempt's failure cannot be written: asynq archives the task
// and the job stays running. The reconciler, which counted an archived
// task as present, left it so for good; it now records the failure with
// the task's last error. Found by a review helper.
func TestReconcilerEndsAJobWhoseTaskIsArchived(t *testing.T) {
	h := func(context.Context, *asynq.Task) error { return errors.New("boom") }
	tb := setup(t, database.SQLite, map[string]asynq.HandlerFunc{"t:bad": h})
	tb.srv.Shutdown()
	startServer(t, failFails{tb.store}, time.Second, job.RunnerConfig{}, map[string]asynq.HandlerFunc{"t:bad": h})
	zero := 0
	j, _, err := tb.svc.Submit(context.Background(), tb.user, job.SubmitRequest{Type: "t:bad", Params: json.RawMessage(`{}`), MaxRetry: &zero})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if info, err := tb.inspector.GetTaskInfo("default", j.ID); err == nil && info.State == asynq.TaskStateArchived {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the task was never archived")
		}
	}
	if got, _ := tb.store.FindJob(context.Background(), j.ID); got.Status != tokenlysis.JobRunning {
		t.Fatalf("before the reconciler: %s, want running", got.Status)
	}
	if _, err := tb.reconciler.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, _ := tb.store.FindJob(context.Background(), j.ID)
	if got.Status != tokenlysis.JobFailed || got.Error != "boom" {
		t.Fatalf("after the reconciler: %s %q, want failed \"boom\"", got.Status, got.Error)
	}
}

// A canceled attempt whose handler does not stop at once (deaf to its
// context, like a long CPU-bound step), then a retry of the job: when the
// old attempt ends during the new run, its success, reports and failure
// must not apply to the new run. Before, every write only checked that the
// job was running, so the canceled run's success ended the retried one
// with the old result while it was still running. Each attempt now holds
// a run token (jobs.run_id) that its writes must match. Found by a review
// helper.
func TestAStaleAttemptCannotEndTheNextRun(t *testing.T) {
	for _, d := range []database.Dialect{database.SQLite, database.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			var calls atomic.Int32
			release1, release2 := make(chan struct{}), make(chan struct{})
			obs := &outcomes{}
			tb := setupWith(t, d, setupConfig{observer: obs}, map[string]asynq.HandlerFunc{"t:deaf": func(ctx context.Context, _ *asynq.Task) error {
				if calls.Add(1) == 1 {
					<-release1
					job.Report(ctx, 50, "old run", nil)
					return job.SetResult(ctx, "old run")
				}
				<-release2
				return job.SetResult(ctx, "new run")
			}})
			var once1, once2 sync.Once
			free1, free2 := func() { once1.Do(func() { close(release1) }) }, func() { once2.Do(func() { close(release2) }) }
			t.Cleanup(func() { free1(); free2() }) // before the server's shutdown, which waits for the handlers
			j := tb.submit(t, "t:deaf")
			tb.waitFor(t, j.ID, func(j tokenlysis.Job) bool { return j.Status == tokenlysis.JobRunning })
			if _, err := tb.svc.Cancel(context.Background(), tb.user, j.ID); err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				_, err := tb.svc.Retry(context.Background(), tb.user, j.ID)
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("retry: %v", err)
				}
			}
			for calls.Load() < 2 {
				time.Sleep(10 * time.Millisecond)
			}
			tb.waitFor(t, j.ID, func(j tokenlysis.Job) bool { return j.Status == tokenlysis.JobRunning })
			free1() // the canceled attempt ends now, while the retry runs
			// Its end is the first the Runner observes (the retry's handler
			// is held): wait for it, its writes refused or applied.
			for deadline := time.Now().Add(10 * time.Second); len(obs.list()) == 0; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the canceled attempt never ended")
				}
			}
			if got, _ := tb.store.FindJob(context.Background(), j.ID); got.Status != tokenlysis.JobRunning {
				t.Fatalf("while the retried run runs: job %s, result %s; events %s", got.Status, got.Result, tb.kinds(t, j.ID))
			}
			free2()
			done := tb.waitFor(t, j.ID, func(j tokenlysis.Job) bool { return j.Status.Terminal() })
			if done.Status != tokenlysis.JobSucceeded || string(done.Result) != `"new run"` {
				t.Fatalf("job %s result %s, want succeeded \"new run\"; events %s", done.Status, done.Result, tb.kinds(t, j.ID))
			}
			if k := tb.kinds(t, j.ID); k != "queued,started,canceled,queued,started,succeeded" {
				t.Fatalf("events %s", k)
			}
		})
	}
}

// A handler's context canceled while the worker is not stopping, and the
// job not canceled (a late cancel of an earlier run, delivered by task ID
// to this one), is an ordinary failed attempt: recorded retrying, and run
// again. Only the worker's shutdown leaves an interrupted attempt
// unrecorded.
func TestACanceledContextOutsideShutdownIsAFailedAttempt(t *testing.T) {
	var calls atomic.Int32
	tb := setup(t, database.SQLite, map[string]asynq.HandlerFunc{"t:wait": func(ctx context.Context, _ *asynq.Task) error {
		if calls.Add(1) == 1 {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}})
	j := tb.submit(t, "t:wait")
	tb.waitFor(t, j.ID, func(j tokenlysis.Job) bool { return j.Status == tokenlysis.JobRunning })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if info, err := tb.inspector.GetTaskInfo("default", j.ID); err == nil && info.State == asynq.TaskStateActive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the task never became active")
		}
	}
	if err := tb.inspector.CancelProcessing(j.ID); err != nil {
		t.Fatal(err)
	}
	done := tb.waitFor(t, j.ID, func(j tokenlysis.Job) bool { return j.Status.Terminal() })
	if done.Status != tokenlysis.JobSucceeded {
		t.Fatalf("job %s (%q), want succeeded on its second attempt", done.Status, done.Error)
	}
	if k := tb.kinds(t, j.ID); k != "queued,started,retrying,started,succeeded" {
		t.Fatalf("events %s, want the canceled context recorded as a failed attempt", k)
	}
}
