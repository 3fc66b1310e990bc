package sqlstore_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/tokenlysis/tokenlysis/internal/database"
	"github.com/tokenlysis/tokenlysis/internal/database/databasetest"
	"github.com/tokenlysis/tokenlysis/internal/sqlstore"
	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// announcements records what a Store announces, in order.
type announcements struct {
	mu  sync.Mutex
	evs []tokenlysis.JobEvent
}

func (a *announcements) Announce(_ context.Context, evs []tokenlysis.JobEvent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.evs = append(a.evs, evs...)
}

func (a *announcements) of(id string) []tokenlysis.JobEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []tokenlysis.JobEvent
	for _, ev := range a.evs {
		if ev.JobID == id {
			out = append(out, ev)
		}
	}
	return out
}

func TestCommittedEventsAreAnnounced(t *testing.T) {
	databasetest.ForEach(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		ann := &announcements{}
		s := sqlstore.New(db, sqlstore.Config{Announcer: ann})

		t.Run("each committed event once, in order, as the write returned it", func(t *testing.T) {
			const jobs, reports = 12, 5
			ids := make([]string, jobs)
			returned := make([][]tokenlysis.JobEvent, jobs)
			var wg sync.WaitGroup
			for i := range jobs {
				ids[i] = mustCreate(t, s, newJob("ann")).ID
				wg.Go(func() {
					var evs []tokenlysis.JobEvent
					waits := []func() (tokenlysis.JobEvent, error){s.StartAttemptAsync(ctx, ids[i])}
					for p := range reports {
						waits = append(waits, s.ProgressAsync(ctx, ids[i], tokenlysis.JobEvent{Percent: p * 20, Message: "step"}))
					}
					for _, wait := range waits {
						ev, err := wait()
						if err != nil {
							t.Error(err)
							return
						}
						evs = append(evs, ev)
					}
					ev, err := s.Succeed(ctx, ids[i], nil)
					if err != nil {
						t.Error(err)
						return
					}
					returned[i] = append(evs, ev)
				})
			}
			wg.Wait()
			for i, id := range ids {
				got := ann.of(id)
				// The "queued" event of a new job is not announced: nobody
				// can follow a job whose ID was not returned yet.
				if !slices.EqualFunc(got, returned[i], sameEvent) {
					t.Fatalf("job %d announced %+v, want what the writes returned %+v", i, got, returned[i])
				}
				if got[0].Seq != 2 || got[len(got)-1].Kind != tokenlysis.EventSucceeded {
					t.Fatalf("job %d announced seqs from %d ending with %s", i, got[0].Seq, got[len(got)-1].Kind)
				}
			}
		})

		t.Run("a refused write announces nothing", func(t *testing.T) {
			j := mustCreate(t, s, newJob("ann"))
			canceled, err := s.Cancel(ctx, j.ID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Progress(ctx, j.ID, tokenlysis.JobEvent{Percent: 50}); code(err) != tokenlysis.ECONFLICT {
				t.Fatalf("progress after cancel: %v, want conflict", err)
			}
			if _, err := s.Succeed(ctx, "no-such-job", nil); code(err) != tokenlysis.ENOTFOUND {
				t.Fatalf("succeed of a missing job: %v, want not found", err)
			}
			if got := ann.of(j.ID); len(got) != 1 || !sameEvent(got[0], canceled) {
				t.Fatalf("announced %+v, want only the cancel %+v", got, canceled)
			}
			if got := ann.of("no-such-job"); len(got) != 0 {
				t.Fatalf("announced %+v for a missing job", got)
			}
		})
	})
}

func sameEvent(a, b tokenlysis.JobEvent) bool {
	return a.JobID == b.JobID && a.Seq == b.Seq && a.Kind == b.Kind && a.Percent == b.Percent &&
		a.Message == b.Message && string(a.Data) == string(b.Data) && a.CreatedAt.Equal(b.CreatedAt)
}
