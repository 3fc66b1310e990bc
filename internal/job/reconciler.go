package job

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// ReconcileStore is what the Reconciler needs of the SQL store.
type ReconcileStore interface {
	StaleJobs(ctx context.Context, before time.Time, limit int) ([]tokenlysis.Job, error)
	FindJob(ctx context.Context, id string) (tokenlysis.Job, error)
	Fail(ctx context.Context, id, errMsg string) (tokenlysis.JobEvent, error)
}

// TaskFinder looks a task up and deletes one (an *asynq.Inspector).
type TaskFinder interface {
	GetTaskInfo(queue, id string) (*asynq.TaskInfo, error)
	DeleteTask(queue, id string) error
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

// Reconcile runs one pass and returns how many jobs it set going again or
// ended: an unfinished job without a task is re-enqueued; one whose task
// asynq archived is recorded failed with the task's last error when it
// was running (its failure was not written), else re-enqueued. A
// job is re-enqueued only when its record, read again after its task was
// found missing (and Settle), has not changed since the scan: a job that
// ran meanwhile was not lost.
func (r *Reconciler) Reconcile(ctx context.Context) (int, error) {
	jobs, err := r.store.StaleJobs(ctx, time.Now().Add(-r.cfg.Grace), r.cfg.Batch)
	if err != nil {
		return 0, err
	}
	var missing, archived []tokenlysis.Job
	lastErr := map[string]string{} // of the archived tasks
	for _, j := range jobs {
		info, err := r.tasks.GetTaskInfo(r.registry.TaskQueue(j), j.ID)
		switch {
		case err == nil && info.State == asynq.TaskStateArchived:
			// asynq gave the task up while the job is unfinished: the
			// last failure was not recorded (database down), or retries
			// ran out on starts that could not be written.
			archived = append(archived, j)
			lastErr[j.ID] = cmp.Or(strings.TrimSuffix(info.LastErr, ": "+asynq.SkipRetry.Error()), "the task was archived by asynq")
		case err == nil, !(errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound)):
			// the task is there (or Redis cannot tell now)
		default:
			missing = append(missing, j)
		}
	}
	if len(missing)+len(archived) > 0 && r.cfg.Settle > 0 {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(r.cfg.Settle):
		}
	}
	n := 0
	for _, j := range archived {
		cur, err := r.store.FindJob(ctx, j.ID)
		if err != nil || cur.Status.Terminal() || cur.LastSeq != j.LastSeq {
			continue // gone, or it moved on
		}
		if cur.Status == tokenlysis.JobRunning {
			// Its last attempt failed and asynq archived the task, but the
			// failure was not written: write it now.
			if _, err := r.store.Fail(ctx, j.ID, lastErr[j.ID]); err == nil {
				r.log.Warn("job: recorded the failure of a job whose task asynq archived", "job_id", j.ID, "job_type", j.Type, "err", lastErr[j.ID])
				n++
			}
			continue
		}
		// Queued or retrying: its attempts did not run (their starts were
		// refused); it is run again with what it has left.
		if err := r.tasks.DeleteTask(r.registry.TaskQueue(j), j.ID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			return n, err
		}
		missing = append(missing, j)
	}
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
