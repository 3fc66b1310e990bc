package job

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// ReconcileStore is what the Reconciler needs of the SQL store.
type ReconcileStore interface {
	StaleJobs(ctx context.Context, before time.Time, limit int) ([]tokenlysis.Job, error)
	FindJob(ctx context.Context, id string) (tokenlysis.Job, error)
}

// TaskFinder looks a task up (an *asynq.Inspector).
type TaskFinder interface {
	GetTaskInfo(queue, id string) (*asynq.TaskInfo, error)
}

// ReconcilerConfig configures a Reconciler.
type ReconcilerConfig struct {
	// Grace is how long an unfinished job may go without a change before
	// its task is checked. Default 1 minute.
	Grace time.Duration
	// Batch is the most jobs checked per pass. Default 500.
	Batch int
	// Settle is how long a pass waits, once it has found jobs without a
	// task, before it reads them again and re-enqueues those whose record
	// has not changed: the task of a job that has just run leaves asynq a
	// few milliseconds before its success is committed (Runner). Default
	// 1 s; negative: no wait.
	Settle time.Duration
	Logger *slog.Logger
}

// Reconciler re-enqueues the task of any unfinished job that has lost it:
// an API process that died between writing the row and enqueueing, or a
// Redis that restarted without persistence. SQL is the record; asynq's
// task ID uniqueness makes concurrent reconcilers harmless.
type Reconciler struct {
	store    ReconcileStore
	queue    Queue
	tasks    TaskFinder
	registry *Registry
	cfg      ReconcilerConfig
	log      *slog.Logger
}

// NewReconciler returns a Reconciler.
func NewReconciler(store ReconcileStore, queue Queue, tasks TaskFinder, reg *Registry, cfg ReconcilerConfig) *Reconciler {
	cfg.Grace = cmp.Or(cfg.Grace, time.Minute)
	cfg.Batch = cmp.Or(cfg.Batch, 500)
	cfg.Settle = cmp.Or(cfg.Settle, time.Second)
	return &Reconciler{store: store, queue: queue, tasks: tasks, registry: reg, cfg: cfg,
		log: cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))}
}

// Reconcile runs one pass and returns how many tasks it re-enqueued. A
// job is re-enqueued only when its record, read again after its task was
// found missing (and Settle), has not changed since the scan: a job that
// ran meanwhile was not lost.
func (r *Reconciler) Reconcile(ctx context.Context) (int, error) {
	jobs, err := r.store.StaleJobs(ctx, time.Now().Add(-r.cfg.Grace), r.cfg.Batch)
	if err != nil {
		return 0, err
	}
	var missing []tokenlysis.Job
	for _, j := range jobs {
		_, err := r.tasks.GetTaskInfo(r.registry.TaskQueue(j), j.ID)
		if err == nil || !(errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound)) {
			continue // the task is there (or Redis cannot tell now)
		}
		missing = append(missing, j)
	}
	if len(missing) > 0 && r.cfg.Settle > 0 {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(r.cfg.Settle):
		}
	}
	n := 0
	for _, j := range missing {
		cur, err := r.store.FindJob(ctx, j.ID)
		if tokenlysis.ErrorCode(err) == tokenlysis.ENOTFOUND {
			continue
		} else if err != nil {
			return n, err
		}
		if cur.Status.Terminal() || cur.LastSeq != j.LastSeq {
			continue // it moved on: its task ran
		}
		spec, err := r.registry.Lookup(j.Type)
		if err != nil {
			r.log.Warn("job: stale job of an unknown type", "job_id", j.ID, "job_type", j.Type)
			continue
		}
		task := asynq.NewTask(j.Type, j.Params)
		_, err = r.queue.EnqueueContext(ctx, task, asynq.TaskID(j.ID), asynq.Queue(r.registry.TaskQueue(j)),
			asynq.MaxRetry(max(j.MaxRetry-j.Attempts, 0)), asynq.Timeout(spec.Timeout))
		if errors.Is(err, asynq.ErrTaskIDConflict) {
			continue
		} else if err != nil {
			return n, err
		}
		r.log.Warn("job: re-enqueued a job that had lost its task", "job_id", j.ID, "job_type", j.Type, "status", j.Status)
		n++
	}
	return n, nil
}

// Run reconciles every interval until ctx ends.
func (r *Reconciler) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := r.Reconcile(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("job: reconcile", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
