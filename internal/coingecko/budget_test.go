package coingecko

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

func TestRedisBudgetSpend(t *testing.T) {
	t.Parallel()
	rdb := testRedis(t)
	prefix := testPrefix(t, rdb)
	budget := NewRedisBudget(rdb, prefix)
	ctx := t.Context()
	steps := []struct {
		month    string
		n, limit int
		wantOK   bool
		wantUsed int
	}{
		{"2026-11", 5, 10, true, 5},
		{"2026-11", 3, 10, true, 8},
		{"2026-11", 5, 10, false, 8}, // refused: does not count
		{"2026-11", 2, 10, true, 10},
		{"2026-11", 1, 10, false, 10},
		{"2026-12", 1, 10, true, 1},  // a new month starts from zero
		{"2026-11", 1, 12, true, 11}, // a raised limit lets more through
	}
	for i, s := range steps {
		ok, used, err := budget.Spend(ctx, s.month, s.n, s.limit)
		if err != nil {
			t.Fatalf("step %d: Spend: %v", i, err)
		}
		if ok != s.wantOK || used != s.wantUsed {
			t.Errorf("step %d: Spend(%s, %d, %d) = %v, %d; want %v, %d", i, s.month, s.n, s.limit, ok, used, s.wantOK, s.wantUsed)
		}
	}
	if v, err := rdb.Get(ctx, prefix+"coingecko:budget:2026-11").Int(); err != nil || v != 11 {
		t.Errorf("key %scoingecko:budget:2026-11 = %v (%v), want 11", prefix, v, err)
	}
	// The count outlives the month by one more month, then expires.
	exp, err := rdb.ExpireTime(ctx, prefix+"coingecko:budget:2026-11").Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC); time.Unix(int64(exp/time.Second), 0).UTC() != want {
		t.Errorf("expire time = %v, want %v", time.Unix(int64(exp/time.Second), 0).UTC(), want)
	}
}

func TestRedisBudgetArguments(t *testing.T) {
	t.Parallel()
	rdb := testRedis(t)
	budget := NewRedisBudget(rdb, testPrefix(t, rdb))
	for _, tt := range []struct {
		month    string
		n, limit int
	}{{"2026-13", 1, 10}, {"November", 1, 10}, {"2026-11", 0, 10}, {"2026-11", 1, -1}} {
		if _, _, err := budget.Spend(t.Context(), tt.month, tt.n, tt.limit); tokenlysis.ErrorCode(err) != tokenlysis.EINVALID {
			t.Errorf("Spend(%q, %d, %d): err = %v, want invalid", tt.month, tt.n, tt.limit, err)
		}
	}
}

func TestRedisBudgetConcurrent(t *testing.T) {
	t.Parallel()
	rdb := testRedis(t)
	budget := NewRedisBudget(rdb, testPrefix(t, rdb))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted int
	)
	for range 40 {
		wg.Go(func() {
			ok, _, err := budget.Spend(t.Context(), "2026-11", 1, 25)
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				accepted++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if accepted != 25 {
		t.Errorf("%d of 40 concurrent reservations accepted under a limit of 25", accepted)
	}
}

func TestBudgetExhaustedSurvivesRestart(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{MonthlyBudget: 3}, 1)
	for i := range 3 {
		if _, err := b.client.Categories(t.Context()); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	check := func(c *Client, who string) {
		t.Helper()
		_, err := c.Categories(t.Context())
		var ex *ExhaustedError
		if !errors.As(err, &ex) || ex.Used != 3 || ex.Limit != 3 || ex.Month != "2026-11" {
			t.Fatalf("%s: err = %v, want *ExhaustedError for 3 of 3 in 2026-11", who, err)
		}
		if tokenlysis.ErrorCode(err) != tokenlysis.EUNAVAILABLE {
			t.Errorf("%s: code = %s, want unavailable", who, tokenlysis.ErrorCode(err))
		}
		if missing := contains(tokenlysis.ErrorMessage(err), "monthly CoinGecko call budget exhausted (used 3 of 3)", "2026-12-01"); missing != "" {
			t.Errorf("%s: message %q lacks %q", who, tokenlysis.ErrorMessage(err), missing)
		}
	}
	check(b.client, "same client")
	check(b.newClient(t), "new client") // a restarted process reads the same count
	if b.gecko.hits() != 3 {
		t.Errorf("requests = %d, want 3: an exhausted budget must not call the API", b.gecko.hits())
	}
	// The next month has a fresh budget.
	b.now.Set(time.Date(2026, 12, 1, 0, 0, 1, 0, time.UTC))
	if _, err := b.client.Categories(t.Context()); err != nil {
		t.Errorf("first call of December: %v", err)
	}
}

func TestBudgetPaysForRetries(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{MonthlyBudget: 2}, 1)
	b.gecko.then(respond(500, "text/plain", "down"), respond(500, "text/plain", "down"), respond(500, "text/plain", "down"))
	_, err := b.client.Categories(t.Context())
	var ex *ExhaustedError
	if !errors.As(err, &ex) {
		t.Fatalf("err = %v, want *ExhaustedError after two paid attempts", err)
	}
	if b.gecko.hits() != 2 {
		t.Errorf("requests = %d, want 2", b.gecko.hits())
	}
}

func TestUnlimitedBudgetStillCounts(t *testing.T) {
	t.Parallel()
	b := setup(t, Config{MonthlyBudget: Unlimited}, 1)
	for range 3 {
		if _, err := b.client.Categories(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := b.rdb.Get(t.Context(), b.prefix+"coingecko:budget:2026-11").Int(); err != nil || v != 3 {
		t.Errorf("usage count = %v (%v), want 3", v, err)
	}
}
