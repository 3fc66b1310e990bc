package sqlstore

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/database/databasetest"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// w and create are writes of the given job for the chain tests.
func w(id string, k *transitionKind) *jobWrite { return &jobWrite{id: id, kind: k} }
func run(w *jobWrite, token string) *jobWrite  { w.run = token; return w }
func create(id string) *jobWrite               { return &jobWrite{create: &tokenlysis.Job{ID: id}} }

func TestChains(t *testing.T) {
	// show writes each chain as "job:kind+kind".
	show := func(cs []chain) string {
		var out []string
		for _, c := range cs {
			names := make([]string, len(c))
			for i, w := range c {
				if w.create != nil {
					names[i] = "create"
				} else {
					names[i] = w.kind.name
				}
			}
			out = append(out, c[0].jobID()+":"+strings.Join(names, "+"))
		}
		return strings.Join(out, " ")
	}
	long := []*jobWrite{w("a", kindStart)}
	for range maxChain + 1 {
		long = append(long, w("a", kindProgress))
	}
	for _, tc := range []struct {
		name string
		ws   []*jobWrite
		want string
	}{
		{"a job's start, progress and success merge, across another job's writes",
			[]*jobWrite{w("a", kindStart), w("b", kindProgress), w("a", kindProgress), w("a", kindSucceed)},
			"a:start+progress+succeed b:progress"},
		{"nothing merges after the end of a job",
			[]*jobWrite{w("a", kindProgress), w("a", kindSucceed), w("a", kindProgress)},
			"a:progress+succeed a:progress"},
		{"a kind that reads the row starts its own statement",
			[]*jobWrite{w("a", kindRequeue), w("a", kindStart), w("a", kindProgress)},
			"a:requeue a:start+progress"},
		{"a kind whose starting status is not left by the chain starts its own",
			[]*jobWrite{w("a", kindRetrying), w("a", kindProgress), w("a", kindCancel), w("a", kindFail)},
			"a:retrying a:progress a:cancel a:fail"}, // progress is guarded (its run), cancel is no attempt's: apart
		{"a write that applies where the first one does not starts its own",
			[]*jobWrite{w("a", kindRequeue), w("a", kindCancel), w("b", kindStart), w("b", kindRetrying), w("b", kindStart)},
			"a:requeue a:cancel b:start+retrying b:start"},
		{"writes of two attempts do not merge, nor guarded writes with others",
			[]*jobWrite{run(w("a", kindStart), "T1"), run(w("a", kindProgress), "T1"), run(w("a", kindProgress), "T2"), run(w("a", kindSucceed), "T2"), w("a", kindCancel)},
			"a:start+progress a:progress+succeed a:cancel"},
		{"a write joins only the job's latest statement",
			[]*jobWrite{w("a", kindStart), w("a", kindRequeue), w("a", kindProgress)},
			"a:start a:requeue a:progress"},
		{"new jobs go together, where the first is",
			[]*jobWrite{w("c", kindStart), create("a"), w("c", kindProgress), create("b"), w("d", kindCancel)},
			"c:start+progress a:create+create d:cancel"},
		{"chains are bounded", long,
			"a:start" + strings.Repeat("+progress", maxChain-1) + " a:progress+progress"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := show(chains(tc.ws)); got != tc.want {
				t.Fatalf("chains = %s\nwant     %s", got, tc.want)
			}
		})
	}
}

func TestChainSQL(t *testing.T) {
	c := chain{
		{id: "a", kind: kindStart, ev: tokenlysis.JobEvent{Kind: tokenlysis.EventStarted}},
		{id: "a", kind: kindProgress, args: []any{40, "almost"}, ev: tokenlysis.JobEvent{Kind: tokenlysis.EventProgress, Percent: 40, Message: "almost"}},
		{id: "a", kind: kindSucceed, args: []any{json.RawMessage(`{"n":1}`)}, ev: tokenlysis.JobEvent{Kind: tokenlysis.EventSucceeded, Percent: 100}},
	}
	q, args := c.statement(time.Now())
	for _, want := range []string{
		"last_seq = jobs.last_seq + 3",
		"attempts = jobs.attempts + 1",
		"percent = 100",                                    // the success's, not the progress's
		"run_id = $3::text",                                // the start's run token
		"message = $4::text",                               // the progress's message
		"result = $5::text::jsonb",                         // the success's result
		"jobs.status IN ('queued', 'running', 'retrying')", // where the start applies
		"(2, $6::text", "(1, $10::text", "(0, $14::text",
	} {
		if !strings.Contains(q, want) {
			t.Errorf("chain SQL lacks %q:\n%s", want, q)
		}
	}
	if n := strings.Count(q, "percent ="); n != 1 {
		t.Errorf("percent set %d times:\n%s", n, q)
	}
	// Every value sent is used (PostgreSQL cannot type an unused one).
	for i := range args {
		if !strings.Contains(q, "$"+strconv.Itoa(i+1)+"::") {
			t.Errorf("$%d is sent but not used:\n%s", i+1, q)
		}
	}
	if len(args) != 17 || args[2] != "" || args[3] != "almost" || *args[4].(*string) != `{"n":1}` || args[10] != int32(40) {
		t.Errorf("args = %v", args)
	}
	// A chain that an attempt's report begins applies only while the job
	// is that attempt's, or when the report belongs to no attempt.
	q, args = chain{{id: "a", kind: kindProgress, args: []any{40, "almost"}, run: "T1"}}.statement(time.Now())
	if !strings.Contains(q, "AND ($5::text = '' OR jobs.run_id = $5::text)") || args[4] != "T1" {
		t.Errorf("guard of a report's chain:\n%s\nargs %v", q, args)
	}
}

// TestGroupOfChains commits one crafted group, as the journal would, on
// each engine: on PostgreSQL its chains are merged statements.
func TestGroupOfChains(t *testing.T) {
	databasetest.ForEach(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s := New(db, Config{})
		ids := make([]string, 4)
		for i := range ids {
			ids[i] = uuid.Must(uuid.NewV7()).String()
			j := tokenlysis.Job{ID: ids[i], Type: "system:probe", Queue: "default", Params: json.RawMessage(`{}`), MaxRetry: 1, SubmittedBy: "alice"}
			if _, created, err := s.CreateJob(ctx, j); err != nil || !created {
				t.Fatal(created, err)
			}
		}
		a, b, canceled, d := ids[0], ids[1], ids[2], ids[3]
		if _, err := s.Cancel(ctx, canceled); err != nil {
			t.Fatal(err)
		}
		progress := func(id string, pct int, msg string) *jobWrite {
			return &jobWrite{id: id, kind: kindProgress, args: []any{pct, msg},
				ev: tokenlysis.JobEvent{Kind: tokenlysis.EventProgress, Percent: pct, Message: msg}}
		}
		start := func(id string) *jobWrite {
			return &jobWrite{id: id, kind: kindStart, ev: tokenlysis.JobEvent{Kind: tokenlysis.EventStarted, Message: "started"}}
		}
		succeed := func(id string) *jobWrite {
			return &jobWrite{id: id, kind: kindSucceed, args: []any{json.RawMessage(`{"n":1}`)},
				ev: tokenlysis.JobEvent{Kind: tokenlysis.EventSucceeded, Percent: 100, Message: "succeeded"}}
		}
		create := func(id string) *jobWrite {
			return &jobWrite{create: &tokenlysis.Job{ID: id, Type: "system:probe", Queue: "default", Params: json.RawMessage(`{}`),
				SubmittedBy: "bob", CreatedAt: time.Now().UTC()}}
		}
		fresh := uuid.Must(uuid.NewV7()).String()
		group := []*jobWrite{start(a), start(b), progress(a, 40, "almost"), create(fresh), start(canceled), succeed(a),
			progress(b, 10, "begun"), create(a), progress(canceled, 1, "no"), progress(a, 1, "late"),
			start(d), progress(d, 70, "d"), succeed(d)} // on PostgreSQL, d's chain is in a's statement, canceled's in b's

		if err := s.commitWrites(ctx, group); err != nil {
			t.Fatal(err)
		}
		wantApplied := []bool{true, true, true, true, false, true, true, false, false, false, true, true, true}
		wantSeq := []int64{2, 2, 3, 1, 0, 4, 3, 0, 0, 0, 2, 3, 4}
		for i, w := range group {
			if w.applied != wantApplied[i] || w.seq != wantSeq[i] {
				t.Errorf("write %d (of %s): applied %v seq %d, want %v %d", i, w.jobID(), w.applied, w.seq, wantApplied[i], wantSeq[i])
			}
		}
		if j, err := s.FindJob(ctx, fresh); err != nil || j.SubmittedBy != "bob" || j.Status != tokenlysis.JobQueued {
			t.Errorf("job created in the group = %+v, %v", j, err)
		}
		ja, _ := s.FindJob(ctx, a)
		jb, _ := s.FindJob(ctx, b)
		jc, _ := s.FindJob(ctx, canceled)
		if ja.Status != tokenlysis.JobSucceeded || ja.Attempts != 1 || ja.Message != "almost" || ja.Percent != 100 || ja.LastSeq != 4 || ja.StartedAt == nil {
			t.Errorf("job a = %+v", ja)
		}
		if jb.Status != tokenlysis.JobRunning || jb.Percent != 10 || jb.Message != "begun" || jb.LastSeq != 3 {
			t.Errorf("job b = %+v", jb)
		}
		if jc.Status != tokenlysis.JobCanceled || jc.Attempts != 0 || jc.LastSeq != 2 {
			t.Errorf("canceled job = %+v", jc)
		}
		if jd, _ := s.FindJob(ctx, d); jd.Status != tokenlysis.JobSucceeded || jd.Message != "d" || jd.LastSeq != 4 || string(jd.Result) != `{"n": 1}` && string(jd.Result) != `{"n":1}` {
			t.Errorf("job d = %+v", jd)
		}
		evs, _ := s.Events(ctx, a, 0, 10)
		var got []string
		for _, ev := range evs {
			got = append(got, strconv.FormatInt(ev.Seq, 10)+":"+string(ev.Kind)+":"+ev.Message)
		}
		if want := "1:queued:queued 2:started:started 3:progress:almost 4:succeeded:succeeded"; strings.Join(got, " ") != want {
			t.Errorf("events of a = %s, want %s", strings.Join(got, " "), want)
		}
	})
}

// TestGroupRequeueConflict commits a group, as the journal would, in which
// a requeue is refused because another unfinished job holds its dedupe
// key: the requeue alone fails, with ECONFLICT, and the other writes of
// the group apply.
func TestGroupRequeueConflict(t *testing.T) {
	databasetest.ForEach(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s := New(db, Config{})
		create := func(key string) tokenlysis.Job {
			t.Helper()
			j := tokenlysis.Job{ID: uuid.Must(uuid.NewV7()).String(), Type: "system:probe", Queue: "default",
				Params: json.RawMessage(`{}`), MaxRetry: 1, SubmittedBy: "alice", DedupeKey: key}
			j, created, err := s.CreateJob(ctx, j)
			if err != nil || !created {
				t.Fatal(created, err)
			}
			return j
		}
		other, refused := create(""), create("k")
		if _, err := s.Cancel(ctx, refused.ID); err != nil {
			t.Fatal(err)
		}
		holder := create("k")
		group := []*jobWrite{
			{id: other.ID, kind: kindStart, ev: tokenlysis.JobEvent{Kind: tokenlysis.EventStarted}},
			{id: refused.ID, kind: kindRequeue, ev: tokenlysis.JobEvent{Kind: tokenlysis.EventQueued}},
			{id: other.ID, kind: kindProgress, args: []any{10, "begun"}, ev: tokenlysis.JobEvent{Kind: tokenlysis.EventProgress, Percent: 10}},
		}
		s.commitGroup(ctx, group)
		for i, w := range group {
			if want := i != 1; w.applied != want || (w.err == nil) != want {
				t.Errorf("write %d (%s): applied %v, err %v; want applied %v", i, w.kind.name, w.applied, w.err, want)
			}
		}
		if got, _ := s.FindJob(ctx, other.ID); got.Status != tokenlysis.JobRunning || got.LastSeq != 3 {
			t.Errorf("other job = %+v", got)
		}
		if got, _ := s.FindJob(ctx, refused.ID); got.Status != tokenlysis.JobCanceled || got.LastSeq != 2 {
			t.Errorf("refused job = %+v", got)
		}
		if _, err := s.Requeue(ctx, refused.ID); tokenlysis.ErrorCode(err) != tokenlysis.ECONFLICT || !strings.Contains(tokenlysis.ErrorMessage(err), holder.ID) {
			t.Errorf("Requeue = %v, want a conflict naming %s", err, holder.ID)
		}
	})
}

func TestChainSets(t *testing.T) {
	// show writes each statement as "job,job:kind+kind".
	show := func(bs []chainSet) string {
		var out []string
		for _, b := range bs {
			var jobs []string
			for _, c := range b {
				for _, w := range c {
					if !slices.Contains(jobs, w.jobID()) {
						jobs = append(jobs, w.jobID())
					}
				}
			}
			out = append(out, strings.Join(jobs, ",")+":"+b[0].key())
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		name string
		ws   []*jobWrite
		want string
	}{
		{"the chains of the same kinds of other jobs are one statement",
			[]*jobWrite{w("a", kindStart), w("b", kindStart), w("a", kindSucceed), w("c", kindProgress), w("b", kindSucceed), w("d", kindStart), w("d", kindSucceed)},
			"a,b,d:start,succeed c:progress"},
		{"a job's later chain comes after its earlier one",
			[]*jobWrite{w("a", kindProgress), w("a", kindSucceed), w("b", kindProgress), w("a", kindProgress), w("c", kindProgress)},
			"a:progress,succeed b,a,c:progress"},
		{"a job's chain never joins a statement before its earlier chain",
			[]*jobWrite{w("b", kindProgress), w("a", kindRequeue), w("a", kindProgress), w("c", kindRequeue)},
			"b:progress a,c:requeue a:progress"},
		{"a job is never twice in one statement",
			[]*jobWrite{w("a", kindRequeue), w("a", kindRequeue), w("b", kindRequeue)},
			"a:requeue a,b:requeue"},
		{"new jobs stay one statement",
			[]*jobWrite{create("x"), w("a", kindProgress), create("y"), w("b", kindProgress)},
			"x,y:create a,b:progress"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := show(chainSets(chains(tc.ws))); got != tc.want {
				t.Fatalf("chain sets = %s\nwant         %s", got, tc.want)
			}
		})
	}
}

// TestChainSetSQL checks the statement of several chains of the same kinds:
// every value goes in one array per use, each job's at the same index.
func TestChainSetSQL(t *testing.T) {
	mk := func(id string, pct int, msg, result string) chain {
		return chain{
			{id: id, kind: kindStart, ev: tokenlysis.JobEvent{Kind: tokenlysis.EventStarted, Message: "started"}},
			{id: id, kind: kindProgress, args: []any{pct, msg}, ev: tokenlysis.JobEvent{Kind: tokenlysis.EventProgress, Percent: pct, Message: msg}},
			{id: id, kind: kindSucceed, args: []any{json.RawMessage(result)}, ev: tokenlysis.JobEvent{Kind: tokenlysis.EventSucceeded, Percent: 100, Data: json.RawMessage(result)}},
		}
	}
	b := chainSet{mk("a", 40, "almost", `{"n":1}`), mk("b", 60, "nearly", `{"n":2}`)}
	q, args := b.statement(time.Now())
	for _, want := range []string{
		"FROM unnest($2::text[], $3::text[]",
		"WHERE jobs.id = v.job AND jobs.status IN ('queued', 'running', 'retrying')",
		"last_seq = jobs.last_seq + 3",
		"percent = 100",
		"CROSS JOIN LATERAL (VALUES (2, u.p",
	} {
		if !strings.Contains(q, want) {
			t.Errorf("chain set SQL lacks %q:\n%s", want, q)
		}
	}
	for i := range args {
		if !strings.Contains(q, "$"+strconv.Itoa(i+1)+"::") {
			t.Errorf("$%d is sent but not used:\n%s", i+1, q)
		}
	}
	if ids, ok := args[1].([]string); !ok || len(ids) != 2 || ids[0] != "a" || ids[1] != "b" {
		t.Fatalf("ids = %#v", args[1])
	}
	var msgs, pcts, results string
	for _, a := range args[2:] {
		switch v := a.(type) {
		case []string:
			if v[0] == "almost" {
				msgs = strings.Join(v, ",")
			}
		case []int32:
			if v[0] == 40 {
				pcts = strconv.Itoa(int(v[0])) + "," + strconv.Itoa(int(v[1]))
			}
		case []*string:
			if v[0] != nil && *v[0] == `{"n":1}` && v[1] != nil {
				results = *v[0] + "," + *v[1]
			}
		}
	}
	if msgs != "almost,nearly" || pcts != "40,60" || results != `{"n":1},{"n":2}` {
		t.Fatalf("per-job values not in the jobs' order: messages %q, percents %q, results %q", msgs, pcts, results)
	}
}

// TestChainSetPlan checks the generic plan PostgreSQL keeps for an array
// statement, made on a new database whose jobs table is empty (where a
// sequential scan and a hash join look cheapest): it must look the jobs
// up by primary key, or it would scan the whole table once it has grown.
func TestChainSetPlan(t *testing.T) {
	db := databasetest.New(t, database.Postgres)
	ctx := context.Background()
	ok := func(id string) chain {
		return chain{
			{id: id, kind: kindStart, ev: tokenlysis.JobEvent{Kind: tokenlysis.EventStarted}},
			{id: id, kind: kindSucceed, args: []any{json.RawMessage(`{}`)}, ev: tokenlysis.JobEvent{Kind: tokenlysis.EventSucceeded}},
		}
	}
	q, args := chainSet{ok("a"), ok("b")}.statement(time.Now())
	vals := make([]string, len(args))
	for i := range args {
		vals[i] = "'{}'" // empty arrays
	}
	vals[0] = "now()"
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var plan []string
	for _, stmt := range []string{pgPlanSettings, "PREPARE s AS " + q} {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if err := tx.SelectContext(ctx, &plan, "EXPLAIN EXECUTE s("+strings.Join(vals, ", ")+")"); err != nil {
		t.Fatal(err)
	}
	text := strings.Join(plan, "\n")
	if !strings.Contains(text, "Index Scan using jobs_pkey on jobs") || strings.Contains(text, "Seq Scan on jobs") {
		t.Fatalf("generic plan of the array statement does not look jobs up by primary key:\n%s", text)
	}
}

// TestWorkerGroupUpdatesStayOnTheirPages: a worker's group updates each of
// its jobs' rows once, in one transaction, and the jobs of a group were
// mostly created one after the other, so their rows share pages. The old
// versions are not dead until that transaction commits, so each updated
// row needs room on its page beside them: without it PostgreSQL puts it on
// another page, and a non-HOT update adds an entry to every index of jobs.
// Here every row of a page is updated in the same transaction, the worst
// case (a worker's group of twenty holds some of a page's rows): with
// fillfactor 80, 51 of 64 rows moved; with 004_jobs_fillfactor's 50, 12.
func TestWorkerGroupUpdatesStayOnTheirPages(t *testing.T) {
	db := databasetest.New(t, database.Postgres)
	s := New(db, Config{AsyncLinger: 200 * time.Millisecond, AsyncLingerIdle: 200 * time.Millisecond})
	ctx := context.Background()
	const n = 64
	ids := make([]string, n)
	for i := range ids {
		j, created, err := s.CreateJob(ctx, tokenlysis.Job{
			ID: uuid.Must(uuid.NewV7()).String(), Type: "system:probe", Queue: "default",
			Params: json.RawMessage(`{"steps":1,"step_ms":0}`), MaxRetry: 3, SubmittedBy: "bench",
		})
		if err != nil || !created {
			t.Fatalf("CreateJob: created=%v err=%v", created, err)
		}
		ids[i] = j.ID
	}
	pages := func() map[string]string {
		var rows []struct{ ID, Page string }
		if err := db.SelectContext(ctx, &rows, `SELECT id, (ctid::text::point)[0]::text AS page FROM jobs`); err != nil {
			t.Fatal(err)
		}
		m := make(map[string]string, len(rows))
		for _, r := range rows {
			m[r.ID] = r.Page
		}
		return m
	}
	before := pages()
	stats := s.JobWriteStats()
	var waits []func() (tokenlysis.JobEvent, error)
	for _, id := range ids {
		waits = append(waits, s.StartAttemptAsync(ctx, id),
			s.ProgressAsync(ctx, id, tokenlysis.JobEvent{Percent: 100, Message: "step 1 of 1", Data: json.RawMessage(`{"step":1}`)}),
			s.SucceedAsync(ctx, id, json.RawMessage(`{"steps":1}`), nil))
	}
	for _, wait := range waits {
		if _, err := wait(); err != nil {
			t.Fatal(err)
		}
	}
	if after := s.JobWriteStats(); after.Commits-stats.Commits != 1 {
		t.Fatalf("%d commits, want the %d writes in one", after.Commits-stats.Commits, 3*n)
	}
	moved := 0
	for id, page := range pages() {
		if before[id] != page {
			moved++
		}
	}
	if moved > n/4 {
		t.Errorf("%d of %d updated job rows moved to another page (not HOT updates), want at most %d", moved, n, n/4)
	}
}
