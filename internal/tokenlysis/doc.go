// Package tokenlysis holds the domain types shared by every adapter: jobs,
// job events, users, and the one error vocabulary that the HTTP layer maps to
// status codes. It performs no I/O.
package tokenlysis
