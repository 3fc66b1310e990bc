// Package httpretry owns the retry policy for the read-only third-party JSON
// APIs Tokenlysis pulls market data from (CoinGecko, alternative.me). It sends
// GET requests, retries what is worth retrying and turns everything else into
// a *tokenlysis.Error whose message names the service and the HTTP status.
//
// The policy, in one place so that every market-data client behaves alike:
//
//   - Retried: HTTP 429, every 5xx, network errors (refused or reset
//     connections, timeouts of the http.Client, a body cut short before its
//     Content-Length) — up to MaxRetries times after the first attempt.
//   - The wait before a retry is the server's Retry-After (delta-seconds or an
//     HTTP date) when it sends one, whatever the body looks like (a 429 can be
//     a JSON error or an HTML page); otherwise exponential backoff with jitter:
//     a random duration in [d/2, d] where d = BaseDelay·2^retry. Every wait is
//     capped at MaxDelay and ends early when ctx is done.
//   - A 2xx body that is not valid JSON (a proxy page, a truncated payload
//     with no Content-Length) is retried once: a second bad body is an error,
//     because an API that keeps answering garbage will not be cured by
//     spending more of a rate-limited quota on it.
//   - Any other 4xx is not retried: 400 → EINVALID, 404 → ENOTFOUND, others
//     (401, 403, …) → EUNAVAILABLE, with the API's own error message when
//     Config.ErrorMessage can extract one.
//   - Exhausted retries → EUNAVAILABLE, joined with the last network error
//     when there was one (errors.Is still finds it).
//   - A done ctx stops everything at once; the returned error wraps ctx.Err()
//     and is not a *tokenlysis.Error, so callers can tell a cancellation from
//     an upstream failure.
//
// Config.BeforeAttempt runs before every attempt, retries included; the
// CoinGecko client uses it for its rate limiter and its monthly call budget,
// so that each request actually sent is paid for.
package httpretry
