package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// The job writes (a new job, each change of a job's state, each progress
// event) go through the Store's journal, a batch.Group: the writes that
// arrive while a group is being committed make up the next group, written
// in one transaction (on SQLite with one multi-row statement per kind of
// write, journal_sqlite.go; on PostgreSQL with one statement per set of
// jobs whose writes are of the same kinds, journal_postgres.go). A group
// led by a queued write (one nobody waits for) first lingers for others
// to join it, as long as they keep coming (Config.AsyncLingerIdle) and
// for Config.AsyncLinger at most. Under load a worker running dozens of jobs at once pays for a few commits
// instead of one per write; a lone write is committed at once, as a group
// of one. One group is committed at a time: SQLite has one writer anyway,
// and on PostgreSQL, letting a few groups commit at once made the groups
// smaller and the job path slower (BenchmarkJobLifecycle, 20 writers:
// 2,030 jobs/s with one group at a time, 1,470 with two, 1,190 with four).

// groupTimeout bounds a group's transaction: the group is shared, so no
// single caller's context may cancel it.
const groupTimeout = 30 * time.Second

// transitionKind is one kind of change of a job's state: which states it
// starts from, the state it leaves the job in (none: unchanged), and the
// columns it sets. In sets, {now} is the group's time and {a1}, {a2} are
// the change's own values, whose PostgreSQL types are args.
type transitionKind struct {
	name string
	op   string
	from []tokenlysis.JobStatus
	to   tokenlysis.JobStatus
	sets []string // "column = expression"
	args []string
	set  string // the sets joined
	// readsRow: an expression reads the row (the job's values before the
	// change), so the change cannot follow another in one UPDATE.
	readsRow bool
	// run: the kind uses its write's run token, {run} in sets and guard:
	// start records it, the others apply only while it is the job's.
	run bool
	// guard is a condition on the row besides its status, or "".
	guard string
}

// withRun returns k using the attempt's run token (jobWrite.run): start
// records it (record), the others apply only while it is the job's, or
// when they belong to no attempt (the empty token).
func (k *transitionKind) withRun(record bool) *transitionKind {
	c := *k
	c.run = true
	if record {
		c.sets = append(append([]string(nil), k.sets...), "run_id = {run}")
		c.set = strings.Join(c.sets, ", ")
	} else {
		c.guard = "({run} = '' OR jobs.run_id = {run})"
	}
	return &c
}

func newKind(name, op string, from []tokenlysis.JobStatus, to tokenlysis.JobStatus, args []string, sets ...string) *transitionKind {
	set := strings.Join(sets, ", ")
	return &transitionKind{name: name, op: op, from: from, to: to, sets: sets, args: args, set: set,
		readsRow: strings.Contains(set, "jobs.")}
}

// The final kinds (succeed, fail, fail-queued, cancel) clear
// active_dedupe_key, which holds a job's dedupe key only while it is
// unfinished (003_hot_jobs); requeue takes it again from dedupe_key, and
// fails with a unique violation when another unfinished job holds it
// (outcome turns that into ECONFLICT). For a job without a dedupe key the
// column stays NULL, an unchanged value: the update remains HOT on
// PostgreSQL, no index of jobs covering a column that a kind changes.
var (
	kindStart = newKind("start", "start job", active, tokenlysis.JobRunning, nil,
		`status = 'running'`, `attempts = jobs.attempts + 1`, `started_at = COALESCE(jobs.started_at, {now})`).withRun(true)
	kindProgress = newKind("progress", "report progress", running, "", []string{"integer", "text"},
		`percent = {a1}`, `message = {a2}`).withRun(false)
	kindRetrying = newKind("retrying", "mark job retrying", running, tokenlysis.JobRetrying, []string{"text"},
		`status = 'retrying'`, `error = {a1}`).withRun(false)
	kindSucceed = newKind("succeed", "finish job", running, tokenlysis.JobSucceeded, []string{"jsonb"},
		`status = 'succeeded'`, `percent = 100`, `error = ''`, `result = {a1}`, `finished_at = {now}`, `active_dedupe_key = NULL`).withRun(false)
	failSets       = []string{`status = 'failed'`, `error = {a1}`, `finished_at = {now}`, `active_dedupe_key = NULL`}
	kindFail       = newKind("fail", "fail job", running, tokenlysis.JobFailed, []string{"text"}, failSets...).withRun(false)
	kindFailQueued = newKind("fail-queued", "fail job", []tokenlysis.JobStatus{tokenlysis.JobQueued}, tokenlysis.JobFailed, []string{"text"},
		failSets...)
	kindCancel = newKind("cancel", "cancel job", active, tokenlysis.JobCanceled, nil,
		`status = 'canceled'`, `finished_at = {now}`, `active_dedupe_key = NULL`)
	kindRequeue = newKind("requeue", "requeue job", []tokenlysis.JobStatus{tokenlysis.JobFailed, tokenlysis.JobCanceled}, tokenlysis.JobQueued, nil,
		`status = 'queued'`, `percent = 0`, `message = ''`, `error = ''`, `result = NULL`, `attempts = 0`, `started_at = NULL`, `finished_at = NULL`,
		`active_dedupe_key = jobs.dedupe_key`)
)

// statusList is the SQL list of statuses (constants, never user input).
func (k *transitionKind) statusList() string {
	q := make([]string, len(k.from))
	for i, st := range k.from {
		q[i] = "'" + string(st) + "'"
	}
	return strings.Join(q, ", ")
}

// jobWrite is one write waiting for its group.
type jobWrite struct {
	create *tokenlysis.Job // a new job with its "queued" event; else a transition:

	id   string
	kind *transitionKind
	args []any  // the kind's own values
	run  string // the attempt's run token (tokenlysis.AttemptFrom), for a run kind
	ev   tokenlysis.JobEvent

	// The outcome. applied is false when the write changed nothing: a
	// unique key already taken (create), a job missing or in another state
	// (transition).
	applied bool
	seq     int64
	at      time.Time
	err     error
}

// event is the event a committed transition appended.
func (w *jobWrite) event() tokenlysis.JobEvent {
	ev := w.ev
	ev.JobID, ev.Seq, ev.CreatedAt = w.id, w.seq, w.at
	return ev
}

func (w *jobWrite) jobID() string {
	if w.create != nil {
		return w.create.ID
	}
	return w.id
}

// JobWriteStats counts job writes and the commits that wrote them.
type JobWriteStats struct {
	Writes  int64
	Commits int64
}

// JobWriteStats returns how many job writes this Store made and in how
// many commits.
func (s *Store) JobWriteStats() JobWriteStats {
	return JobWriteStats{Writes: s.writes.Load(), Commits: s.commits.Load()}
}

// write commits w with whatever other writes are waiting, and returns when
// w's outcome is known.
func (s *Store) write(ctx context.Context, w *jobWrite) {
	s.writes.Add(1)
	s.journal.Do(ctx, w)
}

// commitGroup writes group in one transaction and sets each write's
// outcome. When the transaction fails for another reason than an
// unreachable database, each write is tried alone, so that one bad write
// fails alone.
func (s *Store) commitGroup(ctx context.Context, group []*jobWrite) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), groupTimeout)
	defer cancel()
	defer func() {
		// Every writer of the group waits for this one: a panic must end
		// as their error, not leave them (and every later write) waiting.
		if v := recover(); v != nil {
			err := fmt.Errorf("sqlstore: panic while committing job writes: %v", v)
			for _, w := range group {
				w.applied, w.err = false, err
			}
		}
	}()
	err := s.commitWrites(ctx, group)
	if err != nil && len(group) > 1 && !database.IsUnavailable(err) {
		for _, w := range group {
			w.err = s.commitWrites(ctx, []*jobWrite{w})
		}
	} else {
		for _, w := range group {
			w.err = err
		}
	}
	s.announce(ctx, group)
}

// announce tells the Announcer of the events group made durable, in the
// group's order (a job's writes are in the order they were queued).
func (s *Store) announce(ctx context.Context, group []*jobWrite) {
	if s.announcer == nil {
		return
	}
	evs := make([]tokenlysis.JobEvent, 0, len(group))
	for _, w := range group {
		if w.err == nil && w.applied && w.create == nil {
			evs = append(evs, w.event())
		}
	}
	if len(evs) > 0 {
		s.announcer.Announce(ctx, evs)
	}
}

// commitWrites writes ws in one transaction, in their order for each job.
func (s *Store) commitWrites(ctx context.Context, ws []*jobWrite) error {
	s.commits.Add(1)
	for _, w := range ws {
		w.applied, w.seq = false, 0
	}
	now := s.now()
	var err error
	if s.db.Dialect == database.Postgres {
		err = s.commitWritesPostgres(ctx, now, ws)
	} else {
		err = s.commitWritesSQLite(ctx, now, ws)
	}
	if err != nil {
		return err
	}
	for _, w := range ws {
		w.at = now
	}
	return nil
}

// byID indexes writes by job ID (unique within a wave, or among new jobs).
func byID(ws []*jobWrite) map[string]*jobWrite {
	m := make(map[string]*jobWrite, len(ws))
	for _, w := range ws {
		m[w.jobID()] = w
	}
	return m
}

// returned is what markApplied reads: *sql.Rows or pgx.Rows.
type returned interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// markApplied reads the RETURNING rows (job ID, sequence number) of a
// statement into the writes they belong to.
func markApplied(rows returned, ws []*jobWrite) error {
	m := byID(ws)
	for rows.Next() {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			return err
		}
		if w := m[id]; w != nil {
			w.applied, w.seq = true, seq
		}
	}
	return rows.Err()
}
