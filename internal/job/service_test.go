package job_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/tokenlysis/tokenlysis/internal/auth"
	"github.com/tokenlysis/tokenlysis/internal/authz"
	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/database/databasetest"
	"github.com/tokenlysis/tokenlysis/internal/job"
	"github.com/tokenlysis/tokenlysis/internal/redistest"
	"github.com/tokenlysis/tokenlysis/internal/sqlstore"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// hookedInspector runs before once, ahead of its first DeleteTask: what
// another request does between a cancel's write and its delete.
type hookedInspector struct {
	*asynq.Inspector
	before func()
}

func (h *hookedInspector) DeleteTask(queue, id string) error {
	if f := h.before; f != nil {
		h.before = nil
		f()
	}
	return h.Inspector.DeleteTask(queue, id)
}

// race is what the race tests build their services from: a fresh
// database, the package's Redis index flushed, and one job type,
// test:idle, that no worker runs.
type race struct {
	store     *sqlstore.Store
	client    *asynq.Client
	inspector *asynq.Inspector
	az        *authz.Enforcer
	reg       *job.Registry
}

func newRace(t *testing.T) race {
	t.Helper()
	db := databasetest.New(t, database.SQLite)
	rdb := redistest.Client(t, redisDB, "servicetest")
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	az, _ := authz.New(authz.Config{})
	reg, err := job.NewRegistry(job.Spec{Type: "test:idle", Permission: authz.JobsSubmit,
		Validate: func(p json.RawMessage) (json.RawMessage, error) { return p, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return race{store: sqlstore.New(db, sqlstore.Config{}), client: asynq.NewClientFromRedisClient(rdb),
		inspector: asynq.NewInspectorFromRedisClient(rdb), az: az, reg: reg}
}

// A retry that comes between a cancel's write and the cancel's delete of
// the task makes a new task, which that delete then removes: the job was
// left queued without a task until the reconciler's grace (a minute) was
// over. The cancel now puts the task back.
func TestRetryBetweenACancelsWriteAndItsDelete(t *testing.T) {
	r := newRace(t)
	store, client, inspector, az, reg := r.store, r.client, r.inspector, r.az, r.reg
	plain := job.NewService(store, client, inspector, az, reg, job.ServiceConfig{})
	hooked := &hookedInspector{Inspector: inspector}
	racing := job.NewService(store, client, hooked, az, reg, job.ServiceConfig{})
	user := auth.Principal{Subject: "racer", Roles: []string{"user"}}
	ctx := context.Background()

	j, _, err := plain.Submit(ctx, user, job.SubmitRequest{Type: "test:idle", Params: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	hooked.before = func() {
		if _, err := plain.Retry(ctx, user, j.ID); err != nil {
			t.Errorf("retry between the cancel's write and its delete: %v", err)
		}
	}
	if _, err := racing.Cancel(ctx, user, j.ID); err != nil {
		t.Fatal(err)
	}
	now, err := store.FindJob(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if now.Status != tokenlysis.JobQueued {
		t.Fatalf("status %s, want queued (the retry came last)", now.Status)
	}
	info, err := inspector.GetTaskInfo(j.Queue, j.ID)
	if errors.Is(err, asynq.ErrTaskNotFound) {
		t.Fatal("the job is queued and its task is gone")
	} else if err != nil {
		t.Fatal(err)
	}
	if info.State != asynq.TaskStatePending {
		t.Fatalf("task state %s, want pending", info.State)
	}
}

// hookedQueue runs before once, ahead of its first enqueue.
type hookedQueue struct {
	job.Queue
	before func()
}

func (h *hookedQueue) EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	if f := h.before; f != nil {
		h.before = nil
		f()
	}
	return h.Queue.EnqueueContext(ctx, task, opts...)
}

// The other ordering of the race: the cancel's requeueIfRetried enqueues
// the job's task before the retry does, and a worker has taken it by the
// time the retry's own enqueue meets it (ErrTaskIDConflict). That task is
// the retry's run: the retry succeeds, and the job is not failed.
func TestRetryFindsItsTaskAlreadyRunning(t *testing.T) {
	r := newRace(t)
	store, client, inspector, az, reg := r.store, r.client, r.inspector, r.az, r.reg
	plain := job.NewService(store, client, inspector, az, reg, job.ServiceConfig{})
	queue := &hookedQueue{Queue: client}
	racing := job.NewService(store, queue, inspector, az, reg, job.ServiceConfig{})
	user := auth.Principal{Subject: "racer", Roles: []string{"user"}}
	ctx := context.Background()

	j, _, err := plain.Submit(ctx, user, job.SubmitRequest{Type: "test:idle", Params: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Cancel(ctx, user, j.ID); err != nil {
		t.Fatal(err)
	}
	// A worker that holds whatever task it takes.
	release := make(chan struct{})
	redisOpt, _ := asynq.ParseRedisURI(redistest.URL(t, redisDB))
	srv := asynq.NewServer(redisOpt, asynq.Config{Concurrency: 1, TaskCheckInterval: 10 * time.Millisecond, LogLevel: asynq.FatalLevel})
	mux := asynq.NewServeMux()
	mux.HandleFunc("test:idle", func(ctx context.Context, _ *asynq.Task) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(release); srv.Shutdown() })

	queue.before = func() {
		// What the racing cancel does: the job is queued again, so it
		// enqueues the task; then a worker takes it.
		if _, err := client.EnqueueContext(ctx, asynq.NewTask(j.Type, j.Params), asynq.TaskID(j.ID), asynq.Queue(j.Queue)); err != nil {
			t.Errorf("the cancel's enqueue: %v", err)
			return
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if info, err := inspector.GetTaskInfo(j.Queue, j.ID); err == nil && info.State == asynq.TaskStateActive {
				return
			}
			if time.Now().After(deadline) {
				t.Error("the worker never took the task")
				return
			}
		}
	}
	got, err := racing.Retry(ctx, user, j.ID)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if got.Status != tokenlysis.JobQueued {
		t.Fatalf("status %s after the retry, want queued", got.Status)
	}
	if now, _ := store.FindJob(ctx, j.ID); now.Status == tokenlysis.JobFailed {
		t.Fatalf("the job was failed while its task runs: %s", now.Error)
	}
}
