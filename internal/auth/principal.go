package auth

import "time"

// Principal is the authenticated caller a verified token describes. Roles
// are the raw role names from the token; package authz decides what they
// allow.
type Principal struct {
	Subject string
	Email   string
	Name    string
	Roles   []string
	// ValidUntil is when the token stops being accepted: its exp plus the
	// verifier's leeway (zero: never). A stream opened with the token ends
	// then.
	ValidUntil time.Time
}
