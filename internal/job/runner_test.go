package job_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/tokenlysis/tokenlysis/internal/auth"
	"github.com/tokenlysis/tokenlysis/internal/authz"
	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/database/databasetest"
	"github.com/tokenlysis/tokenlysis/internal/events"
	"github.com/tokenlysis/tokenlysis/internal/job"
	"github.com/tokenlysis/tokenlysis/internal/redistest"
	"github.com/tokenlysis/tokenlysis/internal/sqlstore"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

const redisDB = 4

type testBundle struct {
	srv        *asynq.Server
	runner     *job.Runner
	bus        *events.Bus
	inspector  *asynq.Inspector
	svc        *job.Service
	store      *sqlstore.Store
	user       auth.Principal
	reconciler *job.Reconciler
}

// setup runs a real asynq server with the Runner middleware over real
// Redis and a fresh database, with the test's handlers.
func setup(t *testing.T, d database.Dialect, handlers map[string]asynq.HandlerFunc) testBundle {
	t.Helper()
	return setupWith(t, d, setupConfig{}, handlers)
}

// setupConfig varies setup.
type setupConfig struct {
	linger   time.Duration // the store's AsyncLinger and AsyncLingerIdle: a fixed wait (0: the defaults)
	observer job.Observer
}

func setupWith(t *testing.T, d database.Dialect, cfg setupConfig, handlers map[string]asynq.HandlerFunc) testBundle {
	t.Helper()
	db := databasetest.New(t, d)
	rdb := redistest.Client(t, redisDB, "jobtest")
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	bus := events.NewBus(rdb, events.Config{Channel: redistest.Prefix() + "events"})
	store := sqlstore.New(db, sqlstore.Config{Announcer: job.NewAnnouncer(bus, nil), AsyncLinger: cfg.linger, AsyncLingerIdle: cfg.linger})
	busCtx, stopBus := context.WithCancel(context.Background())
	busDone := make(chan struct{})
	go func() { bus.Run(busCtx); close(busDone) }()
	t.Cleanup(func() { stopBus(); <-busDone })
	waitBusLive(t, bus)
	az, _ := authz.New(authz.Config{})
	var specs []job.Spec
	for typ := range handlers {
		specs = append(specs, job.Spec{Type: typ, Permission: authz.JobsSubmit, MaxRetry: 2,
			Validate: func(p json.RawMessage) (json.RawMessage, error) { return p, nil }})
	}
	reg, err := job.NewRegistry(specs...)
	if err != nil {
		t.Fatal(err)
	}
	inspector := asynq.NewInspectorFromRedisClient(rdb)
	svc := job.NewService(store, asynq.NewClientFromRedisClient(rdb), inspector, az, reg, job.ServiceConfig{})

	srv, runner := startServer(t, store, 0, job.RunnerConfig{Observer: cfg.observer}, handlers)
	// Grace < 0: every unfinished job is checked, however fresh.
	rec := job.NewReconciler(store, asynq.NewClientFromRedisClient(rdb), inspector, reg, job.ReconcilerConfig{Grace: -time.Second, Settle: -1})
	return testBundle{srv: srv, runner: runner, bus: bus, inspector: inspector, svc: svc, store: store, user: auth.Principal{Subject: "tester", Roles: []string{"user"}}, reconciler: rec}
}

// startServer runs an asynq server on the package's Redis index with a
// Runner over store and the given handlers, stopped at the test's end.
// shutdown is asynq's ShutdownTimeout (0: asynq's default).
func startServer(t *testing.T, store job.RunStore, shutdown time.Duration, rcfg job.RunnerConfig, handlers map[string]asynq.HandlerFunc) (*asynq.Server, *job.Runner) {
	t.Helper()
	redisOpt, _ := asynq.ParseRedisURI(redistest.URL(t, redisDB))
	srv := asynq.NewServer(redisOpt, asynq.Config{
		Concurrency: 4, TaskCheckInterval: 20 * time.Millisecond, DelayedTaskCheckInterval: 20 * time.Millisecond,
		RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return 10 * time.Millisecond },
		LogLevel:       asynq.FatalLevel, ShutdownTimeout: shutdown,
	})
	mux := asynq.NewServeMux()
	runner := job.NewRunner(store, rcfg)
	mux.Use(runner.Middleware)
	for typ, h := range handlers {
		mux.Handle(typ, h)
	}
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); runner.Wait() })
	return srv, runner
}

// sameJSON reports whether a and b hold the same JSON value (PostgreSQL
// stores JSONB in its own spacing), or are both empty.
func sameJSON(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var va, vb any
	return json.Unmarshal(a, &va) == nil && json.Unmarshal(b, &vb) == nil && reflect.DeepEqual(va, vb)
}

// waitBusLive returns once bus receives its own publications.
func waitBusLive(t *testing.T, bus *events.Bus) {
	t.Helper()
	probe := bus.Subscribe("probe")
	defer probe.Close()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if err := bus.Publish(context.Background(), "probe", []byte("x")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-probe.C:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatal("the events bus never received its own publication")
}

func (tb testBundle) submit(t *testing.T, typ string) tokenlysis.Job {
	t.Helper()
	j, _, err := tb.svc.Submit(context.Background(), tb.user, job.SubmitRequest{Type: typ, Params: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// waitFor polls the job until cond holds, failing after 10 s.
func (tb testBundle) waitFor(t *testing.T, id string, cond func(tokenlysis.Job) bool) tokenlysis.Job {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := tb.store.FindJob(context.Background(), id)
		if err == nil && cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s never reached the expected state; last: %+v (err %v)", id, j, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (tb testBundle) kinds(t *testing.T, id string) string {
	t.Helper()
	evs, err := tb.store.Events(context.Background(), id, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var ks []string
	for i, ev := range evs {
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, ev.Seq)
		}
		ks = append(ks, string(ev.Kind))
	}
	return strings.Join(ks, ",")
}

func terminal(j tokenlysis.Job) bool { return j.Status.Terminal() }

// waitTaskGone polls until the job's asynq task has left Redis: once it
// has, nothing can run the job again, and its record is final. (A retry
// would keep the task, in asynq's retry set.)
func (tb testBundle) waitTaskGone(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := tb.inspector.GetTaskInfo("default", id)
		if errors.Is(err, asynq.ErrTaskNotFound) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s still in asynq (err %v)", id, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunner(t *testing.T) {
	for _, d := range databasetest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			var flaky atomic.Int32
			release := make(chan struct{})
			lateReport := make(chan error, 1)
			gate := make(chan struct{})
			tb := setup(t, d, map[string]asynq.HandlerFunc{
				"t:gated": func(ctx context.Context, _ *asynq.Task) error {
					<-gate
					job.Report(ctx, 30, "one", nil)
					job.Report(ctx, 60, "two", map[string]int{"n": 2})
					return nil
				},
				"t:late": func(ctx context.Context, _ *asynq.Task) error {
					job.Report(ctx, 1, "first", nil)
					<-ctx.Done()                     // canceled
					job.Report(ctx, 50, "late", nil) // written in the background: refused
					lateReport <- job.Report(ctx, 60, "later", nil)
					return nil
				},
				"t:ok": func(ctx context.Context, _ *asynq.Task) error {
					if err := job.Report(ctx, 50, "half", map[string]int{"n": 1}); err != nil {
						return err
					}
					return job.SetResult(ctx, map[string]string{"answer": "42"})
				},
				"t:flaky": func(ctx context.Context, _ *asynq.Task) error {
					if flaky.Add(1) == 1 {
						return errors.New("transient")
					}
					return nil
				},
				"t:broken": func(ctx context.Context, _ *asynq.Task) error { return errors.New("always broken") },
				"t:panics": func(ctx context.Context, _ *asynq.Task) error { panic("boom") },
				"t:blocks2": func(ctx context.Context, _ *asynq.Task) error {
					<-ctx.Done()
					return ctx.Err()
				},
				"t:skip": func(ctx context.Context, _ *asynq.Task) error {
					return fmt.Errorf("bad input: %w", asynq.SkipRetry)
				},
				"t:blocks": func(ctx context.Context, _ *asynq.Task) error {
					job.Report(ctx, 1, "waiting", nil)
					select {
					case <-release:
					case <-ctx.Done():
					}
					// Whatever the handler does now, the cancel stands.
					return job.Report(ctx, 99, "after cancel", nil)
				},
			})

			t.Run("success records progress, result and events", func(t *testing.T) {
				j := tb.waitFor(t, tb.submit(t, "t:ok").ID, terminal)
				if j.Status != tokenlysis.JobSucceeded || j.Attempts != 1 || !strings.Contains(string(j.Result), "42") || j.Percent != 100 {
					t.Fatalf("job = %+v", j)
				}
				if got := tb.kinds(t, j.ID); got != "queued,started,progress,succeeded" {
					t.Fatalf("events = %s", got)
				}
			})
			t.Run("the events of a run are published once committed, in order", func(t *testing.T) {
				j := tb.submit(t, "t:gated")
				tb.waitFor(t, j.ID, func(j tokenlysis.Job) bool { return j.Status == tokenlysis.JobRunning })
				sub := tb.bus.Subscribe(j.ID)
				defer sub.Close()
				close(gate)
				tb.waitFor(t, j.ID, terminal)
				stored, err := tb.store.Events(context.Background(), j.ID, 2, 100) // after "queued" and "started"
				if err != nil || len(stored) != 3 {
					t.Fatalf("stored events after the start: %+v (%v)", stored, err)
				}
				// "started" is committed before it is published, so it can still
				// reach a subscriber that saw the job running: skip it.
				published := func() tokenlysis.JobEvent {
					for {
						select {
						case payload := <-sub.C:
							var got tokenlysis.JobEvent
							if err := json.Unmarshal(payload, &got); err != nil {
								t.Fatalf("payload %s: %v", payload, err)
							}
							if got.JobID != j.ID || got.Seq > 2 {
								return got
							}
						case <-time.After(5 * time.Second):
							return tokenlysis.JobEvent{}
						}
					}
				}
				for _, want := range stored {
					got := published()
					if got.JobID != j.ID || got.Seq != want.Seq || got.Kind != want.Kind || got.Percent != want.Percent ||
						got.Message != want.Message || !sameJSON(got.Data, want.Data) || !got.CreatedAt.Equal(want.CreatedAt) {
						t.Fatalf("published %+v, want the stored %+v", got, want)
					}
				}
			})
			t.Run("a failed attempt is retried and the job succeeds", func(t *testing.T) {
				j := tb.waitFor(t, tb.submit(t, "t:flaky").ID, terminal)
				if j.Status != tokenlysis.JobSucceeded || j.Attempts != 2 {
					t.Fatalf("job = %+v", j)
				}
				if got := tb.kinds(t, j.ID); got != "queued,started,retrying,started,succeeded" {
					t.Fatalf("events = %s", got)
				}
			})
			t.Run("the last retry fails the job", func(t *testing.T) {
				j := tb.waitFor(t, tb.submit(t, "t:broken").ID, terminal)
				if j.Status != tokenlysis.JobFailed || j.Attempts != 3 || !strings.Contains(j.Error, "always broken") {
					t.Fatalf("job = %+v", j)
				}
				if got := tb.kinds(t, j.ID); got != "queued,started,retrying,started,retrying,started,failed" {
					t.Fatalf("events = %s", got)
				}
			})
			t.Run("a panic is an attempt's error", func(t *testing.T) {
				j := tb.waitFor(t, tb.submit(t, "t:panics").ID, terminal)
				if j.Status != tokenlysis.JobFailed || !strings.Contains(j.Error, "panic: boom") {
					t.Fatalf("job = %+v", j)
				}
			})
			t.Run("SkipRetry fails at once", func(t *testing.T) {
				j := tb.waitFor(t, tb.submit(t, "t:skip").ID, terminal)
				if j.Status != tokenlysis.JobFailed || j.Attempts != 1 {
					t.Fatalf("job = %+v", j)
				}
			})
			t.Run("cancel while running ends canceled, never retried", func(t *testing.T) {
				j := tb.submit(t, "t:blocks")
				tb.waitFor(t, j.ID, func(j tokenlysis.Job) bool { return j.Percent == 1 })
				if _, err := tb.svc.Cancel(context.Background(), tb.user, j.ID); err != nil {
					t.Fatal(err)
				}
				close(release)
				j = tb.waitFor(t, j.ID, terminal)
				if j.Status != tokenlysis.JobCanceled {
					t.Fatalf("job = %+v", j)
				}
				tb.waitTaskGone(t, j.ID)
				if got := tb.kinds(t, j.ID); got != "queued,started,progress,canceled" {
					t.Fatalf("events = %s", got)
				}
			})
			t.Run("the reconciler re-enqueues a job that lost its task, once", func(t *testing.T) {
				// A row whose task never reached Redis (the API died in between).
				lost, _, err := tb.store.CreateJob(context.Background(), tokenlysis.Job{
					ID: "01a20000-0000-7000-8000-" + fmt.Sprintf("%012d", time.Now().UnixNano()%1e12), Type: "t:ok", Queue: "default",
					Params: json.RawMessage(`{}`), MaxRetry: 2, SubmittedBy: "tester",
				})
				if err != nil {
					t.Fatal(err)
				}
				held := tb.submit(t, "t:blocks2")
				tb.waitFor(t, held.ID, func(j tokenlysis.Job) bool { return j.Status == tokenlysis.JobRunning })
				n, err := tb.reconciler.Reconcile(context.Background())
				if err != nil || n != 1 {
					t.Fatalf("Reconcile = %d, %v; want exactly the lost job", n, err)
				}
				j := tb.waitFor(t, lost.ID, terminal)
				if j.Status != tokenlysis.JobSucceeded || j.Attempts != 1 {
					t.Fatalf("reconciled job = %+v", j)
				}
				if n, _ := tb.reconciler.Reconcile(context.Background()); n != 0 {
					t.Fatalf("second pass re-enqueued %d jobs", n)
				}
				tb.svc.Cancel(context.Background(), tb.user, held.ID)
			})
			t.Run("a report after the cancel returns the conflict", func(t *testing.T) {
				j := tb.submit(t, "t:late")
				tb.waitFor(t, j.ID, func(j tokenlysis.Job) bool { return j.Status == tokenlysis.JobRunning && j.Percent == 1 })
				if _, err := tb.svc.Cancel(context.Background(), tb.user, j.ID); err != nil {
					t.Fatal(err)
				}
				select {
				case err := <-lateReport:
					if tokenlysis.ErrorCode(err) != tokenlysis.ECONFLICT {
						t.Fatalf("report after a refused one = %v, want conflict", err)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("the handler never reported after the cancel")
				}
				tb.waitTaskGone(t, j.ID)
				if got := tb.kinds(t, j.ID); got != "queued,started,progress,canceled" {
					t.Fatalf("events = %s", got)
				}
			})
			t.Run("a job canceled before it starts never runs", func(t *testing.T) {
				// Every worker slot is held, so the job cannot start before
				// the cancel.
				var held []tokenlysis.Job
				for range 4 {
					held = append(held, tb.submit(t, "t:blocks2"))
				}
				for _, h := range held {
					tb.waitFor(t, h.ID, func(j tokenlysis.Job) bool { return j.Status == tokenlysis.JobRunning })
				}
				j := tb.submit(t, "t:ok")
				if _, err := tb.svc.Cancel(context.Background(), tb.user, j.ID); err != nil {
					t.Fatalf("Cancel = %v", err)
				}
				for _, h := range held {
					tb.svc.Cancel(context.Background(), tb.user, h.ID)
				}
				tb.waitTaskGone(t, j.ID)
				if got := tb.kinds(t, j.ID); got != "queued,canceled" {
					t.Fatalf("events = %s", got)
				}
			})
		})
	}
}

// outcomes records what the Runner observed of each attempt.
type outcomes struct {
	mu  sync.Mutex
	got []string
}

func (o *outcomes) AttemptDone(jobType, outcome string, _ error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, jobType+" "+outcome)
}

func (o *outcomes) list() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.got)
}

// The end of a successful attempt is committed in the background: asynq
// is told the task is done at once, and Wait returns once the success is
// recorded.
func TestRunnerRecordsSuccessAfterTheTaskIsDone(t *testing.T) {
	for _, d := range databasetest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			obs := &outcomes{}
			// A long linger holds the job's writes well after asynq is done.
			tb := setupWith(t, d, setupConfig{linger: time.Second, observer: obs}, map[string]asynq.HandlerFunc{
				"t:ok": func(ctx context.Context, _ *asynq.Task) error {
					if err := job.Report(ctx, 50, "half", nil); err != nil {
						return err
					}
					return job.SetResult(ctx, map[string]int{"n": 1})
				},
			})
			j := tb.submit(t, "t:ok")
			tb.waitTaskGone(t, j.ID)
			got, err := tb.store.FindJob(context.Background(), j.ID)
			if err != nil || got.Status.Terminal() {
				t.Fatalf("job when its task left asynq = %+v, %v; want it unfinished, its writes still lingering", got, err)
			}
			tb.srv.Shutdown()
			tb.runner.Wait()
			got, err = tb.store.FindJob(context.Background(), j.ID)
			if err != nil || got.Status != tokenlysis.JobSucceeded || got.Attempts != 1 || !strings.Contains(string(got.Result), `"n"`) {
				t.Fatalf("job after Wait = %+v, %v; want it succeeded", got, err)
			}
			if k := tb.kinds(t, j.ID); k != "queued,started,progress,succeeded" {
				t.Fatalf("events = %s", k)
			}
			if o := obs.list(); !slices.Equal(o, []string{"t:ok succeeded"}) {
				t.Fatalf("observed %v, want one success", o)
			}
		})
	}
}

// A success the store refuses (the job was canceled while the handler
// went on) is looked into off the committing
// goroutine: the attempt is observed as canceled, the cancel stands, and
// Wait waits for it too.
func TestRunnerObservesARefusedSuccessAsCanceled(t *testing.T) {
	for _, d := range databasetest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			obs := &outcomes{}
			release := make(chan struct{})
			tb := setupWith(t, d, setupConfig{observer: obs}, map[string]asynq.HandlerFunc{
				"t:deaf": func(context.Context, *asynq.Task) error {
					<-release
					return nil
				},
			})
			j := tb.submit(t, "t:deaf")
			tb.waitFor(t, j.ID, func(j tokenlysis.Job) bool { return j.Status == tokenlysis.JobRunning })
			// Canceled in SQL only, so that asynq does not retry the task
			// (Service.Cancel would also cancel its context).
			if _, err := tb.store.Cancel(context.Background(), j.ID); err != nil {
				t.Fatal(err)
			}
			close(release)
			tb.waitTaskGone(t, j.ID)
			tb.srv.Shutdown()
			tb.runner.Wait()
			if o := obs.list(); !slices.Equal(o, []string{"t:deaf canceled"}) {
				t.Fatalf("observed %v, want the attempt canceled", o)
			}
			got, err := tb.store.FindJob(context.Background(), j.ID)
			if err != nil || got.Status != tokenlysis.JobCanceled {
				t.Fatalf("job = %+v, %v; want it canceled", got, err)
			}
			if k := tb.kinds(t, j.ID); k != "queued,started,canceled" {
				t.Fatalf("events = %s", k)
			}
		})
	}
}

// movingStore is the real store, whose stale jobs move on (here: are
// canceled) right after StaleJobs has read them, as a job does that runs
// and ends between the reconciler's scan and its look at asynq.
type movingStore struct {
	*sqlstore.Store
}

func (s movingStore) StaleJobs(ctx context.Context, before time.Time, limit int) ([]tokenlysis.Job, error) {
	jobs, err := s.Store.StaleJobs(ctx, before, limit)
	for _, j := range jobs {
		if _, cerr := s.Store.Cancel(ctx, j.ID); cerr != nil {
			return nil, cerr
		}
	}
	return jobs, err
}

// A job whose record changed after the reconciler read it is not
// re-enqueued: it was not lost, it ran (its success may be committed just
// after asynq dropped its task).
func TestReconcilerSkipsAJobThatMovedOn(t *testing.T) {
	for _, d := range databasetest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			tb := setup(t, d, map[string]asynq.HandlerFunc{"t:ok": func(context.Context, *asynq.Task) error { return nil }})
			lost, _, err := tb.store.CreateJob(context.Background(), tokenlysis.Job{
				ID: "01a20000-0000-7000-8000-" + fmt.Sprintf("%012d", time.Now().UnixNano()%1e12), Type: "t:ok", Queue: "default",
				Params: json.RawMessage(`{}`), MaxRetry: 2, SubmittedBy: "tester",
			})
			if err != nil {
				t.Fatal(err)
			}
			reg, _ := job.NewRegistry(job.Spec{Type: "t:ok", Permission: authz.JobsSubmit,
				Validate: func(p json.RawMessage) (json.RawMessage, error) { return p, nil }})
			rdb := redistest.Client(t, redisDB, "jobtest")
			rec := job.NewReconciler(movingStore{tb.store}, asynq.NewClientFromRedisClient(rdb), tb.inspector, reg,
				job.ReconcilerConfig{Grace: -time.Second, Settle: -1})
			if n, err := rec.Reconcile(context.Background()); err != nil || n != 0 {
				t.Fatalf("Reconcile = %d, %v; want nothing re-enqueued", n, err)
			}
			if _, err := tb.inspector.GetTaskInfo("default", lost.ID); !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound) {
				t.Fatalf("task of the job that moved on: %v, want none", err)
			}
		})
	}
}
