package coingecko

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestRedisRateIsSharedByClients: two Clients (two worker processes) on
// one RedisRate make their calls at the rate together, not each.
func TestRedisRateIsSharedByClients(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{RatePerMinute: 600}, 1) // one call every 100ms, together
	b.cfg.Rate = NewRedisRate(b.rdb, b.prefix)
	clients := []*Client{b.newClient(t), b.newClient(t)}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for _, c := range clients {
		wg.Go(func() {
			for range 3 {
				if _, err := c.Categories(t.Context()); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Six calls at 10/s between them: five intervals. Each Client alone
	// would have taken two.
	if elapsed := time.Since(start); elapsed < 480*time.Millisecond {
		t.Errorf("6 calls from two clients sharing 600/min took %v, want at least 500ms", elapsed)
	}
	if b.gecko.hits() != 6 {
		t.Errorf("requests = %d, want 6", b.gecko.hits())
	}
}

// TestRedisRateDeadline: a wait that would outlast the context's deadline
// ends at once as that deadline, without a call.
func TestRedisRateDeadline(t *testing.T) {
	t.Parallel()
	rdb := testRedis(t)
	r := NewRedisRate(rdb, testPrefix(t, rdb))
	if err := r.Wait(t.Context(), 1); err != nil { // the first call of the minute
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := r.Wait(ctx, 1) // the next one is a minute away
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait past the deadline: %v, want DeadlineExceeded", err)
	}
	if elapsed := time.Since(start); elapsed > 100*time.Millisecond {
		t.Errorf("Wait took %v to give up on a wait it could not finish", elapsed)
	}
	if err := r.Wait(t.Context(), 0); err == nil {
		t.Errorf("Wait at 0 calls a minute: no error")
	}
}
