package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

const jobColumns = `id, type, queue, params, status, percent, message, attempts, max_retry,
	result, error, submitted_by, idempotency_key, dedupe_key, last_seq,
	created_at, updated_at, started_at, finished_at`

// jobRow is a jobs row as the drivers return it.
type jobRow struct {
	ID             string         `db:"id"`
	Type           string         `db:"type"`
	Queue          string         `db:"queue"`
	Params         string         `db:"params"`
	Status         string         `db:"status"`
	Percent        int            `db:"percent"`
	Message        string         `db:"message"`
	Attempts       int            `db:"attempts"`
	MaxRetry       int            `db:"max_retry"`
	Result         sql.NullString `db:"result"`
	Error          string         `db:"error"`
	SubmittedBy    string         `db:"submitted_by"`
	IdempotencyKey sql.NullString `db:"idempotency_key"`
	DedupeKey      sql.NullString `db:"dedupe_key"`
	LastSeq        int64          `db:"last_seq"`
	CreatedAt      time.Time      `db:"created_at"`
	UpdatedAt      time.Time      `db:"updated_at"`
	StartedAt      sql.NullTime   `db:"started_at"`
	FinishedAt     sql.NullTime   `db:"finished_at"`
}

func (r jobRow) job() tokenlysis.Job {
	j := tokenlysis.Job{
		ID: r.ID, Type: r.Type, Queue: r.Queue, Params: json.RawMessage(r.Params),
		Status: tokenlysis.JobStatus(r.Status), Percent: r.Percent, Message: r.Message,
		Attempts: r.Attempts, MaxRetry: r.MaxRetry, Error: r.Error, SubmittedBy: r.SubmittedBy,
		IdempotencyKey: r.IdempotencyKey.String, DedupeKey: r.DedupeKey.String, LastSeq: r.LastSeq,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
	if r.Result.Valid {
		j.Result = json.RawMessage(r.Result.String)
	}
	if r.StartedAt.Valid {
		t := r.StartedAt.Time.UTC()
		j.StartedAt = &t
	}
	if r.FinishedAt.Valid {
		t := r.FinishedAt.Time.UTC()
		j.FinishedAt = &t
	}
	return j
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

func nullJSON(b json.RawMessage) sql.NullString {
	return sql.NullString{String: string(b), Valid: len(b) > 0 && string(b) != "null"}
}

// CreateJob records a new queued job with its first event ("queued").
// j.ID, Type, Queue, Params, MaxRetry and SubmittedBy must be set.
//
// With an IdempotencyKey already used by the same submitter, nothing is
// written and the earlier job is returned with created == false. With a
// DedupeKey held by an unfinished job, nothing is written and that job is
// returned with an ECONFLICT error.
func (s *Store) CreateJob(ctx context.Context, j tokenlysis.Job) (_ tokenlysis.Job, created bool, err error) {
	now := s.now()
	j.Status, j.Percent, j.Message, j.Attempts, j.LastSeq = tokenlysis.JobQueued, 0, "", 0, 1
	j.CreatedAt, j.UpdatedAt, j.StartedAt, j.FinishedAt, j.Result, j.Error = now, now, nil, nil, nil, ""
	if len(j.Params) == 0 {
		j.Params = json.RawMessage("{}")
	}

	for try := 1; ; try++ {
		w := &jobWrite{create: &j}
		s.write(ctx, w)
		if w.err != nil {
			return j, false, wrap("create job", w.err)
		}
		if w.applied {
			return j, true, nil
		}
		existing, created, err := s.existingFor(ctx, j)
		if errors.Is(err, errStaleDedupeKey) && try == 1 {
			continue // the dedupe key is free now
		}
		return existing, created, err
	}
}

// existingFor finds the job that made the insert of j violate a uniqueness
// rule: the submitter's earlier job with the same idempotency key, or the
// unfinished job holding the same dedupe key.
// Errors: ECONFLICT; errStaleDedupeKey (see dedupeHolder).
func (s *Store) existingFor(ctx context.Context, j tokenlysis.Job) (tokenlysis.Job, bool, error) {
	if j.IdempotencyKey != "" {
		var r jobRow
		err := s.db.GetContext(ctx, &r, s.rebind(`SELECT `+jobColumns+` FROM jobs WHERE submitted_by = ? AND idempotency_key = ?`), j.SubmittedBy, j.IdempotencyKey)
		if err == nil {
			return r.job(), false, nil
		} else if !errors.Is(err, sql.ErrNoRows) {
			return j, false, wrap("create job", err)
		}
	}
	if j.DedupeKey != "" {
		holder, err := s.dedupeHolder(ctx, j.DedupeKey)
		switch {
		case err == nil:
			return holder, false, &tokenlysis.Error{Code: tokenlysis.ECONFLICT, Message: "An identical job is already queued or running: " + holder.ID + "."}
		case errors.Is(err, errStaleDedupeKey):
			return j, false, err
		case tokenlysis.ErrorCode(err) != tokenlysis.ENOTFOUND:
			return j, false, wrap("create job", err)
		}
	}
	return j, false, tokenlysis.Errorf(tokenlysis.ECONFLICT, "A job with this ID already exists.")
}

// errStaleDedupeKey reports that a dedupe key was held by a finished job
// and has been released: the write it refused may be tried again, once.
var errStaleDedupeKey = tokenlysis.Errorf(tokenlysis.ECONFLICT, "An identical job has just ended; try again.")

// dedupeHolder returns the unfinished job holding the dedupe key: the job
// whose active_dedupe_key it is (003_hot_jobs). A finished job holding it
// is a stale hold, which only a release older than 003 leaves behind (it
// ends jobs without clearing active_dedupe_key, e.g. during a rolling
// deploy): dedupeHolder releases it and returns errStaleDedupeKey.
// Errors: ENOTFOUND when no job holds the key; errStaleDedupeKey.
func (s *Store) dedupeHolder(ctx context.Context, key string) (tokenlysis.Job, error) {
	var r jobRow
	err := s.db.GetContext(ctx, &r, s.rebind(`SELECT `+jobColumns+` FROM jobs WHERE active_dedupe_key = ?`), key)
	if errors.Is(err, sql.ErrNoRows) {
		return tokenlysis.Job{}, tokenlysis.Errorf(tokenlysis.ENOTFOUND, "No job holds this dedupe key.")
	} else if err != nil {
		return tokenlysis.Job{}, err
	}
	j := r.job()
	if !j.Status.Terminal() {
		return j, nil
	}
	const release = `UPDATE jobs SET active_dedupe_key = NULL WHERE id = ? AND status IN ('succeeded', 'failed', 'canceled')`
	if _, err := s.db.ExecContext(ctx, s.rebind(release), j.ID); err != nil {
		return j, err
	}
	return j, errStaleDedupeKey
}

// DeleteJob removes a job and its events. The API uses it to undo a job
// whose task could not be enqueued, so that nothing is left half-written.
func (s *Store) DeleteJob(ctx context.Context, id string) error {
	_, err := s.deleteJobs(ctx, `id = ?`, id)
	return wrap("delete job", err)
}

// deleteJobs deletes the jobs matching where (a constant condition on
// jobs, its values bound as ? arguments) with their events, in one
// transaction, and returns how many jobs it deleted. job_events has no
// foreign key to jobs (003_hot_jobs: its check cost every event insert),
// so every delete of jobs goes through here.
func (s *Store) deleteJobs(ctx context.Context, where string, args ...any) (int64, error) {
	if s.db.Dialect == database.Postgres {
		return s.deleteJobsPostgres(ctx, where, args...)
	}
	return s.deleteJobsSQLite(ctx, where, args...)
}

// deleteJobsPostgres deletes the jobs, then their events in a second
// statement. Under READ COMMITTED each statement reads a snapshot taken
// when it starts: a delete that waited for a transaction writing to one
// of its jobs (a transition commits the job's row and its events
// together) sees that job's new version, and the second statement sees
// the events that transaction committed. One statement (a CTE) would read
// events through the first snapshot and leave those behind.
func (s *Store) deleteJobsPostgres(ctx context.Context, where string, args ...any) (int64, error) {
	tx, err := s.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var ids []string
	if err := tx.SelectContext(ctx, &ids, s.rebind(`DELETE FROM jobs WHERE `+where+` RETURNING id`), args...); err != nil {
		return 0, err
	}
	if len(ids) > 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM job_events WHERE job_id = ANY($1)`, ids); err != nil {
			return 0, err
		}
	}
	return int64(len(ids)), tx.Commit()
}

// deleteJobsSQLite deletes the events, then the jobs. The transaction
// begins IMMEDIATE (the connection's _txlock): no other write comes
// between the two statements.
func (s *Store) deleteJobsSQLite(ctx context.Context, where string, args ...any) (int64, error) {
	tx, err := s.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM job_events WHERE job_id IN (SELECT id FROM jobs WHERE `+where+`)`, args...); err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM jobs WHERE `+where, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	return n, tx.Commit()
}

// FindJob returns the job with the given ID.
// Errors: ENOTFOUND.
func (s *Store) FindJob(ctx context.Context, id string) (tokenlysis.Job, error) {
	var r jobRow
	err := s.db.GetContext(ctx, &r, s.rebind(`SELECT `+jobColumns+` FROM jobs WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return tokenlysis.Job{}, tokenlysis.Errorf(tokenlysis.ENOTFOUND, "Job not found.")
	} else if err != nil {
		return tokenlysis.Job{}, wrap("find job", err)
	}
	return r.job(), nil
}

// ListJobs returns jobs matching f, newest first, at most f.Limit (default
// 50). Job IDs are time-ordered, so f.After (the last ID of the previous
// page) is a stable cursor.
func (s *Store) ListJobs(ctx context.Context, f tokenlysis.JobFilter) ([]tokenlysis.Job, error) {
	where, args := []string{"1 = 1"}, []any{}
	if v := f.SubmittedBy; v != nil {
		where, args = append(where, "submitted_by = ?"), append(args, *v)
	}
	if v := f.Status; v != nil {
		// No index covers status: with one, every update of a job row on
		// the job path would be a non-HOT update on PostgreSQL, writing a
		// new entry in every index (003_hot_jobs). The list walks the jobs
		// newest first (the primary key, or submitter and id) and filters
		// until its page is full: cheap for a status many recent jobs
		// have; for a rare one, at worst a read of every job kept (the
		// retention, TOKENLYSIS_JOB_RETENTION, bounds the finished ones).
		where, args = append(where, "status = ?"), append(args, string(*v))
	}
	if v := f.Type; v != nil {
		where, args = append(where, "type = ?"), append(args, *v)
	}
	if f.After != "" {
		where, args = append(where, "id < ?"), append(args, f.After)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	args = append(args, limit)
	q := `SELECT ` + jobColumns + ` FROM jobs WHERE ` + strings.Join(where, " AND ") + ` ORDER BY id DESC LIMIT ?`
	return s.selectJobs(ctx, "list jobs", q, args)
}

// selectJobs runs q (jobColumns of jobs rows) and returns its jobs.
func (s *Store) selectJobs(ctx context.Context, op, q string, args []any) ([]tokenlysis.Job, error) {
	var rows []jobRow
	if err := s.db.SelectContext(ctx, &rows, s.rebind(q), args...); err != nil {
		return nil, wrap(op, err)
	}
	jobs := make([]tokenlysis.Job, len(rows))
	for i, r := range rows {
		jobs[i] = r.job()
	}
	return jobs, nil
}

// Events returns the job's events with Seq > after, in order, at most limit.
func (s *Store) Events(ctx context.Context, jobID string, after int64, limit int) ([]tokenlysis.JobEvent, error) {
	const q = `SELECT seq, kind, percent, message, data, created_at FROM job_events
		WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?`
	return queryRows(ctx, s, "list events", q, []any{jobID, after, limit}, func(row scanner) (tokenlysis.JobEvent, error) {
		ev := tokenlysis.JobEvent{JobID: jobID}
		var data sql.NullString
		err := row.Scan(&ev.Seq, &ev.Kind, &ev.Percent, &ev.Message, &data, &ev.CreatedAt)
		if data.Valid {
			ev.Data = json.RawMessage(data.String)
		}
		ev.CreatedAt = ev.CreatedAt.UTC()
		return ev, err
	})
}

var (
	active  = []tokenlysis.JobStatus{tokenlysis.JobQueued, tokenlysis.JobRunning, tokenlysis.JobRetrying}
	running = []tokenlysis.JobStatus{tokenlysis.JobRunning}
)

// transition applies a change of kind k to job id with the kind's own
// values, and appends ev with the next sequence number, atomically. Every
// commit waits for the database to make it durable, progress too: an
// event is announced (and streamed to clients under its number) once
// committed, and a commit a crash could take back would hand its number to
// another event.
// Errors: ENOTFOUND; ECONFLICT when the job's status is not one k starts from.
func (s *Store) transition(ctx context.Context, k *transitionKind, id string, args []any, ev tokenlysis.JobEvent) (tokenlysis.JobEvent, error) {
	w := &jobWrite{id: id, kind: k, args: args, run: tokenlysis.AttemptFrom(ctx), ev: ev}
	s.write(ctx, w)
	return s.outcome(ctx, w)
}

// outcome turns a committed transition into its event or its error.
func (s *Store) outcome(ctx context.Context, w *jobWrite) (tokenlysis.JobEvent, error) {
	ev := w.event()
	if w.err != nil {
		return ev, wrap(w.kind.op, w.err)
	}
	if w.applied {
		return ev, nil
	}
	var status string
	err := s.db.GetContext(ctx, &status, s.rebind(`SELECT status FROM jobs WHERE id = ?`), w.id)
	if errors.Is(err, sql.ErrNoRows) {
		return ev, tokenlysis.Errorf(tokenlysis.ENOTFOUND, "Job not found.")
	} else if err != nil {
		return ev, wrap(w.kind.op, err)
	}
	return ev, &tokenlysis.Error{Code: tokenlysis.ECONFLICT, Message: "The job's status is " + status + "."}
}

// StartAttempt marks an unfinished job running, counts one more attempt
// and appends a "started" event. The count lives in SQL rather than in
// asynq's retry counter, which restarts when a lost task is re-enqueued.
// Errors: ENOTFOUND; ECONFLICT when the job already ended (e.g. canceled).
func (s *Store) StartAttempt(ctx context.Context, id string) (tokenlysis.JobEvent, error) {
	return s.transition(ctx, kindStart, id, nil, startedEvent())
}

// Progress records a running job's progress and appends a "progress" (or
// "artifact") event.
// Errors: ENOTFOUND; ECONFLICT when the job is not running (canceled).
func (s *Store) Progress(ctx context.Context, id string, ev tokenlysis.JobEvent) (tokenlysis.JobEvent, error) {
	if ev.Kind == "" {
		ev.Kind = tokenlysis.EventProgress
	}
	return s.transition(ctx, kindProgress, id, []any{ev.Percent, ev.Message}, ev)
}

// ProgressAsync is Progress without waiting for the commit: it queues the
// write and returns; wait returns what Progress would have. A write this
// goroutine makes afterwards is committed after this one (in the same
// transaction when they go together, on PostgreSQL in the same statement),
// so a handler's last progress and the job's success usually cost one
// commit.
func (s *Store) ProgressAsync(ctx context.Context, id string, ev tokenlysis.JobEvent) (wait func() (tokenlysis.JobEvent, error)) {
	if ev.Kind == "" {
		ev.Kind = tokenlysis.EventProgress
	}
	return s.transitionAsync(ctx, kindProgress, id, []any{ev.Percent, ev.Message}, ev, nil)
}

func startedEvent() tokenlysis.JobEvent {
	return tokenlysis.JobEvent{Kind: tokenlysis.EventStarted, Message: "started"}
}

// StartAttemptAsync is StartAttempt without waiting for the commit, as
// ProgressAsync is Progress: a job's start, its reports and its end,
// queued one after the other, go in one commit.
func (s *Store) StartAttemptAsync(ctx context.Context, id string) (wait func() (tokenlysis.JobEvent, error)) {
	return s.transitionAsync(ctx, kindStart, id, nil, startedEvent(), nil)
}

// transitionAsync queues a transition and returns at once; wait returns
// what transition would have. then, when not nil, is told once the write
// has been committed or refused whether it applied (see SucceedAsync).
func (s *Store) transitionAsync(ctx context.Context, k *transitionKind, id string, args []any, ev tokenlysis.JobEvent, then func(applied bool)) (wait func() (tokenlysis.JobEvent, error)) {
	w := &jobWrite{id: id, kind: k, args: args, run: tokenlysis.AttemptFrom(ctx), ev: ev}
	s.writes.Add(1)
	var told func()
	if then != nil {
		told = func() { then(w.err == nil && w.applied) }
	}
	done := s.journal.GoThen(ctx, w, told)
	return func() (tokenlysis.JobEvent, error) {
		done()
		return s.outcome(context.WithoutCancel(ctx), w)
	}
}

// Retrying records that a running attempt failed and asynq will try again.
// Errors: ENOTFOUND; ECONFLICT when the job is not running (canceled, or
// canceled and queued again: the attempt no longer owns the job).
func (s *Store) Retrying(ctx context.Context, id, errMsg string) (tokenlysis.JobEvent, error) {
	return s.transition(ctx, kindRetrying, id, []any{errMsg},
		tokenlysis.JobEvent{Kind: tokenlysis.EventRetrying, Message: errMsg})
}

// Succeed ends a running job successfully with its result summary.
// Errors: ENOTFOUND; ECONFLICT when the job is not running (canceled first).
func (s *Store) Succeed(ctx context.Context, id string, result json.RawMessage) (tokenlysis.JobEvent, error) {
	return s.transition(ctx, kindSucceed, id, []any{result}, succeededEvent(result))
}

// SucceedAsync is Succeed without waiting for the commit, as ProgressAsync
// is Progress: queued after a job's start and reports, it usually shares
// their commit. The worker uses it to end an attempt without holding the
// task's slot for the commit (see job.Runner). then (optional) is told,
// by the goroutine that committed it and before the next commit starts,
// whether the success applied: when it did, wait returns at once without
// error; when it did not, only wait says why (it may ask the database),
// and then must not call it. then must not block.
func (s *Store) SucceedAsync(ctx context.Context, id string, result json.RawMessage, then func(applied bool)) (wait func() (tokenlysis.JobEvent, error)) {
	return s.transitionAsync(ctx, kindSucceed, id, []any{result}, succeededEvent(result), then)
}

func succeededEvent(result json.RawMessage) tokenlysis.JobEvent {
	return tokenlysis.JobEvent{Kind: tokenlysis.EventSucceeded, Percent: 100, Message: "succeeded", Data: result}
}

// Fail ends a running job as failed after its last attempt.
// Errors: ENOTFOUND; ECONFLICT when the job is not running.
func (s *Store) Fail(ctx context.Context, id, errMsg string) (tokenlysis.JobEvent, error) {
	return s.transition(ctx, kindFail, id, []any{errMsg},
		tokenlysis.JobEvent{Kind: tokenlysis.EventFailed, Message: errMsg})
}

// FailQueued ends a queued job as failed: the API uses it when the task of
// a job put back in the queue cannot be enqueued.
// Errors: ENOTFOUND; ECONFLICT when the job is not queued.
func (s *Store) FailQueued(ctx context.Context, id, errMsg string) (tokenlysis.JobEvent, error) {
	return s.transition(ctx, kindFailQueued, id, []any{errMsg},
		tokenlysis.JobEvent{Kind: tokenlysis.EventFailed, Message: errMsg})
}

// Cancel ends an unfinished job as canceled.
// Errors: ENOTFOUND; ECONFLICT when the job already ended.
func (s *Store) Cancel(ctx context.Context, id string) (tokenlysis.JobEvent, error) {
	return s.transition(ctx, kindCancel, id, nil,
		tokenlysis.JobEvent{Kind: tokenlysis.EventCanceled, Message: "canceled"})
}

// Requeue puts a failed or canceled job back in the queued state for a new
// run, keeping its event log (the stream goes on from the next number).
// The job takes its dedupe key again, which another unfinished job may
// hold meanwhile: then nothing changes.
// Errors: ENOTFOUND; ECONFLICT when the job is not failed or canceled, or
// when an unfinished job holds its dedupe key.
func (s *Store) Requeue(ctx context.Context, id string) (tokenlysis.JobEvent, error) {
	for try := 1; ; try++ {
		ev, err := s.transition(ctx, kindRequeue, id, nil,
			tokenlysis.JobEvent{Kind: tokenlysis.EventQueued, Message: "queued again"})
		if !database.IsUniqueViolation(err) {
			return ev, err
		}
		// The only unique key a requeue can take is active_dedupe_key.
		err = s.requeueConflict(ctx, id)
		if errors.Is(err, errStaleDedupeKey) && try == 1 {
			continue // the dedupe key is free now
		}
		return ev, err
	}
}

// requeueConflict is the error of a requeue of job id refused because
// another job holds its dedupe key: an ECONFLICT naming that job.
// Errors: ECONFLICT; errStaleDedupeKey (see dedupeHolder).
func (s *Store) requeueConflict(ctx context.Context, id string) error {
	var key sql.NullString
	if err := s.db.GetContext(ctx, &key, s.rebind(`SELECT dedupe_key FROM jobs WHERE id = ?`), id); err != nil {
		return wrap("requeue job", err)
	}
	holder, err := s.dedupeHolder(ctx, key.String)
	switch {
	case err == nil:
		return &tokenlysis.Error{Code: tokenlysis.ECONFLICT, Message: "An identical job is already queued or running: " + holder.ID + ". Retry this one once it has ended."}
	case errors.Is(err, errStaleDedupeKey):
		return err
	case tokenlysis.ErrorCode(err) == tokenlysis.ENOTFOUND:
		return tokenlysis.Errorf(tokenlysis.ECONFLICT, "An identical job was queued or running; try again.")
	}
	return wrap("requeue job", err)
}

// PurgeFinished deletes jobs, with their events, that ended before the
// given time. It returns how many jobs it deleted.
func (s *Store) PurgeFinished(ctx context.Context, before time.Time) (int64, error) {
	n, err := s.deleteJobs(ctx, `finished_at IS NOT NULL AND finished_at < ?`, before.UTC())
	return n, wrap("purge jobs", err)
}

// StaleJobs returns unfinished jobs (queued, running, retrying) whose row
// has not changed since before, oldest change first, at most limit. The
// reconciler checks that each still has its asynq task.
func (s *Store) StaleJobs(ctx context.Context, before time.Time, limit int) ([]tokenlysis.Job, error) {
	// No index covers status (nor updated_at, which every transition
	// changes too): with one, every update of a job row on the job path
	// would be a non-HOT update on PostgreSQL, writing a new entry in every
	// index (003_hot_jobs). This query reads every job kept (the finished
	// ones for TOKENLYSIS_JOB_RETENTION, 7 days by default) and sorts the
	// unfinished ones unchanged since before, once a minute per worker.
	q, args, err := sqlx.In(`SELECT `+jobColumns+` FROM jobs WHERE status IN (?) AND updated_at < ? ORDER BY updated_at LIMIT ?`,
		active, before.UTC(), limit)
	if err != nil {
		return nil, wrap("list stale jobs", err)
	}
	return s.selectJobs(ctx, "list stale jobs", q, args)
}
