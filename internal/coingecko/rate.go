package coingecko

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// RateStore spaces the calls of every Client that shares it, so that
// several worker processes together keep to the plan's rate.
type RateStore interface {
	// Wait returns when one more call may be made at perMinute calls a
	// minute across every sharer. It returns ctx's error when ctx ends
	// first, and an error wrapping context.DeadlineExceeded at once when
	// the wait would outlast ctx's deadline.
	Wait(ctx context.Context, perMinute int) error
}

var _ RateStore = (*RedisRate)(nil)

// RedisRate is a RateStore in Redis: a GCRA limiter (go-redis/redis_rate,
// burst 1) under the key rate:{prefix}coingecko:rate, which every worker
// process on the same Redis shares.
type RedisRate struct {
	limiter *redis_rate.Limiter
	key     string
}

// NewRedisRate returns a RateStore kept in rdb under prefix (e.g.
// "tokenlysis:").
func NewRedisRate(rdb redis.UniversalClient, prefix string) *RedisRate {
	return &RedisRate{limiter: redis_rate.NewLimiter(rdb), key: prefix + "coingecko:rate"}
}

// Wait implements RateStore. Error codes: EINVALID for perMinute < 1;
// Redis errors are returned wrapped.
func (r *RedisRate) Wait(ctx context.Context, perMinute int) error {
	if perMinute < 1 {
		return tokenlysis.FieldErrorf("rate_per_minute", "coingecko rate: %d calls a minute is not a rate", perMinute)
	}
	limit := redis_rate.Limit{Rate: perMinute, Period: time.Minute, Burst: 1}
	for {
		res, err := r.limiter.Allow(ctx, r.key, limit)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("coingecko rate: %w", err)
		}
		if res.Allowed > 0 {
			return nil
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < res.RetryAfter {
			return fmt.Errorf("coingecko rate: the next call is %v away: %w", res.RetryAfter.Round(time.Millisecond), context.DeadlineExceeded)
		}
		// Others may take the slot meanwhile: then ask again.
		t := time.NewTimer(res.RetryAfter)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// processRate is the limiter of a Client without a RateStore: its calls
// alone (golang.org/x/time/rate, burst 1).
type processRate struct{ limiter *rate.Limiter }

func newProcessRate(perMinute int) processRate {
	return processRate{limiter: rate.NewLimiter(rate.Limit(float64(perMinute)/60), 1)}
}

// Wait returns as RateStore.Wait does.
func (p processRate) Wait(ctx context.Context) error {
	if err := p.limiter.Wait(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The limiter refuses at once when the wait would outlast ctx's
		// deadline; report it as the deadline it is.
		return fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	}
	return nil
}
