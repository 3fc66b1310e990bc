// Package coingecko is the Tokenlysis client of the CoinGecko API v3: the
// market list (/coins/markets, paged by 250), daily history of a coin
// (/coins/{id}/market_chart with interval=daily) and coin categories
// (/coins/categories), all priced in USD.
//
// # Plans and keys
//
// Config.Plan picks the base URL and the key header: public (no key,
// https://api.coingecko.com/api/v3), demo (header x-cg-demo-api-key, same
// host) or pro (header x-cg-pro-api-key, https://pro-api.coingecko.com/api/v3).
// A demo or pro plan without a key, or a key on the public plan, is an
// EINVALID config error.
//
// # Limits
//
// Two limits protect the plan's quota:
//
//   - a rate limiter (burst 1) of RatePerMinute calls: public 10, demo 30,
//     pro 500 by default. With Config.Rate, normally NewRedisRate (a GCRA
//     limiter in Redis, go-redis/redis_rate), the rate is shared by every
//     Client on it, in every worker process; without, each Client keeps
//     to it alone (golang.org/x/time/rate);
//   - a monthly call budget (calendar month, UTC) shared by every process
//     through a Budget store, normally NewRedisBudget: public and demo
//     10,000 calls, pro 500,000 by default. Each attempt actually sent —
//     retries included — reserves one call first; when the reservation is
//     refused the Client returns an *ExhaustedError (EUNAVAILABLE, "monthly
//     CoinGecko call budget exhausted (used N of M)") without calling the
//     API, so a runaway job cannot lock a free-plan user out for the rest
//     of the month. MonthlyBudget = Unlimited (-1) lifts the cap, and must
//     be set explicitly: zero means the plan's default. With Unlimited the
//     Budget may be nil; when given, calls are still counted.
//
// # Retries and errors
//
// Requests follow internal/httpretry: 429, 5xx and network errors are
// retried up to MaxRetries (default 5) times, waiting for Retry-After
// (seconds or an HTTP date, also when the 429 is an HTML page) or for an
// exponential backoff with jitter, each wait capped by RetryMaxDelay
// (default 60s) and cut short by ctx. A 2xx body that is not valid JSON (a
// truncated payload) is retried once. Other 4xx are not retried: HTTP 400
// is EINVALID, 404 ENOTFOUND, the rest EUNAVAILABLE, with CoinGecko's own
// message ({"status":{"error_message":…}} or {"error":…}) in the error.
//
// # Daily rows
//
// Chart.Daily turns a market chart into one row per UTC day; the trailing
// "current" intraday point CoinGecko appends is never turned into an extra
// day (see Daily for the rule).
package coingecko
