// Package feargreed reads the Crypto Fear & Greed Index history from the
// alternative.me API (GET /fng/?limit=N, no key needed).
//
// The API sends value and timestamp as strings (the timestamp in Unix
// seconds) and newest first. History returns one Point per UTC day, oldest
// first: when the API holds two points on the same UTC day (a refresh
// published later that day), the later one wins. A non-null metadata.error
// in the response is an error, as is a value that is not an integer in
// 0..100 or a timestamp that is not an integer.
//
// Requests are retried with the shared policy of internal/httpretry (429,
// 5xx and network errors with Retry-After or jittered exponential backoff;
// invalid JSON once). Errors are *tokenlysis.Error values: EINVALID for a bad
// argument, ENOTFOUND for HTTP 404, EUNAVAILABLE for everything upstream.
package feargreed
