package job

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// RunStore is what the Runner needs of the SQL store.
type RunStore interface {
	StartAttempt(ctx context.Context, id string) (tokenlysis.JobEvent, error)
	StartAttemptAsync(ctx context.Context, id string) (wait func() (tokenlysis.JobEvent, error))
	ProgressAsync(ctx context.Context, id string, ev tokenlysis.JobEvent) (wait func() (tokenlysis.JobEvent, error))
	Retrying(ctx context.Context, id, errMsg string) (tokenlysis.JobEvent, error)
	SucceedAsync(ctx context.Context, id string, result json.RawMessage, then func(applied bool)) (wait func() (tokenlysis.JobEvent, error))
	Fail(ctx context.Context, id, errMsg string) (tokenlysis.JobEvent, error)
	FindJob(ctx context.Context, id string) (tokenlysis.Job, error)
}

// Observer is told how each attempt ended, for metrics and error tracking.
// Outcome is one of "succeeded", "retrying", "failed", "canceled",
// "interrupted" (the worker's shutdown timeout: asynq requeued the task). A
// success is usually told by the goroutine that committed it, before the
// next commit: AttemptDone must not block.
type Observer interface {
	AttemptDone(jobType, outcome string, err error)
}

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	Logger   *slog.Logger
	Observer Observer // optional
}

// Runner is the worker-side middleware that keeps the job row and its
// events in step with the asynq task. It publishes nothing itself: the
// store announces the events it commits (Announcer).
//
// A successful attempt returns to asynq as soon as its success is queued:
// the commit (with the attempt's start and reports, when they have not
// gone yet) completes in the background, so that the task's slot goes to
// the next task instead of waiting for it, as River's asynchronous
// completer does. A worker that dies in between leaves the job unfinished
// without a task; the Reconciler finds it and it runs again (at least
// once, as asynq's lease makes it for a worker that dies before the
// task is acknowledged). Failed attempts are recorded before asynq hears
// of them, since asynq's retry and the record must agree.
type Runner struct {
	store RunStore
	log   *slog.Logger
	obs   Observer
	// ending counts the attempts still running or being recorded (Wait).
	ending sync.WaitGroup
	// stopping is set by Stopping, before the asynq server's Shutdown.
	stopping atomic.Bool
}

// Stopping tells the Runner that the worker is shutting down: from now on
// an attempt whose context is canceled (asynq requeues its task at the end
// of the shutdown timeout) is not recorded as failed. The worker calls it
// before asynq's Shutdown.
func (r *Runner) Stopping() { r.stopping.Store(true) }

// NewRunner returns a Runner.
func NewRunner(store RunStore, cfg RunnerConfig) *Runner {
	return &Runner{store: store, log: cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)), obs: cfg.Observer}
}

type runKey struct{}

type run struct {
	id     string
	store  RunStore
	result json.RawMessage

	mu      sync.Mutex
	writes  []func() error // the writes queued so far (start, reports), in order
	reports int            // how many of writes precede or are the last report
}

// queue adds a queued write (its wait, from StartAttemptAsync or
// ProgressAsync) to the run; its outcome may be asked for more than once.
// rn.mu must be held.
func (rn *run) queue(wait func() (tokenlysis.JobEvent, error)) func() error {
	once := sync.OnceValues(wait)
	w := func() error { _, err := once(); return err }
	rn.writes = append(rn.writes, w)
	return w
}

// settle waits for the first n queued writes (all: n < 0), which were
// committed in order, and returns the error of the first that failed.
func (rn *run) settle(n int) error {
	rn.mu.Lock()
	writes := rn.writes
	rn.mu.Unlock()
	if n >= 0 {
		writes = writes[:n]
	}
	var first error
	for _, w := range writes {
		if err := w(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Report records progress of the running job: percent (0–100), a message
// and optional data (any JSON-encodable value). The event is written in
// the background (and published by the store once committed), in order:
// Report first waits for the previous report's write, not for its own, so
// that the handler goes on at once and its last report shares a commit
// with the job's end. It returns
// the error of an earlier report: ECONFLICT once one found the job
// canceled, and the handler should stop and return it (the context of a
// running handler is also canceled on cancel).
func Report(ctx context.Context, percent int, message string, data any) error {
	return report(ctx, tokenlysis.EventProgress, percent, message, data)
}

// Artifact records that the running job produced something (a report, a
// file); data says what and where.
func Artifact(ctx context.Context, message string, data any) error {
	return report(ctx, tokenlysis.EventArtifact, -1, message, data)
}

func report(ctx context.Context, kind tokenlysis.EventKind, percent int, message string, data any) error {
	rn, ok := ctx.Value(runKey{}).(*run)
	if !ok {
		return errors.New("job: Report called outside a job")
	}
	ev := tokenlysis.JobEvent{Kind: kind, Percent: min(max(percent, 0), 100), Message: message}
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return fmt.Errorf("job: encode progress data: %w", err)
		}
		ev.Data = b
	}
	rn.mu.Lock()
	reports := rn.reports
	rn.mu.Unlock()
	if err := rn.settle(reports); err != nil {
		return err
	}
	rn.mu.Lock()
	defer rn.mu.Unlock()
	// Queued now, so that the next write of this job comes after it.
	rn.queue(rn.store.ProgressAsync(context.WithoutCancel(ctx), rn.id, ev))
	rn.reports = len(rn.writes)
	return nil
}

// SetResult sets the result summary recorded when the job succeeds.
func SetResult(ctx context.Context, v any) error {
	rn, ok := ctx.Value(runKey{}).(*run)
	if !ok {
		return errors.New("job: SetResult called outside a job")
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("job: encode result: %w", err)
	}
	rn.result = b
	return nil
}

// Middleware wraps every task handler of the worker.
func (r *Runner) Middleware(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		retried, _ := asynq.GetRetryCount(ctx)
		maxRetry, _ := asynq.GetMaxRetry(ctx)
		log := r.log.With("job_id", id, "job_type", t.Type(), "attempt", retried+1)
		// The attempt's writes apply only while the job is this attempt's:
		// one that goes on after its job was canceled and retried, or
		// after its task was delivered again, changes nothing.
		ctx = tokenlysis.WithAttempt(ctx, uuid.NewString())
		bg := context.WithoutCancel(ctx)
		// Every attempt counts until its writes are done (Wait): asynq's
		// Shutdown returns at its timeout with handlers still running.
		r.ending.Add(1)
		handedOff := false // the success's commit calls Done
		defer func() {
			if !handedOff {
				r.ending.Done()
			}
		}()

		rn := &run{id: id, store: r.store}
		started := func() error { return nil }
		if retried == 0 {
			// A first delivery: the start is queued with the handler's
			// first report and its end, and they usually go in one commit.
			// A job canceled meanwhile refuses them all (the cancel
			// stands), one without a record refuses them as not found.
			rn.mu.Lock()
			started = rn.queue(r.store.StartAttemptAsync(bg, id))
			rn.mu.Unlock()
		} else {
			// A task delivered again (a retry, or its lease expired with a
			// worker that died) may belong to a job that ended meanwhile:
			// it must not run before its start is known to apply.
			_, err := r.store.StartAttempt(bg, id)
			if stop, ret := r.refusedStart(t, log, id, err); stop {
				return ret
			}
		}

		err := safeRun(context.WithValue(ctx, runKey{}, rn), next, t)
		if err == nil {
			// Queued after the reports, committed in the background. A
			// success that applied needs nothing more: its start and
			// reports were committed before it or with it. One that did
			// not is looked into by a goroutine of its own, off the
			// committing one.
			jobType := t.Type()
			handedOff = true
			rn.mu.Lock()
			rn.queue(r.store.SucceedAsync(bg, id, rn.result, func(applied bool) {
				if applied {
					r.observe(jobType, "succeeded", nil)
					r.ending.Done()
					return
				}
				go func() {
					defer r.ending.Done()
					r.recordSuccess(jobType, log, rn, started)
				}()
			}))
			rn.mu.Unlock()
			return nil
		}

		rn.settle(-1)
		if stop, ret := r.refusedStart(t, log, id, started()); stop {
			return ret
		}

		// The job may have been canceled (and perhaps queued again by a
		// retry): then this attempt no longer owns it, its error is the
		// cancellation's echo, and nothing must be recorded or retried.
		j, ferr := r.store.FindJob(bg, id)
		if tokenlysis.ErrorCode(ferr) == tokenlysis.ENOTFOUND {
			return noRecord(id)
		}
		if ferr == nil && j.Status != tokenlysis.JobRunning {
			log.Info("job: attempt ended after the job was taken over", "status", j.Status)
			r.observe(t.Type(), "canceled", nil)
			return nil
		}
		if r.stopping.Load() && errors.Is(ctx.Err(), context.Canceled) {
			// Not a cancel (that writes the row first, above): the worker
			// is stopping, and at the end of its shutdown timeout asynq
			// requeues the task and cancels the handler. The attempt did
			// not fail: nothing is recorded, and the job stays running for
			// the next delivery, which starts it again.
			log.Info("job: attempt interrupted by the worker's shutdown; the task was requeued", "err", err)
			r.observe(t.Type(), "interrupted", err)
			return err
		}
		msg := err.Error()
		if retried >= maxRetry || errors.Is(err, asynq.SkipRetry) {
			if _, ferr := r.store.Fail(bg, id, msg); ferr != nil && tokenlysis.ErrorCode(ferr) != tokenlysis.ECONFLICT {
				log.Error("job: record failure", "err", ferr)
			}
			r.observe(t.Type(), "failed", err)
			return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		if _, ferr := r.store.Retrying(bg, id, msg); tokenlysis.ErrorCode(ferr) == tokenlysis.ECONFLICT {
			r.observe(t.Type(), "canceled", nil)
			return nil // taken over meanwhile
		} else if ferr != nil {
			log.Error("job: record retry", "err", ferr)
		}
		r.observe(t.Type(), "retrying", err)
		return err
	})
}

// recordSuccess waits for the writes of a successful attempt whose
// success did not apply and observes how it ended. A start or a success
// that could not be written (database unreachable) leaves the job
// unfinished without a task: the Reconciler re-enqueues it once it has
// been unchanged for its grace period.
func (r *Runner) recordSuccess(jobType string, log *slog.Logger, rn *run, started func() error) {
	rn.settle(-1)
	rn.mu.Lock()
	succeeded := rn.writes[len(rn.writes)-1] // the success, queued last
	rn.mu.Unlock()
	err := started()
	if err == nil {
		err = succeeded()
	}
	switch tokenlysis.ErrorCode(err) {
	case "":
		r.observe(jobType, "succeeded", nil)
	case tokenlysis.ENOTFOUND:
		log.Info("job: attempt of a job without a record")
	case tokenlysis.ECONFLICT:
		// Canceled before it started or while it ran: the cancel stands.
		log.Info("job: success of a finished job dropped", "reason", tokenlysis.ErrorMessage(err))
		r.observe(jobType, "canceled", nil)
	default:
		log.Error("job: success not recorded; the reconciler will run the job again", "err", err)
	}
}

// Wait returns once every attempt has ended and its writes are done: the
// successes recorded (or refused) too. The worker calls it after asynq's
// Shutdown, which returns at its timeout with handlers still running,
// and before it closes the store.
func (r *Runner) Wait() { r.ending.Wait() }

// refusedStart reports whether an attempt must stop because its start was
// not written, and what it returns then: a task without a job row is not
// retried, the task of a job that ended (canceled) is dropped, and one
// whose start could not be written (database unreachable) comes back.
func (r *Runner) refusedStart(t *asynq.Task, log *slog.Logger, id string, err error) (stop bool, ret error) {
	switch tokenlysis.ErrorCode(err) {
	case "":
		return false, nil
	case tokenlysis.ENOTFOUND:
		return true, noRecord(id)
	case tokenlysis.ECONFLICT:
		log.Info("job: dropping task of a finished job", "reason", tokenlysis.ErrorMessage(err))
		r.observe(t.Type(), "canceled", nil)
		return true, nil
	default:
		return true, fmt.Errorf("start job %s: %w", id, err)
	}
}

// noRecord is the error of a task without a job row: it was never accepted
// (or was purged), and is not retried.
func noRecord(id string) error {
	return fmt.Errorf("job %s has no record: %w", id, asynq.SkipRetry)
}

func (r *Runner) observe(jobType, outcome string, err error) {
	if r.obs != nil {
		r.obs.AttemptDone(jobType, outcome, err)
	}
}

// PanicError is the error of an attempt whose handler panicked.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

func safeRun(ctx context.Context, h asynq.Handler, t *asynq.Task) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return h.ProcessTask(ctx, t)
}
