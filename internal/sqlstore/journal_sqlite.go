package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// commitWritesSQLite writes ws wave after wave: a wave never holds two
// writes of the same job, so that its statements (one per kind) may run in
// any order, and a later write of a job sees the earlier one. Each wave's
// new jobs go first, then each kind of transition, then the events of all
// of them.
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
// A new job holds its dedupe key (active_dedupe_key, unique) until it ends.
func (s *Store) createJobsSQLite(ctx context.Context, tx *sql.Tx, ws []*jobWrite) error {
	for chunk := range chunks(ws, sqliteRows) {
		var b strings.Builder
		b.WriteString(`INSERT INTO jobs (id, type, queue, params, status, percent, message, attempts, max_retry,
			result, error, submitted_by, idempotency_key, dedupe_key, active_dedupe_key, last_seq, created_at, updated_at) VALUES `)
		args := make([]any, 0, 11*len(chunk))
		for i, w := range chunk {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(`(?, ?, ?, ?, 'queued', 0, '', 0, ?, NULL, '', ?, ?, ?, ?, 1, ?, ?)`)
			j := w.create
			args = append(args, j.ID, j.Type, j.Queue, string(j.Params), j.MaxRetry,
				j.SubmittedBy, nullString(j.IdempotencyKey), nullString(j.DedupeKey), nullString(j.DedupeKey), j.CreatedAt, j.CreatedAt)
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
	set, guard := strings.ReplaceAll(k.set, "{now}", "?1"), ""
	if k.guard != "" {
		guard = " AND " + k.guard
	}
	for i := range k.args {
		set = strings.ReplaceAll(set, "{a"+strconv.Itoa(i+1)+"}", "v.column"+strconv.Itoa(i+2))
	}
	cols := len(k.args)
	if k.run { // the run token, after the args
		cols++
		run := "v.column" + strconv.Itoa(cols+1)
		set, guard = strings.ReplaceAll(set, "{run}", run), strings.ReplaceAll(guard, "{run}", run)
	}
	row := "(" + strings.Repeat("?, ", cols) + "?)"
	// The plan must be the values, each finding its job by primary key.
	// The unary + kept SQLite from driving the update by the status index
	// (every queued job, each joined to the values); 003_hot_jobs dropped
	// that index, and the + keeps any index on status out of this plan.
	for chunk := range chunks(ws, sqliteRows) {
		var b strings.Builder
		b.WriteString(`UPDATE jobs SET last_seq = jobs.last_seq + 1, updated_at = ?1, ` + set + ` FROM (VALUES `)
		args := make([]any, 1, 1+len(chunk)*(1+cols))
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
			if k.run {
				args = append(args, w.run)
			}
		}
		b.WriteString(`) AS v WHERE jobs.id = v.column1 AND +jobs.status IN (` + k.statusList() + `)` + guard + ` RETURNING id, last_seq`)
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
