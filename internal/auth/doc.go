// Package auth authenticates API callers by their OIDC bearer tokens.
//
// A [Verifier] checks a token as a relying party would: the signature against
// the issuer's published keys (found by OIDC discovery), the issuer, the
// audience and the expiry, and accepts asymmetric algorithms only. It turns
// the claims into a [Principal] whose roles come from a configurable claim.
// Discovery is lazy and retried, so the API can be its own issuer.
//
// In development the API is that issuer: a [DevIssuer] signs tokens with a
// [DevKey] kept on disk and serves the discovery document and the key set
// that the Verifier reads, exactly as an external provider would.
//
// Authorization (what a role may do) lives in package authz.
package auth
