package coingecko

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// Budget counts the CoinGecko calls of each calendar month (UTC) across
// every process that shares it.
type Budget interface {
	// Spend atomically reserves n calls in month ("2006-01") if the calls
	// already used plus n stay within limit. ok reports whether the
	// reservation was made; used is the month's count after it (or the
	// unchanged count when refused). A refused reservation counts nothing.
	Spend(ctx context.Context, month string, n int, limit int) (ok bool, used int, err error)
}

var _ Budget = (*RedisBudget)(nil)

// RedisBudget keeps the monthly counts in Redis, which every worker process
// shares and which is persistent in production, so that restarts and
// parallel workers draw on one budget. The key of a month is
// {prefix}coingecko:budget:2026-11; it expires at the end of the following
// month, so last month's usage stays readable for a month.
type RedisBudget struct {
	rdb    redis.UniversalClient
	prefix string
}

// NewRedisBudget returns a Budget stored in rdb under keys starting with
// prefix (e.g. "tokenlysis:").
func NewRedisBudget(rdb redis.UniversalClient, prefix string) *RedisBudget {
	return &RedisBudget{rdb: rdb, prefix: prefix}
}

// spendScript reserves ARGV[1] calls under the limit ARGV[2] and sets the
// key to expire at ARGV[3] (Unix seconds). It returns {1, used} when the
// reservation is made, {0, used} when refused. Running as one script makes
// the check and the increment atomic: a refusal never touches the count.
var spendScript = redis.NewScript(`
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = tonumber(ARGV[1])
if used + n > tonumber(ARGV[2]) then
  return {0, used}
end
used = redis.call('INCRBY', KEYS[1], n)
redis.call('EXPIREAT', KEYS[1], ARGV[3])
return {1, used}
`)

// Spend implements Budget. Error codes: EINVALID for a month that is not
// "YYYY-MM", n < 1 or limit < 0; Redis errors are returned wrapped.
func (b *RedisBudget) Spend(ctx context.Context, month string, n int, limit int) (bool, int, error) {
	start, err := time.Parse("2006-01", month)
	if err != nil {
		return false, 0, tokenlysis.FieldErrorf("month", "coingecko budget: month %q is not YYYY-MM", month)
	}
	if n < 1 || limit < 0 {
		return false, 0, tokenlysis.Errorf(tokenlysis.EINVALID, "coingecko budget: cannot reserve %d calls under a limit of %d", n, limit)
	}
	expireAt := start.AddDate(0, 2, 0).Unix()
	res, err := spendScript.Run(ctx, b.rdb, []string{b.Key(month)}, n, strconv.Itoa(limit), expireAt).Int64Slice()
	if err != nil {
		return false, 0, fmt.Errorf("coingecko budget: spend: %w", err)
	}
	if len(res) != 2 {
		return false, 0, fmt.Errorf("coingecko budget: spend: unexpected script reply %v", res)
	}
	return res[0] == 1, int(res[1]), nil
}

// Key returns the Redis key holding the count of month.
func (b *RedisBudget) Key(month string) string {
	return b.prefix + "coingecko:budget:" + month
}

// ExhaustedError is returned, wrapping an EUNAVAILABLE *tokenlysis.Error,
// when a call would overrun the monthly budget. The API was not called.
type ExhaustedError struct {
	Month string
	Used  int
	Limit int
	err   *tokenlysis.Error
}

func newExhaustedError(month string, used, limit int) *ExhaustedError {
	start, _ := time.Parse("2006-01", month)
	return &ExhaustedError{Month: month, Used: used, Limit: limit, err: tokenlysis.Errorf(tokenlysis.EUNAVAILABLE,
		"monthly CoinGecko call budget exhausted (used %d of %d); it renews on %s UTC",
		used, limit, start.AddDate(0, 1, 0).Format(time.DateOnly))}
}

// Error implements error.
func (e *ExhaustedError) Error() string { return e.err.Error() }

// Unwrap returns the *tokenlysis.Error, so that tokenlysis.ErrorCode sees
// EUNAVAILABLE.
func (e *ExhaustedError) Unwrap() error { return e.err }
