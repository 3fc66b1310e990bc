package job

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/tokenlysis/tokenlysis/internal/auth"
	"github.com/tokenlysis/tokenlysis/internal/authz"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// Store is what the Service needs of the SQL store.
type Store interface {
	CreateJob(ctx context.Context, j tokenlysis.Job) (tokenlysis.Job, bool, error)
	DeleteJob(ctx context.Context, id string) error
	FindJob(ctx context.Context, id string) (tokenlysis.Job, error)
	ListJobs(ctx context.Context, f tokenlysis.JobFilter) ([]tokenlysis.Job, error)
	Events(ctx context.Context, jobID string, after int64, limit int) ([]tokenlysis.JobEvent, error)
	Cancel(ctx context.Context, id string) (tokenlysis.JobEvent, error)
	Requeue(ctx context.Context, id string) (tokenlysis.JobEvent, error)
	FailQueued(ctx context.Context, id, errMsg string) (tokenlysis.JobEvent, error)
}

// Queue enqueues tasks (an *asynq.Client).
type Queue interface {
	EnqueueContext(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)
}

// Inspector finds, removes and cancels tasks (an *asynq.Inspector).
type Inspector interface {
	GetTaskInfo(queue, id string) (*asynq.TaskInfo, error)
	DeleteTask(queue, id string) error
	CancelProcessing(id string) error
}

// Authorizer decides permissions (an *authz.Enforcer).
type Authorizer interface {
	Allowed(roles []string, p authz.Permission) bool
}

var (
	_ Queue     = (*asynq.Client)(nil)
	_ Inspector = (*asynq.Inspector)(nil)
)

// ServiceConfig configures a Service.
type ServiceConfig struct {
	Logger *slog.Logger
}

// Service submits, reads, cancels and retries jobs on behalf of users.
type Service struct {
	store     Store
	queue     Queue
	inspector Inspector
	authz     Authorizer
	registry  *Registry
	log       *slog.Logger
}

// NewService returns a Service. The events of the jobs it changes are
// published by the store that commits them (Announcer).
func NewService(store Store, queue Queue, inspector Inspector, az Authorizer, reg *Registry, cfg ServiceConfig) *Service {
	return &Service{store: store, queue: queue, inspector: inspector, authz: az, registry: reg,
		log: cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))}
}

// Registry returns the job types.
func (s *Service) Registry() *Registry { return s.registry }

// SubmitRequest is a request to run a job.
type SubmitRequest struct {
	Type           string
	Params         json.RawMessage
	IdempotencyKey string
	MaxRetry       *int
}

// Submit validates req, records the job and enqueues its task. created is
// false when the idempotency key replays an earlier submission, whose job
// is returned.
// Errors: EINVALID (unknown type, bad params, an idempotency key used for
// another request), EFORBIDDEN, ECONFLICT (an
// identical job is already queued or running; the job returned is that
// one), EUNAVAILABLE (database or Redis down; nothing is left behind).
func (s *Service) Submit(ctx context.Context, p auth.Principal, req SubmitRequest) (tokenlysis.Job, bool, error) {
	spec, err := s.registry.Lookup(req.Type)
	if err != nil {
		return tokenlysis.Job{}, false, err
	}
	if !s.authz.Allowed(p.Roles, spec.Permission) {
		return tokenlysis.Job{}, false, tokenlysis.Errorf(tokenlysis.EFORBIDDEN, "Submitting %s jobs needs the %s permission.", spec.Type, spec.Permission)
	}
	params, err := spec.Validate(req.Params)
	if err != nil {
		return tokenlysis.Job{}, false, err
	}
	maxRetry := spec.MaxRetry
	if req.MaxRetry != nil {
		if *req.MaxRetry < 0 || *req.MaxRetry > 25 {
			return tokenlysis.Job{}, false, tokenlysis.FieldErrorf("max_retry", "Must be from 0 to 25.")
		}
		maxRetry = *req.MaxRetry
	}
	j := tokenlysis.Job{
		ID: newID(), Type: spec.Type, Queue: s.registry.Queue(spec), Params: params,
		MaxRetry: maxRetry, SubmittedBy: p.Subject, IdempotencyKey: req.IdempotencyKey,
	}
	if spec.DedupeKey != nil {
		j.DedupeKey = spec.DedupeKey(params)
	}
	asked := j
	j, created, err := s.store.CreateJob(ctx, j)
	if err != nil {
		return j, false, err
	}
	if !created {
		if !sameRequest(j, asked) {
			return tokenlysis.Job{}, false, tokenlysis.FieldErrorf("Idempotency-Key",
				"This key was used for another request, which made job %s; a new request needs a new key.", j.ID)
		}
		return j, false, nil
	}
	if err := s.enqueue(ctx, spec, j); err != nil {
		if derr := s.store.DeleteJob(context.WithoutCancel(ctx), j.ID); derr != nil {
			s.log.Error("job: could not undo a job whose task was not enqueued", "job_id", j.ID, "err", derr)
		}
		return tokenlysis.Job{}, false, err
	}
	return j, true, nil
}

// sameRequest reports whether the job an idempotency key replays was made
// by the request that asked for job a: the same type, retries and params.
// Params are compared as JSON values, since a store may give them back
// spaced or ordered otherwise (PostgreSQL's jsonb).
func sameRequest(replayed, a tokenlysis.Job) bool {
	if replayed.Type != a.Type || replayed.MaxRetry != a.MaxRetry {
		return false
	}
	x, errx := jsonValue(replayed.Params)
	y, erry := jsonValue(a.Params)
	return errx == nil && erry == nil && reflect.DeepEqual(x, y)
}

// jsonValue decodes b with integers as int64, so that those past 2^53
// compare exactly, and other numbers as float64, whatever their spelling
// (jsonb writes 1e3 as 1000).
func jsonValue(b json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return numbers(v), err
}

func numbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	case []any:
		for i := range v {
			v[i] = numbers(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = numbers(v[k])
		}
	}
	return v
}

func (s *Service) enqueue(ctx context.Context, spec Spec, j tokenlysis.Job) error {
	task := asynq.NewTask(j.Type, j.Params)
	_, err := s.queue.EnqueueContext(ctx, task, asynq.TaskID(j.ID), asynq.Queue(s.registry.TaskQueue(j)),
		asynq.MaxRetry(j.MaxRetry), asynq.Timeout(spec.Timeout))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue %s: %w: %w", j.ID, tokenlysis.Errorf(tokenlysis.ECONFLICT, "The job's previous run is still stopping; try again in a moment."), err)
	} else if err != nil {
		return fmt.Errorf("enqueue %s: %w: %w", j.ID, tokenlysis.Errorf(tokenlysis.EUNAVAILABLE, "The job queue is unavailable."), err)
	}
	return nil
}

// Find returns a job the principal may see: their own, or any job for a
// principal allowed to read all jobs.
// Errors: ENOTFOUND (also for someone else's job, so IDs leak nothing).
func (s *Service) Find(ctx context.Context, p auth.Principal, id string) (tokenlysis.Job, error) {
	j, err := s.store.FindJob(ctx, id)
	if err != nil {
		return j, err
	}
	if j.SubmittedBy != p.Subject && !s.authz.Allowed(p.Roles, authz.JobsReadAll) {
		return tokenlysis.Job{}, tokenlysis.Errorf(tokenlysis.ENOTFOUND, "Job not found.")
	}
	return j, nil
}

// List returns the jobs the principal may see that match f.
func (s *Service) List(ctx context.Context, p auth.Principal, f tokenlysis.JobFilter) ([]tokenlysis.Job, error) {
	if !s.authz.Allowed(p.Roles, authz.JobsReadAll) {
		f.SubmittedBy = &p.Subject
	}
	return s.store.ListJobs(ctx, f)
}

// Events returns a visible job's events after the given sequence number.
func (s *Service) Events(ctx context.Context, jobID string, after int64, limit int) ([]tokenlysis.JobEvent, error) {
	return s.store.Events(ctx, jobID, after, limit)
}

// Cancel ends a queued, retrying or running job as canceled: the row first
// (so a worker that picks the task up now drops it), then the task is
// deleted from its queue or, when running, its context is canceled.
// Errors: ENOTFOUND, ECONFLICT (already finished).
func (s *Service) Cancel(ctx context.Context, p auth.Principal, id string) (tokenlysis.Job, error) {
	j, err := s.Find(ctx, p, id)
	if err != nil {
		return j, err
	}
	if _, err := s.store.Cancel(ctx, id); err != nil {
		return j, err
	}
	switch err := s.inspector.DeleteTask(s.registry.TaskQueue(j), id); {
	case err == nil:
		return s.requeueIfRetried(ctx, id)
	case !errors.Is(err, asynq.ErrTaskNotFound):
		// Active tasks cannot be deleted: cancel their context instead.
		if cerr := s.inspector.CancelProcessing(id); cerr != nil {
			s.log.Warn("job: cancel processing failed", "job_id", id, "err", cerr)
		}
	}
	return s.store.FindJob(ctx, id)
}

// requeueIfRetried is the end of a cancel that deleted the job's task: a
// retry may have come between the cancel's write and that delete, queued
// the job again and enqueued a new task, which is the one deleted. A job
// found queued again gets its task back (a task already there is left
// alone); should that fail, the reconciler enqueues it after its grace.
func (s *Service) requeueIfRetried(ctx context.Context, id string) (tokenlysis.Job, error) {
	j, err := s.store.FindJob(ctx, id)
	if err != nil || j.Status != tokenlysis.JobQueued {
		return j, err
	}
	spec, err := s.registry.Lookup(j.Type)
	if err == nil {
		err = s.enqueue(ctx, spec, j)
	}
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		s.log.Warn("job: a job retried while it was being canceled could not be enqueued again; the reconciler will", "job_id", id, "err", err)
	}
	return j, nil
}

// Retry runs a failed or canceled job again under the same ID.
// Errors: ENOTFOUND, ECONFLICT (not failed or canceled), EUNAVAILABLE.
func (s *Service) Retry(ctx context.Context, p auth.Principal, id string) (tokenlysis.Job, error) {
	j, err := s.Find(ctx, p, id)
	if err != nil {
		return j, err
	}
	spec, err := s.registry.Lookup(j.Type)
	if err != nil {
		return j, err
	}
	if !s.authz.Allowed(p.Roles, spec.Permission) {
		return j, tokenlysis.Errorf(tokenlysis.EFORBIDDEN, "Retrying %s jobs needs the %s permission.", spec.Type, spec.Permission)
	}
	if !j.Status.Terminal() || j.Status == tokenlysis.JobSucceeded {
		return j, &tokenlysis.Error{Code: tokenlysis.ECONFLICT, Message: "Only failed or canceled jobs can be retried; this one is " + string(j.Status) + "."}
	}
	// The previous run's task must be gone before the ID is used again: a
	// canceled run may still be stopping on a worker; a failed one stays
	// archived in asynq.
	info, err := s.inspector.GetTaskInfo(s.registry.TaskQueue(j), id)
	switch {
	case err == nil && info.State == asynq.TaskStateActive:
		return j, tokenlysis.Errorf(tokenlysis.ECONFLICT, "The job's previous run is still stopping; try again in a moment.")
	case err == nil:
		if err := s.inspector.DeleteTask(s.registry.TaskQueue(j), id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			return j, fmt.Errorf("delete previous task: %w: %w", tokenlysis.Errorf(tokenlysis.EUNAVAILABLE, "The job queue is unavailable."), err)
		}
	case !errors.Is(err, asynq.ErrTaskNotFound) && !errors.Is(err, asynq.ErrQueueNotFound):
		return j, fmt.Errorf("find previous task: %w: %w", tokenlysis.Errorf(tokenlysis.EUNAVAILABLE, "The job queue is unavailable."), err)
	}
	if _, err := s.store.Requeue(ctx, id); err != nil {
		return j, err
	}
	if err := s.enqueue(ctx, spec, j); err != nil {
		if errors.Is(err, asynq.ErrTaskIDConflict) {
			// A cancel of the previous run, racing this retry, may have
			// enqueued the job's task already (requeueIfRetried), and a
			// worker may be running it by now: any task not done with is
			// this run's (the previous run's was deleted above).
			if info, ierr := s.inspector.GetTaskInfo(s.registry.TaskQueue(j), id); ierr == nil &&
				info.State != asynq.TaskStateArchived && info.State != asynq.TaskStateCompleted {
				return s.store.FindJob(ctx, id)
			}
		}
		if _, ferr := s.store.FailQueued(context.WithoutCancel(ctx), id, "retry could not be enqueued"); ferr == nil {
			s.log.Warn("job: retry not enqueued, job failed again", "job_id", id, "err", err)
		}
		return j, err
	}
	return s.store.FindJob(ctx, id)
}

// newID returns a new job ID: a UUIDv7 in its canonical form, so that IDs
// sort by creation time (the listing's order and cursor).
func newID() string { return uuid.Must(uuid.NewV7()).String() }

// ValidID reports whether id has the form of the IDs Submit gives jobs
// (a listing's cursor is one).
func ValidID(id string) bool {
	u, err := uuid.Parse(id)
	return err == nil && u.Version() == 7 && u.String() == id
}
