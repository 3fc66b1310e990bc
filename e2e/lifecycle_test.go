package e2e

import (
	"errors"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/tokenlysis/tokenlysis/internal/database/databasetest"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// quietWindow is how long a finished job is watched for changes that must
// not happen (a retry, a late event), after its task has left asynq: 20
// times the retry base delay the stacks run with.
const quietWindow = 2 * time.Second

// waitTaskGone waits until asynq holds no task for the job in any state
// (pending, active, scheduled, retry, archived): nothing can run it again.
func (s *stack) waitTaskGone(j tokenlysis.Job, timeout time.Duration) {
	s.t.Helper()
	opt, err := asynq.ParseRedisURI(s.redisURL)
	if err != nil {
		s.t.Fatal(err)
	}
	insp := asynq.NewInspector(opt)
	defer insp.Close()
	deadline := time.Now().Add(timeout)
	for {
		info, err := insp.GetTaskInfo(j.Queue, j.ID)
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			return
		}
		if time.Now().After(deadline) {
			state := "?"
			if info != nil {
				state = info.State.String()
			}
			s.t.Fatalf("job %s: asynq still holds its task (state %s, err %v) %v later", j.ID, state, err, timeout)
		}
		time.Sleep(pollEvery)
	}
}

// wantUnchanged watches a finished job for quietWindow and fails if its
// status, attempts or event log move.
func (s *stack) wantUnchanged(j tokenlysis.Job) {
	s.t.Helper()
	end := time.Now().Add(quietWindow)
	for time.Now().Before(end) {
		got := s.job(j.ID)
		if got.Status != j.Status || got.Attempts != j.Attempts || got.LastSeq != j.LastSeq {
			s.t.Fatalf("job %s moved after it ended: status %s→%s, attempts %d→%d, last event %d→%d",
				j.ID, j.Status, got.Status, j.Attempts, got.Attempts, j.LastSeq, got.LastSeq)
		}
		time.Sleep(pollEvery)
	}
}

// TestCancelRunningJob: canceling a running job ends it canceled at once,
// its stream ends with "canceled", and nothing runs it again; a second
// cancel is a conflict; a canceled job can be retried under the same ID
// and then succeeds. Both engines: these are state transitions in SQL.
func TestCancelRunningJob(t *testing.T) {
	t.Parallel()
	for _, d := range databasetest.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			start := time.Now()
			s := newStack(t, stackConfig{Dialect: d, RedisDB: 8})

			long := s.submitProbe(probe{Steps: 100, StepMS: 100}, nil)
			s.waitJob(long.ID, "running with progress", 30*time.Second, func(j tokenlysis.Job) bool {
				return j.Status == tokenlysis.JobRunning && j.Percent > 0
			})
			// The stream is open, live, when the cancel comes: it must end
			// by itself with the canceled event (else it would run for 10 s
			// more and end with succeeded).
			stream := s.openEvents(long.ID, "", 30*time.Second)
			r := s.do("POST", "/api/jobs/"+long.ID+"/cancel", nil)
			if r.Status != http.StatusOK {
				t.Fatalf("cancel a running job: status %d, want 200; body: %s", r.Status, r.Body)
			}
			if j := decodeJob(t, "cancel", r.Body); j.Status != tokenlysis.JobCanceled || j.FinishedAt == nil {
				t.Fatalf("cancel answered status %s, finished_at %v; want canceled with a finish time", j.Status, j.FinishedAt)
			}

			evs := stream.readAll(t, long.ID)
			wantContiguous(t, "canceled job's stream", evs, 1, tokenlysis.EventCanceled)
			for _, k := range []tokenlysis.EventKind{tokenlysis.EventRetrying, tokenlysis.EventSucceeded, tokenlysis.EventFailed} {
				if n := count(evs, k); n != 0 {
					t.Fatalf("canceled job has %d %s events (%s)", n, k, kinds(evs))
				}
			}
			if n := count(evs, tokenlysis.EventStarted); n != 1 {
				t.Fatalf("canceled job has %d started events, want 1 (%s)", n, kinds(evs))
			}

			s.waitTaskGone(long, 30*time.Second)
			canceled := s.job(long.ID)
			if canceled.Status != tokenlysis.JobCanceled || canceled.LastSeq != evs[len(evs)-1].Seq || canceled.Attempts != 1 {
				t.Fatalf("job once its task is gone: status %s, attempts %d, last event %d; want canceled, 1, %d (an event after the cancel?)",
					canceled.Status, canceled.Attempts, canceled.LastSeq, evs[len(evs)-1].Seq)
			}
			s.wantUnchanged(canceled)

			r = s.do("POST", "/api/jobs/"+long.ID+"/cancel", nil)
			wantProblem(t, "cancel a canceled job", r, http.StatusConflict, tokenlysis.ECONFLICT)

			// Retry: a short probe, canceled while running, then retried
			// once its canceled attempt is over (TestRetryRightAfterCancel
			// covers a retry that comes sooner).
			short := s.submitProbe(probe{Steps: 2, StepMS: 1000}, nil)
			s.waitJob(short.ID, "running", 30*time.Second, func(j tokenlysis.Job) bool { return j.Status == tokenlysis.JobRunning })
			if r := s.do("POST", "/api/jobs/"+short.ID+"/cancel", nil); r.Status != http.StatusOK {
				t.Fatalf("cancel the short probe: status %d; body: %s", r.Status, r.Body)
			}
			s.waitTaskGone(short, 30*time.Second)
			r = s.do("POST", "/api/jobs/"+short.ID+"/retry", nil)
			if r.Status != http.StatusAccepted {
				t.Fatalf("retry a canceled job: status %d, want 202; body: %s", r.Status, r.Body)
			}
			if j := decodeJob(t, "retry", r.Body); j.ID != short.ID || r.Header.Get("Location") != "/api/jobs/"+short.ID {
				t.Fatalf("retry answered id %s, Location %q; want the same id %s", j.ID, r.Header.Get("Location"), short.ID)
			}
			done := s.waitFinished(short.ID, 60*time.Second)
			if done.Status != tokenlysis.JobSucceeded {
				t.Fatalf("retried job ended %s (error %q), want succeeded", done.Status, done.Error)
			}
			evs = s.openEvents(short.ID, "", 30*time.Second).readAll(t, short.ID)
			wantContiguous(t, "retried job's stream", evs, 1, tokenlysis.EventSucceeded)
			got := kinds(evs)
			if count(evs, tokenlysis.EventCanceled) != 1 || count(evs, tokenlysis.EventSucceeded) != 1 ||
				!strings.HasPrefix(got, "queued,started,") || !strings.Contains(got, ",canceled,queued,started,") ||
				count(evs, tokenlysis.EventFailed) != 0 {
				t.Fatalf("retried job's events %s, want queued,started,…,canceled,queued,started,…,succeeded", got)
			}
			s.waitTaskGone(done, 30*time.Second)
			s.wantUnchanged(s.job(short.ID))
			t.Logf("%s: took %v", d, time.Since(start).Round(100*time.Millisecond))
		})
	}
}

// TestRetryRightAfterCancel: a retry that comes while the canceled
// attempt is still winding down on the worker (here the worker is stalled
// with SIGSTOP, as a long GC pause or a starved CPU would) is either
// accepted or refused as a conflict to try again; it is never a 503
// "queue unavailable", it never ends the job failed, and the canceled
// attempt leaves no trace (no "retrying") in the new run.
func TestRetryRightAfterCancel(t *testing.T) {
	t.Parallel()
	start := time.Now()
	s := newStack(t, stackConfig{RedisDB: 8})
	j := s.submitProbe(probe{Steps: 2, StepMS: 1000}, nil)
	s.waitJob(j.ID, "running", 30*time.Second, func(j tokenlysis.Job) bool { return j.Status == tokenlysis.JobRunning })

	s.worker.signal(t, syscall.SIGSTOP)
	stalled := true
	defer func() {
		if stalled {
			s.worker.signal(t, syscall.SIGCONT)
		}
	}()
	if r := s.do("POST", "/api/jobs/"+j.ID+"/cancel", nil); r.Status != http.StatusOK {
		t.Fatalf("cancel: status %d; body: %s", r.Status, r.Body)
	}
	r := s.do("POST", "/api/jobs/"+j.ID+"/retry", nil)
	if r.Status != http.StatusAccepted && r.Status != http.StatusConflict {
		after := s.job(j.ID)
		t.Fatalf("retry while the canceled attempt is still active on the worker: status %d, body %s; "+
			"the job is now %s (error %q). Want 202, or 409 to retry later. "+
			"Product bug (internal/job/service.go Retry): DeleteTask cannot delete the still-active task, the "+
			"enqueue under the same ID then fails with asynq.ErrTaskIDConflict, enqueue() reports every error as "+
			"EUNAVAILABLE (503) and Retry marks the job failed %q",
			r.Status, r.Body, after.Status, after.Error, "retry could not be enqueued")
	}
	if r.Status == http.StatusConflict {
		wantProblem(t, "retry while the canceled attempt is still active", r, http.StatusConflict, tokenlysis.ECONFLICT)
	}
	s.worker.signal(t, syscall.SIGCONT)
	stalled = false
	deadline := time.Now().Add(30 * time.Second)
	for r.Status == http.StatusConflict {
		if time.Now().After(deadline) {
			t.Fatalf("retry still refused 30 s after the worker resumed: %s", r.Body)
		}
		time.Sleep(pollEvery)
		r = s.do("POST", "/api/jobs/"+j.ID+"/retry", nil)
		if r.Status != http.StatusAccepted && r.Status != http.StatusConflict {
			t.Fatalf("retry after the worker resumed: status %d, want 202 or 409; body: %s", r.Status, r.Body)
		}
	}

	done := s.waitFinished(j.ID, 60*time.Second)
	evs := s.openEvents(j.ID, "", 30*time.Second).readAll(t, j.ID)
	wantContiguous(t, "retried job's stream", evs, 1, tokenlysis.EventKind(done.Status))
	requeued := -1
	for i, ev := range evs {
		if ev.Kind == tokenlysis.EventQueued && i > 0 {
			requeued = i
		}
	}
	if requeued < 0 || done.Status != tokenlysis.JobSucceeded || kinds(evs[requeued:]) != "queued,started,progress,progress,succeeded" {
		t.Fatalf("job ended %s (error %q) with events %s; want the run after the retry to be exactly "+
			"queued,started,progress,progress,succeeded. A \"retrying\" after the requeue is a product bug "+
			"(internal/job/runner.go Middleware): the canceled attempt decides it was canceled by reading the job's "+
			"current status, which the retry has already set back to queued, so it records Retrying and asks asynq to retry it",
			done.Status, done.Error, kinds(evs))
	}
	t.Logf("took %v", time.Since(start).Round(100*time.Millisecond))
}

// TestFailingProbeEndsFailedAfterRetries: a job that fails on every
// attempt is retried max_retry times, then ends failed with its error.
func TestFailingProbeEndsFailedAfterRetries(t *testing.T) {
	t.Parallel()
	start := time.Now()
	s := newStack(t, stackConfig{RedisDB: 8, Env: map[string]string{"TOKENLYSIS_RETRY_BASE_DELAY": "100ms"}})
	j := s.submitProbe(probe{Steps: 3, StepMS: 0, FailAt: ptr(2)}, ptr(2))
	if j.MaxRetry != 2 {
		t.Fatalf("submitted job has max_retry %d, want 2", j.MaxRetry)
	}
	evs := s.openEvents(j.ID, "", 90*time.Second).readAll(t, j.ID)
	wantContiguous(t, "failing job's stream", evs, 1, tokenlysis.EventFailed)
	const want = "queued," +
		"started,progress,retrying," +
		"started,progress,retrying," +
		"started,progress,failed"
	if got := kinds(evs); got != want {
		t.Fatalf("events %s, want %s", got, want)
	}
	for _, ev := range evs {
		if (ev.Kind == tokenlysis.EventRetrying || ev.Kind == tokenlysis.EventFailed) && !strings.Contains(ev.Message, "step 2") {
			t.Fatalf("%s event message %q does not name step 2", ev.Kind, ev.Message)
		}
	}
	f := s.job(j.ID)
	if f.Status != tokenlysis.JobFailed || f.Attempts != 3 || !strings.Contains(f.Error, "step 2") || f.Result != nil && string(f.Result) != "null" {
		t.Fatalf("job: status %s, attempts %d, error %q, result %s; want failed, 3, an error naming step 2, no result",
			f.Status, f.Attempts, f.Error, f.Result)
	}
	s.wantUnchanged(f)
	t.Logf("took %v", time.Since(start).Round(100*time.Millisecond))
}
