package e2e

import (
	"encoding/json"
	"syscall"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// recoveryBound is how long a job of a SIGKILLed worker may take to run
// again. asynq v0.26 leases an active task for 30 s (extended while the
// worker lives), and its recoverer, which runs when a server starts and
// then every minute, only takes tasks whose lease ended more than 30 s
// ago: a crashed worker's job restarts about 60 s, at worst about 120 s,
// after the crash.
const recoveryBound = 150 * time.Second

// TestWorkerKilledMidJobIsPickedUpAgain: a worker SIGKILLed in the middle
// of a job loses nothing: a new worker runs the job again and it ends
// succeeded exactly once, with a gapless event log.
func TestWorkerKilledMidJobIsPickedUpAgain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		dialect database.Dialect
		redisDB int
	}{
		{database.SQLite, 6},
		{database.Postgres, 7},
	} {
		t.Run(string(tc.dialect), func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			s := newStack(t, stackConfig{Dialect: tc.dialect, RedisDB: tc.redisDB})
			const steps = 6
			j := s.submitProbe(probe{Steps: steps, StepMS: 500}, nil)
			s.waitJob(j.ID, "running with progress", 30*time.Second, func(j tokenlysis.Job) bool {
				return j.Status == tokenlysis.JobRunning && j.Percent > 0
			})

			old := s.worker
			old.kill(t)
			killedAt := time.Now()
			before := s.job(j.ID)
			if before.Status != tokenlysis.JobRunning || before.Percent == 100 {
				t.Fatalf("job after the kill: status %s, percent %d; want running, unfinished (kill too late to test anything)", before.Status, before.Percent)
			}
			s.startWorker()

			again := s.waitJob(j.ID, "restarted by the new worker", recoveryBound, func(j tokenlysis.Job) bool { return j.Attempts >= 2 || j.Status.Terminal() })
			restartedAfter := time.Since(killedAt)
			final := s.waitFinished(j.ID, 60*time.Second)
			t.Logf("%s: job restarted %v after the kill (attempt %d), finished %v after it",
				tc.dialect, restartedAfter.Round(100*time.Millisecond), again.Attempts, time.Since(killedAt).Round(100*time.Millisecond))
			if restartedAfter > 90*time.Second {
				t.Logf("NOTE: recovery took more than 90 s (asynq's recoverer runs every minute and waits for the lease to be 30 s stale)")
			}

			if final.Status != tokenlysis.JobSucceeded || final.Attempts < 2 {
				t.Fatalf("job: status %s, attempts %d, error %q; want succeeded after at least 2 attempts", final.Status, final.Attempts, final.Error)
			}
			var result struct{ Steps int }
			if err := json.Unmarshal(final.Result, &result); err != nil || result.Steps != steps {
				t.Fatalf("job result %s, want {\"steps\":%d}", final.Result, steps)
			}

			evs := s.openEvents(j.ID, "", 30*time.Second).readAll(t, j.ID)
			wantContiguous(t, "event log", evs, 1, tokenlysis.EventSucceeded)
			if n := count(evs, tokenlysis.EventSucceeded); n != 1 {
				t.Fatalf("%d succeeded events, want exactly 1 (%s)", n, kinds(evs))
			}
			if n := count(evs, tokenlysis.EventStarted); n != final.Attempts || n < 2 {
				t.Fatalf("%d started events for %d attempts, want one per attempt and at least 2 (%s)", n, final.Attempts, kinds(evs))
			}
			for _, k := range []tokenlysis.EventKind{tokenlysis.EventFailed, tokenlysis.EventCanceled} {
				if n := count(evs, k); n != 0 {
					t.Fatalf("%d %s events, want none (%s)", n, k, kinds(evs))
				}
			}
			if last := evs[len(evs)-1]; int64(len(evs)) != final.LastSeq || string(last.Data) != string(final.Result) {
				t.Fatalf("last event %+v; job last_event_id %d, result %s", last.Raw, final.LastSeq, final.Result)
			}
			// The last attempt ran every step: its progress events follow its start.
			lastStart := 0
			for i, ev := range evs {
				if ev.Kind == tokenlysis.EventStarted {
					lastStart = i
				}
			}
			if n := count(evs[lastStart:], tokenlysis.EventProgress); n != steps {
				t.Fatalf("last attempt reported %d progress events, want %d (%s)", n, steps, kinds(evs))
			}
			t.Logf("%s: %d events (%s); test took %v", tc.dialect, len(evs), kinds(evs), time.Since(start).Round(100*time.Millisecond))
		})
	}
}

// TestWorkerStoppedMidJobHandsItOn: a worker told to stop (SIGTERM, as
// start.sh, systemd or Kubernetes do) while a job runs longer than its
// shutdown timeout exits within that timeout, and the job is not lost nor
// failed: asynq puts its task back at once (no lease to wait out), a new
// worker runs it again, and it ends succeeded exactly once with a gapless
// event log.
func TestWorkerStoppedMidJobHandsItOn(t *testing.T) {
	t.Parallel()
	const shutdown = 2 * time.Second // stackConfig's TOKENLYSIS_SHUTDOWN_TIMEOUT
	s := newStack(t, stackConfig{Dialect: database.SQLite, RedisDB: 9})
	const steps = 8
	j := s.submitProbe(probe{Steps: steps, StepMS: 500}, nil) // 4 s: outlives the shutdown timeout
	s.waitJob(j.ID, "running with progress", 30*time.Second, func(j tokenlysis.Job) bool {
		return j.Status == tokenlysis.JobRunning && j.Percent > 0
	})

	old := s.worker
	stoppedAt := time.Now()
	old.signal(t, syscall.SIGTERM)
	select {
	case <-old.done:
	case <-time.After(shutdown + 10*time.Second):
		t.Fatalf("worker still running %v after SIGTERM (shutdown timeout %v)", time.Since(stoppedAt).Round(time.Millisecond), shutdown)
	}
	t.Logf("worker exited %v after SIGTERM: %v", time.Since(stoppedAt).Round(10*time.Millisecond), old.err)
	if old.err != nil {
		t.Fatalf("worker exit after SIGTERM: %v, want a clean exit", old.err)
	}
	if before := s.job(j.ID); before.Status.Terminal() {
		t.Fatalf("job after the stop: status %s; want it unfinished (the stop came too late to test anything)", before.Status)
	}

	s.startWorker()
	final := s.waitFinished(j.ID, 60*time.Second)
	t.Logf("job finished %v after the stop, attempts %d", time.Since(stoppedAt).Round(100*time.Millisecond), final.Attempts)
	if final.Status != tokenlysis.JobSucceeded || final.Attempts < 2 || final.Error != "" {
		t.Fatalf("job: status %s, attempts %d, error %q; want succeeded after at least 2 attempts, no error", final.Status, final.Attempts, final.Error)
	}
	evs := s.openEvents(j.ID, "", 30*time.Second).readAll(t, j.ID)
	wantContiguous(t, "event log", evs, 1, tokenlysis.EventSucceeded)
	if n := count(evs, tokenlysis.EventSucceeded); n != 1 {
		t.Fatalf("%d succeeded events, want exactly 1 (%s)", n, kinds(evs))
	}
	for _, k := range []tokenlysis.EventKind{tokenlysis.EventFailed, tokenlysis.EventCanceled} {
		if n := count(evs, k); n != 0 {
			t.Fatalf("%d %s events, want none (%s)", n, k, kinds(evs))
		}
	}
	if n := count(evs, tokenlysis.EventStarted); n != final.Attempts {
		t.Fatalf("%d started events for %d attempts (%s)", n, final.Attempts, kinds(evs))
	}
	t.Logf("%d events: %s", len(evs), kinds(evs))
}
