package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// The job writes (a new job, each change of a job's state, each progress
// event) go through the Store's journal, a batch.Group: the writes that
// arrive while a group is being committed make up the next group, written
// in one transaction with one multi-row statement per kind of write. Under
// load a worker running dozens of jobs at once pays for a few commits
// instead of one per write; a lone write is committed at once, as a group
// of one. One group is committed at a time: SQLite has one writer anyway,
// and on PostgreSQL, letting a few groups commit at once made the groups
// smaller and the job path slower (BenchmarkJobLifecycle, 20 writers:
// 2,030 jobs/s with one group at a time, 1,470 with two, 1,190 with four).

// groupTimeout bounds a group's transaction: the group is shared, so no
// single caller's context may cancel it.
const groupTimeout = 30 * time.Second

// transitionKind is one kind of change of a job's state: which states it
// starts from, and what it sets. In set, {now} is the group's time and {a1},
// {a2} are the change's own values, whose PostgreSQL types are args.
type transitionKind struct {
	op   string
	from []tokenlysis.JobStatus
	set  string
	args []string
}

var (
	kindStart = &transitionKind{op: "start job", from: active,
		set: `status = 'running', attempts = jobs.attempts + 1, started_at = COALESCE(jobs.started_at, {now})`}
	kindProgress = &transitionKind{op: "report progress", from: running,
		set: `percent = {a1}, message = {a2}`, args: []string{"integer", "text"}}
	kindRetrying = &transitionKind{op: "mark job retrying", from: running,
		set: `status = 'retrying', error = {a1}`, args: []string{"text"}}
	kindSucceed = &transitionKind{op: "finish job", from: running,
		set: `status = 'succeeded', percent = 100, error = '', result = {a1}, finished_at = {now}`, args: []string{"jsonb"}}
	kindFail = &transitionKind{op: "fail job", from: running,
		set: `status = 'failed', error = {a1}, finished_at = {now}`, args: []string{"text"}}
	kindFailQueued = &transitionKind{op: "fail job", from: []tokenlysis.JobStatus{tokenlysis.JobQueued},
		set: kindFail.set, args: kindFail.args}
	kindCancel = &transitionKind{op: "cancel job", from: active,
		set: `status = 'canceled', finished_at = {now}`}
	kindRequeue = &transitionKind{op: "requeue job", from: []tokenlysis.JobStatus{tokenlysis.JobFailed, tokenlysis.JobCanceled},
		set: `status = 'queued', percent = 0, message = '', error = '', result = NULL, attempts = 0, started_at = NULL, finished_at = NULL`}
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

	id      string
	kind    *transitionKind
	args    []any // the kind's own values
	ev      tokenlysis.JobEvent
	durable bool // false: a PostgreSQL crash may lose it (progress)

	// The outcome. applied is false when the write changed nothing: a
	// unique key already taken (create), a job missing or in another state
	// (transition).
	applied bool
	seq     int64
	at      time.Time
	err     error
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
		return
	}
	for _, w := range group {
		w.err = err
	}
}

// commitWrites writes ws in one transaction, wave after wave: a wave never
// holds two writes of the same job, so that its statements (one per kind)
// may run in any order, and a later write of a job sees the earlier one.
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

// commitWritesSQLite writes each wave's new jobs, then each kind of
// transition, then the events of all of them.
func (s *Store) commitWritesSQLite(ctx context.Context, now time.Time, ws []*jobWrite) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for wave := range waves(ws) {
		creates, kinds := sortWave(wave)
		if len(creates) > 0 {
			if err := s.createJobsSQLite(ctx, tx, creates); err != nil {
				return err
			}
		}
		for _, k := range kinds {
			if err := s.transitionSQLite(ctx, tx, now, k.kind, k.writes); err != nil {
				return err
			}
		}
		if err := s.insertEventsSQLite(ctx, tx, now, wave); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// commitWritesPostgres sends the whole transaction in one round trip (a
// pgx batch, pipelined): BEGIN, one statement per wave, COMMIT.
func (s *Store) commitWritesPostgres(ctx context.Context, now time.Time, ws []*jobWrite) error {
	conn, err := s.db.DB.DB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("sqlstore: PostgreSQL connection is a %T, not a pgx connection", dc)
		}
		pc := sc.Conn()
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		// pgx prepares each statement, and after five runs PostgreSQL may
		// switch to a generic plan, made without the arrays' lengths.
		// With the jobs table growing and not analysed, the generic plans
		// made every group slower as it grew (P1 on PostgreSQL over
		// 30,000 jobs: 260–300 jobs/s, 3.6 ms of server CPU per job;
		// 1,700 jobs/s with custom plans), while a custom plan sees a
		// handful of IDs and looks each up by primary key.
		b.Queue("SET LOCAL plan_cache_mode = force_custom_plan")
		durable := false
		for _, w := range ws {
			durable = durable || w.create != nil || w.durable
		}
		if !durable {
			// Progress alone: do not wait for the WAL flush. A crash may
			// lose the latest progress events with their numbers, never a
			// state.
			b.Queue("SET LOCAL synchronous_commit = off")
		}
		for wave := range waves(ws) {
			st := &waveStatement{at: now}
			creates, kinds := sortWave(wave)
			if len(creates) > 0 {
				st.creates(creates)
			}
			for _, k := range kinds {
				st.transition(k.kind, k.writes)
			}
			b.Queue(st.sql(), st.args...).Query(func(rows pgx.Rows) error { return markApplied(rows, wave) })
		}
		b.Queue("COMMIT")
		err := pc.SendBatch(ctx, b).Close()
		if err != nil && pc.PgConn().TxStatus() != 'I' {
			// A statement failed: the rest was skipped, COMMIT included.
			if _, rerr := pc.Exec(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
				return errors.Join(err, rerr)
			}
		}
		return err
	})
}

// kindWrites are a wave's writes of one kind of transition.
type kindWrites struct {
	kind   *transitionKind
	writes []*jobWrite
}

// sortWave splits a wave into its new jobs and its transitions by kind, in
// the order the kinds first appear.
func sortWave(wave []*jobWrite) (creates []*jobWrite, kinds []kindWrites) {
	for _, w := range wave {
		if w.create != nil {
			creates = append(creates, w)
			continue
		}
		i := slices.IndexFunc(kinds, func(k kindWrites) bool { return k.kind == w.kind })
		if i < 0 {
			kinds = append(kinds, kindWrites{kind: w.kind})
			i = len(kinds) - 1
		}
		kinds[i].writes = append(kinds[i].writes, w)
	}
	return creates, kinds
}

// waves splits ws, in order, at each write of a job already in the wave.
func waves(ws []*jobWrite) func(yield func([]*jobWrite) bool) {
	return func(yield func([]*jobWrite) bool) {
		seen := make(map[string]bool, len(ws))
		start := 0
		for i, w := range ws {
			if seen[w.jobID()] {
				if !yield(ws[start:i]) {
					return
				}
				start = i
				clear(seen)
			}
			seen[w.jobID()] = true
		}
		if start < len(ws) {
			yield(ws[start:])
		}
	}
}

// byID indexes a wave's writes by job ID (unique within a wave).
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

// waveStatement builds the PostgreSQL statement of one wave: one
// data-modifying CTE for its new jobs and one per kind of transition, and
// one INSERT of all their events, returning (job ID, sequence number) for
// each write applied. One statement, planned once, instead of one per
// kind: on PostgreSQL the per-statement cost dominated small groups.
type waveStatement struct {
	at    time.Time // the group's time
	atRef string    // its placeholder, once used
	ctes  []string
	parts []string // SELECTs of the events, one per CTE
	args  []any
}

// now returns the placeholder of the group's time.
func (st *waveStatement) now() string {
	if st.atRef == "" {
		st.atRef = st.param(st.at, "timestamptz")
	}
	return st.atRef
}

// param adds a bind value and returns its placeholder with a cast.
func (st *waveStatement) param(v any, typ string) string {
	st.args = append(st.args, v)
	return "$" + strconv.Itoa(len(st.args)) + "::" + typ
}

func (st *waveStatement) sql() string {
	return `WITH ` + strings.Join(st.ctes, ",\n") + `
		INSERT INTO job_events (job_id, seq, kind, percent, message, data, created_at)
		` + strings.Join(st.parts, "\nUNION ALL ") + `
		RETURNING job_id, seq`
}

// creates adds the insert of the jobs, skipping any whose ID or keys are
// taken, with their "queued" events.
func (st *waveStatement) creates(ws []*jobWrite) {
	n := len(ws)
	ids, types, queues, params := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	maxRetry, by := make([]int32, n), make([]string, n)
	idem, dedupe := make([]*string, n), make([]*string, n)
	created := make([]time.Time, n)
	for i, w := range ws {
		j := w.create
		ids[i], types[i], queues[i], params[i] = j.ID, j.Type, j.Queue, string(j.Params)
		maxRetry[i], by[i], created[i] = int32(j.MaxRetry), j.SubmittedBy, j.CreatedAt
		idem[i], dedupe[i] = optional(j.IdempotencyKey), optional(j.DedupeKey)
	}
	arrays := strings.Join([]string{
		st.param(ids, "text[]"), st.param(types, "text[]"), st.param(queues, "text[]"), st.param(params, "text[]"),
		st.param(maxRetry, "integer[]"), st.param(by, "text[]"), st.param(idem, "text[]"), st.param(dedupe, "text[]"),
		st.param(created, "timestamptz[]"),
	}, ", ")
	st.ctes = append(st.ctes, `c AS (
			INSERT INTO jobs (id, type, queue, params, status, percent, message, attempts, max_retry,
				result, error, submitted_by, idempotency_key, dedupe_key, last_seq, created_at, updated_at)
			SELECT id, type, queue, params::jsonb, 'queued', 0, '', 0, max_retry,
				NULL, '', submitted_by, idem, dedupe, 1, created_at, created_at
			FROM unnest(`+arrays+`) AS v(id, type, queue, params, max_retry, submitted_by, idem, dedupe, created_at)
			ON CONFLICT DO NOTHING
			RETURNING id, created_at)`)
	st.parts = append(st.parts, `SELECT id, 1, 'queued', 0, 'queued', NULL::jsonb, created_at FROM c`)
}

// transition adds one kind of transition of the wave's jobs, with their
// events.
func (st *waveStatement) transition(k *transitionKind, ws []*jobWrite) {
	n := len(ws)
	ids, kinds, messages := make([]string, n), make([]string, n), make([]string, n)
	percents, data := make([]int32, n), make([]*string, n)
	vals := make([][]any, len(k.args))
	for i, w := range ws {
		ids[i], kinds[i], percents[i], messages[i] = w.id, string(w.ev.Kind), int32(w.ev.Percent), w.ev.Message
		data[i] = jsonText(w.ev.Data)
		for a := range k.args {
			vals[a] = append(vals[a], w.args[a])
		}
	}
	cols := []string{"id", "kind", "percent", "message", "data"}
	arrays := []string{st.param(ids, "text[]"), st.param(kinds, "text[]"), st.param(percents, "integer[]"),
		st.param(messages, "text[]"), st.param(data, "text[]")}
	now := st.now()
	set := strings.ReplaceAll(k.set, "{now}", now)
	for a, t := range k.args {
		name := "a" + strconv.Itoa(a+1)
		ref := "v." + name
		if t == "jsonb" {
			t, ref = "text", ref+"::jsonb" // cast per element
		}
		cols, arrays = append(cols, name), append(arrays, st.param(pgArray(k.args[a], vals[a]), t+"[]"))
		set = strings.ReplaceAll(set, "{"+name+"}", ref)
	}
	u := "u" + strconv.Itoa(len(st.ctes))
	st.ctes = append(st.ctes, u+` AS (
			UPDATE jobs SET last_seq = jobs.last_seq + 1, updated_at = `+now+`, `+set+`
			FROM unnest(`+strings.Join(arrays, ", ")+`) AS v(`+strings.Join(cols, ", ")+`)
			WHERE jobs.id = v.id AND jobs.status IN (`+k.statusList()+`)
			RETURNING jobs.id, jobs.last_seq, v.kind, v.percent, v.message, v.data)`)
	st.parts = append(st.parts, `SELECT id, last_seq, kind, percent, message, data::jsonb, `+now+` FROM `+u)
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// pgArray turns a kind's values into a typed slice pgx encodes as an array.
func pgArray(typ string, vals []any) any {
	switch typ {
	case "integer":
		a := make([]int32, len(vals))
		for i, v := range vals {
			a[i] = int32(v.(int))
		}
		return a
	case "jsonb":
		a := make([]*string, len(vals))
		for i, v := range vals {
			a[i] = jsonText(v.(json.RawMessage))
		}
		return a
	default:
		a := make([]string, len(vals))
		for i, v := range vals {
			a[i] = v.(string)
		}
		return a
	}
}

// jsonText is a JSON value as text, or nil for none.
func jsonText(b json.RawMessage) *string {
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	s := string(b)
	return &s
}

// sqliteRows caps the rows of one SQLite statement, well under its limit
// of 32,766 bound values.
const sqliteRows = 256

// sqlitePrepared is the largest group whose SQLite statements are kept
// prepared: parsing them each time was a sixth of the job path's CPU, and
// under load most groups are small.
const sqlitePrepared = 16

// queryPrepared runs q in tx, prepared once per connection when its group
// has at most sqlitePrepared rows. (pgx caches prepared statements itself.)
func (s *Store) queryPrepared(ctx context.Context, tx *sql.Tx, rows int, q string, args ...any) (*sql.Rows, error) {
	if rows > sqlitePrepared {
		return tx.QueryContext(ctx, q, args...)
	}
	v, ok := s.stmts.Load(q)
	if !ok {
		st, err := s.db.PrepareContext(ctx, q)
		if err != nil {
			return nil, err
		}
		if v, ok = s.stmts.LoadOrStore(q, st); ok {
			st.Close()
		}
	}
	return tx.StmtContext(ctx, v.(*sql.Stmt)).QueryContext(ctx, args...)
}

// queryApplied runs q (prepared) and marks the writes its RETURNING rows
// name as applied.
func (s *Store) queryApplied(ctx context.Context, tx *sql.Tx, ws []*jobWrite, q string, args ...any) error {
	rows, err := s.queryPrepared(ctx, tx, len(ws), q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if err := markApplied(rows, ws); err != nil {
		return err
	}
	return rows.Close()
}

// createJobsSQLite inserts the jobs; their events follow with the wave's.
func (s *Store) createJobsSQLite(ctx context.Context, tx *sql.Tx, ws []*jobWrite) error {
	for chunk := range chunks(ws, sqliteRows) {
		var b strings.Builder
		b.WriteString(`INSERT INTO jobs (id, type, queue, params, status, percent, message, attempts, max_retry,
			result, error, submitted_by, idempotency_key, dedupe_key, last_seq, created_at, updated_at) VALUES `)
		args := make([]any, 0, 9*len(chunk))
		for i, w := range chunk {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(`(?, ?, ?, ?, 'queued', 0, '', 0, ?, NULL, '', ?, ?, ?, 1, ?, ?)`)
			j := w.create
			args = append(args, j.ID, j.Type, j.Queue, string(j.Params), j.MaxRetry,
				j.SubmittedBy, nullString(j.IdempotencyKey), nullString(j.DedupeKey), j.CreatedAt, j.CreatedAt)
		}
		b.WriteString(` ON CONFLICT DO NOTHING RETURNING id, last_seq`)
		if err := s.queryApplied(ctx, tx, chunk, b.String(), args...); err != nil {
			return err
		}
	}
	for _, w := range ws {
		if w.applied {
			w.ev = tokenlysis.JobEvent{JobID: w.create.ID, Kind: tokenlysis.EventQueued, Message: "queued", CreatedAt: w.create.CreatedAt}
		}
	}
	return nil
}

// transitionSQLite applies one kind of transition to the wave's jobs; the
// events follow with the wave's.
func (s *Store) transitionSQLite(ctx context.Context, tx *sql.Tx, now time.Time, k *transitionKind, ws []*jobWrite) error {
	// ?1 is now; the values' columns are column1 (id), column2...
	set := strings.ReplaceAll(k.set, "{now}", "?1")
	for i := range k.args {
		set = strings.ReplaceAll(set, "{a"+strconv.Itoa(i+1)+"}", "v.column"+strconv.Itoa(i+2))
	}
	row := "(" + strings.Repeat("?, ", len(k.args)) + "?)"
	// The unary + keeps SQLite from driving the update by the status index
	// (every queued job, each joined to the values): the plan must be the
	// values, each finding its job by primary key.
	for chunk := range chunks(ws, sqliteRows) {
		var b strings.Builder
		b.WriteString(`UPDATE jobs SET last_seq = jobs.last_seq + 1, updated_at = ?1, ` + set + ` FROM (VALUES `)
		args := make([]any, 1, 1+len(chunk)*(1+len(k.args)))
		args[0] = now
		for i, w := range chunk {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(row)
			args = append(args, w.id)
			for a, t := range k.args {
				v := w.args[a]
				if t == "jsonb" {
					v = nullJSON(v.(json.RawMessage))
				}
				args = append(args, v)
			}
		}
		b.WriteString(`) AS v WHERE jobs.id = v.column1 AND +jobs.status IN (` + k.statusList() + `) RETURNING id, last_seq`)
		if err := s.queryApplied(ctx, tx, chunk, b.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// insertEventsSQLite appends the events of the applied writes.
func (s *Store) insertEventsSQLite(ctx context.Context, tx *sql.Tx, now time.Time, ws []*jobWrite) error {
	var evs []*jobWrite
	for _, w := range ws {
		if w.applied {
			evs = append(evs, w)
		}
	}
	for chunk := range chunks(evs, sqliteRows) {
		var b strings.Builder
		b.WriteString(`INSERT INTO job_events (job_id, seq, kind, percent, message, data, created_at) VALUES `)
		args := make([]any, 0, 7*len(chunk))
		for i, w := range chunk {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(`(?, ?, ?, ?, ?, ?, ?)`)
			at := now
			if w.create != nil {
				at = w.create.CreatedAt
			}
			args = append(args, w.jobID(), w.seq, string(w.ev.Kind), w.ev.Percent, w.ev.Message, nullJSON(w.ev.Data), at)
		}
		rows, err := s.queryPrepared(ctx, tx, len(chunk), b.String(), args...)
		if err != nil {
			return err
		}
		if err := rows.Close(); err != nil {
			return err
		}
	}
	return nil
}

// chunks yields ws in slices of at most n.
func chunks(ws []*jobWrite, n int) func(yield func([]*jobWrite) bool) {
	return func(yield func([]*jobWrite) bool) {
		for len(ws) > 0 {
			k := min(n, len(ws))
			if !yield(ws[:k]) {
				return
			}
			ws = ws[k:]
		}
	}
}
