package sqlstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// On PostgreSQL a group is one statement for its new jobs and one per set
// of chains. A chain is the writes of one job that follow each other in a
// group, merged into one UPDATE and one INSERT of their events: a job's
// start, its last progress and its success, queued together. The chains
// of other jobs with the same kinds make one statement over arrays (a
// chain set), so that a worker's group of twenty jobs' starts, progress
// and successes is one statement, not twenty. Every statement finds its
// jobs by primary key, and keeps one generic plan per connection: planning
// was most of the server's work when each group was planned anew
// (force_custom_plan), and pgPlanSettings makes sure the generic plan of an
// array statement is the nested loop over the primary key, whatever the
// statistics (a hash join over the status index was chosen on this
// machine's unanalysed tables, before 003_hot_jobs dropped that index;
// a sequential scan of jobs would be chosen on a new database today).

// maxChain bounds the writes merged into one statement.
const maxChain = 8

// pgPlanSettings is sent first in each group's transaction (local to it).
// The statements are primary-key lookups, one job's or one per element of
// an array: their generic plans are right whatever the table's statistics,
// and save planning them. The array statements join the arrays to jobs,
// and a generic plan made while jobs is small (on a new database, whose
// statistics nobody has gathered) would scan and hash the whole table,
// then keep doing so once it has grown: only the nested loop over the
// primary key is allowed.
// (Settings that PostgreSQL 12 lacks, such as enable_memoize, are left
// alone: an unknown one would fail every group.)
const pgPlanSettings = `SELECT set_config('plan_cache_mode', 'force_generic_plan', true),
	set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true),
	set_config('enable_mergejoin', 'off', true)`

// commitWritesPostgres sends the whole transaction in one round trip (a
// pgx batch, pipelined): BEGIN, the plan settings, one statement for the
// new jobs and one per chain set, COMMIT.
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
		b.Queue(pgPlanSettings)
		for _, cs := range chainSets(chains(ws)) {
			q, args := cs.statement(now)
			b.Queue(q, args...).Query(cs.markApplied)
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

// chain is one statement of a group: a new job alone, or consecutive
// transitions of one job.
type chain []*jobWrite

// chains splits a group, in order, into its statements. The new jobs are
// one statement, where the first of them is (no other write of a group can
// be of a job created in it: a job's ID is known once its creation
// returns). A transition joins the job's latest chain when it can run
// after it in the same UPDATE.
func chains(ws []*jobWrite) []chain {
	var cs []chain
	latest := make(map[string]int, len(ws)) // job ID → index in cs
	creates := -1
	for _, w := range ws {
		if w.create != nil {
			if creates < 0 {
				creates = len(cs)
				cs = append(cs, nil)
			}
			cs[creates] = append(cs[creates], w)
			continue
		}
		if i, ok := latest[w.id]; ok && cs[i].accepts(w) {
			cs[i] = append(cs[i], w)
			continue
		}
		latest[w.id] = len(cs)
		cs = append(cs, chain{w})
	}
	return cs
}

// accepts reports whether w can be merged after c: the status c leaves is
// one w starts from, and w's values do not depend on the columns c set
// (its expressions never read the row).
func (c chain) accepts(w *jobWrite) bool {
	if len(c) >= maxChain || c[0].create != nil || w.kind.readsRow {
		return false
	}
	// The chain applies as a whole where its first write applies, so a
	// later write must apply only where the first one does: from a subset
	// of its statuses (a cancel after a refused requeue would otherwise be
	// refused with it).
	for _, st := range w.kind.from {
		if !slices.Contains(c[0].kind.from, st) {
			return false
		}
	}
	// Only the first write's guard is checked, and it decides for the
	// whole chain: where a guard is involved, every write must be of the
	// same attempt, so that the writes one by one would all apply or none.
	if (w.kind.guard != "" || c[0].kind.guard != "") && (!w.kind.run || !c[0].kind.run || w.run != c[0].run) {
		return false
	}
	st, ok := c.leaves()
	return ok && slices.Contains(w.kind.from, st)
}

// leaves is the status the chain leaves the job in when it applies, if
// known.
func (c chain) leaves() (tokenlysis.JobStatus, bool) {
	var st tokenlysis.JobStatus
	if k := c[0].kind; k.to != "" {
		st = k.to
	} else if len(k.from) == 1 {
		st = k.from[0] // it keeps the only status it applies to
	} else {
		return "", false
	}
	for _, w := range c[1:] {
		if w.kind.to != "" {
			st = w.kind.to
		}
	}
	return st, true
}

// pgCreate is the PostgreSQL statement of new jobs with their "queued"
// events; a job whose ID or keys are taken is skipped. A new job holds its
// dedupe key (active_dedupe_key, unique) until it ends.
const pgCreate = `WITH c AS (
		INSERT INTO jobs (id, type, queue, params, status, percent, message, attempts, max_retry,
			result, error, submitted_by, idempotency_key, dedupe_key, active_dedupe_key, last_seq, created_at, updated_at)
		SELECT id, type, queue, params::jsonb, 'queued', 0, '', 0, max_retry,
			NULL, '', submitted_by, idem, dedupe, dedupe, 1, created_at, created_at
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::integer[], $6::text[], $7::text[], $8::text[], $9::timestamptz[])
			AS v(id, type, queue, params, max_retry, submitted_by, idem, dedupe, created_at)
		ON CONFLICT DO NOTHING
		RETURNING id, created_at)
	INSERT INTO job_events (job_id, seq, kind, percent, message, data, created_at)
	SELECT id, 1, 'queued', 0, 'queued', NULL, created_at FROM c
	RETURNING job_id, seq`

// createArgs are the bind values of pgCreate.
func (c chain) createArgs() []any {
	n := len(c)
	ids, types, queues, params := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	maxRetry, by := make([]int32, n), make([]string, n)
	idem, dedupe := make([]*string, n), make([]*string, n)
	created := make([]time.Time, n)
	for i, w := range c {
		j := w.create
		ids[i], types[i], queues[i], params[i] = j.ID, j.Type, j.Queue, string(j.Params)
		maxRetry[i], by[i], created[i] = int32(j.MaxRetry), j.SubmittedBy, j.CreatedAt
		idem[i], dedupe[i] = optional(j.IdempotencyKey), optional(j.DedupeKey)
	}
	return []any{ids, types, queues, params, maxRetry, by, idem, dedupe, created}
}

// chainStatement is the SQL of one sequence of kinds and where its bind
// values come from: $1 is the group's time, $2 the job, and $3… are
// params, in order.
type chainStatement struct {
	sql    string
	params []valueRef
	types  []string // the params' types (array statements)
}

// valueRef names one bind value: field f of write w, where fields 0–3 are
// its event's kind, percent, message and data, and 4… its own values.
type valueRef struct{ w, f int }

// chainSQL caches the statement of each sequence of kinds.
var chainSQL sync.Map // "start,progress,succeed" → *chainStatement

// statement returns the chain's SQL and bind values.
func (c chain) statement(now time.Time) (string, []any) {
	if c[0].create != nil {
		return pgCreate, c.createArgs()
	}
	key := c.key()
	v, ok := chainSQL.Load(key)
	if !ok {
		v, _ = chainSQL.LoadOrStore(key, c.build())
	}
	st := v.(*chainStatement)
	args := make([]any, 2, 2+len(st.params))
	args[0], args[1] = now, c[0].id
	for _, p := range st.params {
		args = append(args, c.value(p))
	}
	return st.sql, args
}

// runField is the valueRef field of a write's run token.
const runField = -1

// key names the chain's sequence of kinds ("start,progress,succeed").
func (c chain) key() string {
	if c[0].create != nil {
		return "create"
	}
	names := make([]string, len(c))
	for i, w := range c {
		names[i] = w.kind.name
	}
	return strings.Join(names, ",")
}

// value is the bind value p refers to: a string (text), an int32
// (integer) or a *string (jsonb, nil for none).
func (c chain) value(p valueRef) any {
	w := c[p.w]
	switch p.f {
	case runField:
		return w.run
	case 0:
		return string(w.ev.Kind)
	case 1:
		return int32(w.ev.Percent)
	case 2:
		return w.ev.Message
	case 3:
		return jsonText(w.ev.Data)
	}
	a := p.f - 4
	switch w.kind.args[a] {
	case "integer":
		return int32(w.args[a].(int))
	case "jsonb":
		return jsonText(w.args[a].(json.RawMessage))
	default:
		return w.args[a]
	}
}

// build makes the chain's statement. The UPDATE sets each column to the
// value of the last write that sets it (values no column keeps are not
// sent: PostgreSQL cannot type an unused parameter), and applies only if
// the job is in a status the first write starts from; the events get the
// job's next numbers, in the chain's order.
func (c chain) build() *chainStatement {
	st := &chainStatement{}
	param := func(ref valueRef, typ string) string {
		st.params = append(st.params, ref)
		n := "$" + strconv.Itoa(len(st.params)+2)
		if typ == "jsonb" {
			return n + "::text::jsonb"
		}
		return n + "::" + typ
	}
	sets := c.sets(param)
	guard := c.guard(param)
	events := make([]string, len(c))
	for i := range c {
		events[i] = "(" + strconv.Itoa(len(c)-1-i) + ", " + param(valueRef{i, 0}, "text") + ", " +
			param(valueRef{i, 1}, "integer") + ", " + param(valueRef{i, 2}, "text") + ", " + param(valueRef{i, 3}, "jsonb") + ")"
	}
	st.sql = `WITH u AS (
		UPDATE jobs SET last_seq = jobs.last_seq + ` + strconv.Itoa(len(c)) + `, updated_at = $1::timestamptz, ` + strings.Join(sets, ", ") + `
		WHERE jobs.id = $2::text AND jobs.status IN (` + c[0].kind.statusList() + `)` + guard + `
		RETURNING jobs.id, jobs.last_seq)
	INSERT INTO job_events (job_id, seq, kind, percent, message, data, created_at)
	SELECT u.id, u.last_seq - e.back, e.kind, e.percent, e.message, e.data, $1::timestamptz
	FROM u, (VALUES ` + strings.Join(events, ", ") + `) AS e(back, kind, percent, message, data)
	RETURNING job_id, seq`
	return st
}

// guard is the condition of the chain's first write besides its status
// (" AND …", or ""), with its values as param returns them. The chain's
// later writes hold the same run token (accepts), so their guards, which
// would read the row the first one changed, are implied.
func (c chain) guard(param func(ref valueRef, typ string) string) string {
	k := c[0].kind
	if k.guard == "" {
		return ""
	}
	return " AND " + strings.ReplaceAll(k.guard, "{run}", param(valueRef{0, runField}, "text"))
}

// sets is the SET list of the chain's UPDATE: each column set to the value
// of the last write that sets it, in the order the columns first appear,
// with {now} as $1 and each write's own values as param returns them.
func (c chain) sets(param func(ref valueRef, typ string) string) []string {
	var cols []string
	last := map[string]int{}
	for i, w := range c {
		for _, set := range w.kind.sets {
			col, _, _ := strings.Cut(set, " = ")
			if _, ok := last[col]; !ok {
				cols = append(cols, col)
			}
			last[col] = i
		}
	}
	sets := make([]string, len(cols))
	for i, col := range cols {
		w := c[last[col]]
		for _, set := range w.kind.sets {
			if name, expr, _ := strings.Cut(set, " = "); name == col {
				expr = strings.ReplaceAll(expr, "{now}", "$1::timestamptz")
				for a, t := range w.kind.args {
					if ph := "{a" + strconv.Itoa(a+1) + "}"; strings.Contains(expr, ph) {
						expr = strings.ReplaceAll(expr, ph, param(valueRef{last[col], 4 + a}, t))
					}
				}
				if strings.Contains(expr, "{run}") {
					expr = strings.ReplaceAll(expr, "{run}", param(valueRef{last[col], runField}, "text"))
				}
				sets[i] = col + " = " + expr
			}
		}
	}
	return sets
}

// markApplied reads the RETURNING rows (job ID, sequence number) of the
// chain's statement into its writes. A transition chain applies as a
// whole or not at all, its events numbered in its order.
func (c chain) markApplied(rows pgx.Rows) error {
	if c[0].create != nil {
		return markApplied(rows, c)
	}
	var seqs []int64
	for rows.Next() {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			return err
		}
		seqs = append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return c.apply(seqs)
}

// apply marks the chain's writes applied with the sequence numbers of the
// events its statement wrote (none: it did not apply).
func (c chain) apply(seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	if len(seqs) != len(c) {
		return fmt.Errorf("sqlstore: %d events written for %d job writes", len(seqs), len(c))
	}
	slices.Sort(seqs)
	for i, w := range c {
		w.applied, w.seq = true, seqs[i]
	}
	return nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// jsonText is a JSON value as text, or nil for none.
func jsonText(b json.RawMessage) *string {
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	s := string(b)
	return &s
}

// A chain set is one statement of a group: new jobs, one chain, or the
// chains of other jobs that have the same kinds, written over arrays (one
// element per job) by one UPDATE and one INSERT of all their events. Under
// load most of a worker's group is such a set (each job's start, progress
// and success), and one statement for all of them saves PostgreSQL the
// start-up of one statement per job.
type chainSet []chain

// maxChainSet bounds the chains of one array statement.
const maxChainSet = 128

// chainSets puts chains of the same kinds into sets, keeping each job's
// chains in their order: a chain joins the latest set of its kinds when
// that set comes after the job's previous set (a job is at most once in a
// set, and its sets run in order).
func chainSets(cs []chain) []chainSet {
	var sets []chainSet
	latestOfKey := map[string]int{} // kinds → index in sets
	latestOfJob := map[string]int{} // job ID → index in sets
	for _, c := range cs {
		if c[0].create != nil {
			sets = append(sets, chainSet{c})
			continue
		}
		key, id := c.key(), c[0].id
		if i, ok := latestOfKey[key]; ok && len(sets[i]) < maxChainSet {
			if j, seen := latestOfJob[id]; !seen || j < i {
				sets[i] = append(sets[i], c)
				latestOfJob[id] = i
				continue
			}
		}
		latestOfKey[key], latestOfJob[id] = len(sets), len(sets)
		sets = append(sets, chainSet{c})
	}
	return sets
}

// statement returns the set's SQL and bind values: a lone chain's own
// statement, or the array statement of its kinds.
func (cs chainSet) statement(now time.Time) (string, []any) {
	if len(cs) == 1 {
		return cs[0].statement(now)
	}
	key := "[]" + cs[0].key()
	v, ok := chainSQL.Load(key)
	if !ok {
		v, _ = chainSQL.LoadOrStore(key, cs[0].buildArray())
	}
	st := v.(*chainStatement)
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c[0].id
	}
	args := make([]any, 2, 2+len(st.params))
	args[0], args[1] = now, ids
	for pi, p := range st.params {
		switch st.types[pi] {
		case "integer":
			args = append(args, valuesOf[int32](cs, p))
		case "jsonb":
			args = append(args, valuesOf[*string](cs, p))
		default:
			args = append(args, valuesOf[string](cs, p))
		}
	}
	return st.sql, args
}

// valuesOf is the array of the value p refers to, one element per chain.
func valuesOf[T any](cs chainSet, p valueRef) []T {
	vals := make([]T, len(cs))
	for i, c := range cs {
		vals[i] = c.value(p).(T)
	}
	return vals
}

// buildArray makes the statement of chains of c's kinds over arrays: $1 is
// the group's time, $2 the jobs, $3… one array per value of build's
// statement, joined to jobs by primary key (pgPlanSettings). Values the
// UPDATE sets are read from the arrays' row v; the events' values are
// passed through the UPDATE's RETURNING to the INSERT.
func (c chain) buildArray() *chainStatement {
	st := &chainStatement{}
	param := func(ref valueRef, typ string) int {
		st.params = append(st.params, ref)
		st.types = append(st.types, typ)
		return len(st.params)
	}
	column := func(prefix string, n int, typ string) string {
		col := prefix + ".p" + strconv.Itoa(n)
		if typ == "jsonb" {
			return col + "::jsonb"
		}
		return col
	}
	vparam := func(ref valueRef, typ string) string { return column("v", param(ref, typ), typ) }
	sets := c.sets(vparam)
	guard := c.guard(vparam)
	var returned []string
	events := make([]string, len(c))
	for i := range c {
		vals := []string{strconv.Itoa(len(c) - 1 - i)}
		for f, t := range []string{"text", "integer", "text", "jsonb"} {
			n := param(valueRef{i, f}, t)
			returned = append(returned, "v.p"+strconv.Itoa(n)+" AS p"+strconv.Itoa(n))
			vals = append(vals, column("u", n, t))
		}
		events[i] = "(" + strings.Join(vals, ", ") + ")"
	}
	arrays := []string{"$2::text[]"}
	names := []string{"job"}
	for i, t := range st.types {
		if t == "jsonb" {
			t = "text"
		}
		arrays = append(arrays, "$"+strconv.Itoa(i+3)+"::"+t+"[]")
		names = append(names, "p"+strconv.Itoa(i+1))
	}
	st.sql = `WITH u AS (
		UPDATE jobs SET last_seq = jobs.last_seq + ` + strconv.Itoa(len(c)) + `, updated_at = $1::timestamptz, ` + strings.Join(sets, ", ") + `
		FROM unnest(` + strings.Join(arrays, ", ") + `) AS v(` + strings.Join(names, ", ") + `)
		WHERE jobs.id = v.job AND jobs.status IN (` + c[0].kind.statusList() + `)` + guard + `
		RETURNING jobs.id, jobs.last_seq, ` + strings.Join(returned, ", ") + `)
	INSERT INTO job_events (job_id, seq, kind, percent, message, data, created_at)
	SELECT u.id, u.last_seq - e.back, e.kind, e.percent, e.message, e.data, $1::timestamptz
	FROM u CROSS JOIN LATERAL (VALUES ` + strings.Join(events, ", ") + `) AS e(back, kind, percent, message, data)
	RETURNING job_id, seq`
	return st
}

// markApplied reads the RETURNING rows (job ID, sequence number) of the
// set's statement into its chains' writes: each chain applies as a whole
// or not at all, its events numbered in its order.
func (cs chainSet) markApplied(rows pgx.Rows) error {
	if len(cs) == 1 || cs[0][0].create != nil {
		return cs[0].markApplied(rows)
	}
	seqs := make(map[string][]int64, len(cs))
	for rows.Next() {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			return err
		}
		seqs[id] = append(seqs[id], seq)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, c := range cs {
		if err := c.apply(seqs[c[0].id]); err != nil {
			return err
		}
	}
	return nil
}
