package e2e

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// outageBound is how long the API may take to notice an outage or a
// recovery (readiness), polled; each single request is bounded by
// requestTimeout on top.
const outageBound = 30 * time.Second

// runProbe submits a short probe, streams its events live from the start
// and checks that it succeeds with a gapless log.
func (s *stack) runProbe(what string) tokenlysis.Job {
	s.t.Helper()
	j := s.submitProbe(probe{Steps: 3, StepMS: 100}, nil)
	evs := s.openEvents(j.ID, "", 60*time.Second).readAll(s.t, j.ID)
	wantContiguous(s.t, what+": event stream", evs, 1, tokenlysis.EventSucceeded)
	if got := kinds(evs); got != "queued,started,progress,progress,progress,succeeded" {
		s.t.Fatalf("%s: events %s, want queued,started,progress,progress,progress,succeeded", what, got)
	}
	j = s.job(j.ID)
	if j.Status != tokenlysis.JobSucceeded {
		s.t.Fatalf("%s: job %s is %s after its stream ended", what, j.ID, j.Status)
	}
	return j
}

// wantUnavailable checks that a request answers 503 problem+json
// "unavailable" within requestTimeout (the client's bound).
func (s *stack) wantUnavailable(method, path string, body any) {
	s.t.Helper()
	r, err := s.try(method, path, body)
	if err != nil {
		s.t.Fatalf("%s %s during the outage: no answer within %v: %v", method, path, requestTimeout, err)
	}
	wantProblem(s.t, method+" "+path+" during the outage", r, http.StatusServiceUnavailable, tokenlysis.EUNAVAILABLE)
	s.t.Logf("%s %s: 503 in %v", method, path, r.Elapsed.Round(time.Millisecond))
}

// wantFailedChecks checks that a 503 from /readyz names exactly these
// dependencies as failed.
func wantFailedChecks(t *testing.T, r response, names ...string) {
	t.Helper()
	var body struct {
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatalf("/readyz body: %v: %s", err, r.Body)
	}
	got := slices.Sorted(maps.Keys(body.Checks))
	if !slices.Equal(got, names) {
		t.Fatalf("/readyz names %v as failed, want %v; body: %s", got, names, r.Body)
	}
}

// TestRedisDownGives503AndRecovers: with Redis gone, readiness and job
// submission answer 503 problem+json quickly and leave no job behind;
// with Redis back on the same port, api and worker carry on by themselves.
func TestRedisDownGives503AndRecovers(t *testing.T) {
	t.Parallel()
	start := time.Now()
	redis := startOwnRedis(t)
	s := newStack(t, stackConfig{RedisURL: redis.url()})
	baseline := s.runProbe("before the outage")

	redis.kill()
	r := s.waitReady(http.StatusServiceUnavailable, outageBound)
	wantProblem(t, "/readyz with Redis down", r, http.StatusServiceUnavailable, tokenlysis.EUNAVAILABLE)
	wantFailedChecks(t, r, "redis")
	for range 2 { // twice: the second one meets the pool after the first failure
		s.wantUnavailable("POST", "/api/jobs", submitBody{Type: "system:probe", Params: probe{Steps: 1}})
	}
	// The database is up: listing works and shows nothing new.
	if got := s.listJobIDs(""); !slices.Equal(got, []string{baseline.ID}) {
		t.Fatalf("jobs listed after failed submissions: %v, want only %s (a row was left behind)", got, baseline.ID)
	}

	redis.restart()
	s.waitReady(http.StatusOK, outageBound)
	s.runProbe("after Redis came back")
	if s.api.exited() || s.worker.exited() {
		t.Fatalf("api or worker exited during the outage (api: %v, worker: %v)", s.api.err, s.worker.err)
	}
	t.Logf("took %v", time.Since(start).Round(100*time.Millisecond))
}

// TestDatabaseDownGives503AndRecovers: with PostgreSQL stopped,
// readiness, listing and submission answer 503 problem+json quickly; once
// it is started again, api and worker carry on by themselves.
func TestDatabaseDownGives503AndRecovers(t *testing.T) {
	t.Parallel()
	start := time.Now()
	pg := startOwnPostgres(t)
	s := newStack(t, stackConfig{DatabaseURL: pg.url(), RedisDB: 9})
	s.runProbe("before the outage")

	pg.stopImmediate()
	r := s.waitReady(http.StatusServiceUnavailable, outageBound)
	wantProblem(t, "/readyz with PostgreSQL down", r, http.StatusServiceUnavailable, tokenlysis.EUNAVAILABLE)
	wantFailedChecks(t, r, "database")
	for range 2 {
		s.wantUnavailable("GET", "/api/jobs", nil)
		s.wantUnavailable("POST", "/api/jobs", submitBody{Type: "system:probe", Params: probe{Steps: 1}})
	}

	pg.start()
	s.waitReady(http.StatusOK, outageBound)
	if got := s.listJobIDs(""); len(got) != 1 {
		t.Fatalf("jobs after the outage: %v, want the one from before", got)
	}
	s.runProbe("after PostgreSQL came back")
	if s.api.exited() || s.worker.exited() {
		t.Fatalf("api or worker exited during the outage (api: %v, worker: %v)", s.api.err, s.worker.err)
	}
	t.Logf("took %v", time.Since(start).Round(100*time.Millisecond))
}

// TestEventStreamCarriesOnThroughARedisOutage: a client following a job's
// events while Redis goes away and comes back loses nothing. The job goes
// on meanwhile (its progress is written to SQL; only the notifications
// are lost), and once the API's pub/sub connection is back the stream
// catches up from SQL and goes on to the terminal event, in order, with
// no gap and no duplicate, on the same connection.
func TestEventStreamCarriesOnThroughARedisOutage(t *testing.T) {
	t.Parallel()
	redis := startOwnRedis(t)
	s := newStack(t, stackConfig{RedisURL: redis.url()})
	const steps = 12
	j := s.submitProbe(probe{Steps: steps, StepMS: 500}, nil) // 6 s
	stream := s.openEvents(j.ID, "", 3*time.Minute)
	before, ended := stream.readUntil(t, j.ID, func(ev jobEvent) bool { return ev.Kind == tokenlysis.EventProgress })
	if ended {
		t.Fatalf("stream ended before the first progress event: %s", kinds(before))
	}

	redis.kill()
	// The job goes on in SQL (the database is up): let it write a few
	// events nobody is notified of, which the stream must catch up on.
	sent := before[len(before)-1].Seq
	during := s.waitJob(j.ID, "three events written with Redis down", 30*time.Second, func(j tokenlysis.Job) bool {
		return j.LastSeq >= sent+3
	})
	redis.restart()

	after := stream.readAll(t, j.ID)
	evs := append(before, after...)
	wantContiguous(t, "stream across the outage", evs, 1, tokenlysis.EventSucceeded)
	if n := count(evs, tokenlysis.EventSucceeded); n != 1 {
		t.Fatalf("%d succeeded events, want 1 (%s)", n, kinds(evs))
	}
	final := s.job(j.ID)
	if final.Status != tokenlysis.JobSucceeded || evs[len(evs)-1].Seq != final.LastSeq {
		t.Fatalf("job %s, last event id %d; stream ended at %d", final.Status, final.LastSeq, evs[len(evs)-1].Seq)
	}
	t.Logf("%d events across the outage (%d before it; the job was at event %d when Redis came back): %s",
		len(evs), len(before), during.LastSeq, kinds(evs))
}

// TestJobRunningThroughADatabaseOutageEnds: PostgreSQL dies (immediate
// shutdown, as a crash) for a few seconds while a job runs and a client
// follows its events. The job is neither lost nor left running: once the
// database is back it is retried and succeeds. The stream stays open
// meanwhile and carries the events to the terminal one in order, without
// a gap or a duplicate, and every event it carried is the one the
// database keeps under that id: a replay from the start gives the same
// events. (Progress used to be committed without waiting for the WAL
// flush: the crash lost the progress event a client had been sent, and
// its number went to the next attempt's "started".)
func TestJobRunningThroughADatabaseOutageEnds(t *testing.T) {
	t.Parallel()
	pg := startOwnPostgres(t)
	s := newStack(t, stackConfig{DatabaseURL: pg.url(), RedisDB: 8, Env: map[string]string{"TOKENLYSIS_RETRY_BASE_DELAY": "1s"}})
	const steps = 12
	j := s.submitProbe(probe{Steps: steps, StepMS: 500}, nil)
	stream := s.openEvents(j.ID, "", 4*time.Minute)
	before, ended := stream.readUntil(t, j.ID, func(ev jobEvent) bool { return ev.Kind == tokenlysis.EventProgress })
	if ended {
		t.Fatalf("stream ended before the first progress event: %s", kinds(before))
	}

	pg.stopImmediate() // right after a progress event went out
	time.Sleep(3 * time.Second)
	pg.start()

	after := stream.readAll(t, j.ID)
	live := append(before, after...)
	final := s.waitFinished(j.ID, 3*time.Minute)
	t.Logf("job %s after %d attempts; %d events live: %s", final.Status, final.Attempts, len(live), kinds(live))
	if final.Status != tokenlysis.JobSucceeded {
		t.Fatalf("job ended %s (%q), want succeeded: a few seconds of outage fit in its retries", final.Status, final.Error)
	}
	wantContiguous(t, "stream across the outage", live, 1, tokenlysis.EventSucceeded)
	replay := s.openEvents(j.ID, "", 30*time.Second).readAll(t, j.ID)
	wantSameEvents(t, "events sent live against the database's", live, replay)
	if n := count(replay, tokenlysis.EventStarted); n != final.Attempts {
		t.Fatalf("%d started events for %d attempts (%s)", n, final.Attempts, kinds(replay))
	}
}

// TestQueuedJobsSurviveARedisThatForgets: Redis restarts without
// persistence (as the one on this machine keeps nothing on disk) while
// jobs wait in the queue, and their tasks are gone with it. SQL is the
// record: the worker's reconciler finds the unfinished jobs without a task
// and enqueues them again, and each ends succeeded once.
func TestQueuedJobsSurviveARedisThatForgets(t *testing.T) {
	t.Parallel()
	redis := startOwnRedis(t)
	s := newStack(t, stackConfig{RedisURL: redis.url(), Env: map[string]string{
		"TOKENLYSIS_RECONCILE_GRACE": "2s", "TOKENLYSIS_RECONCILE_INTERVAL": "1s",
	}})
	s.worker.kill(t) // nothing takes the tasks before Redis forgets them
	var jobs []tokenlysis.Job
	for range 3 {
		jobs = append(jobs, s.submitProbe(probe{Steps: 2, StepMS: 10}, nil))
	}
	redis.kill()
	redis.restart() // empty: the three tasks are gone
	s.waitReady(http.StatusOK, outageBound)
	s.startWorker()
	for _, j := range jobs {
		final := s.waitFinished(j.ID, 60*time.Second)
		if final.Status != tokenlysis.JobSucceeded || final.Attempts != 1 {
			t.Fatalf("job %s: %s after %d attempts (%q); want succeeded once", j.ID, final.Status, final.Attempts, final.Error)
		}
		evs := s.openEvents(j.ID, "", 10*time.Second).readAll(t, j.ID)
		wantContiguous(t, "event log of a re-enqueued job", evs, 1, tokenlysis.EventSucceeded)
		if n := count(evs, tokenlysis.EventSucceeded); n != 1 {
			t.Fatalf("%d succeeded events, want 1 (%s)", n, kinds(evs))
		}
	}
}
