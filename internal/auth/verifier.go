package auth

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

// Defaults for VerifierConfig.
const (
	DefaultRolesClaim = "roles"
	DefaultLeeway     = 30 * time.Second
	DefaultKeysMaxAge = 5 * time.Minute
)

// retryInterval bounds how often the Verifier asks the issuer for its
// discovery document or its keys, so that a down issuer or a stream of
// tokens with made-up key IDs never turns into a stream of requests.
const retryInterval = time.Second

// asymmetricAlgs are the only signature algorithms accepted. Symmetric (HS*)
// and "none" are refused whatever the issuer advertises: with a public key
// set, accepting HMAC opens the key-confusion attack.
var asymmetricAlgs = []string{
	oidc.RS256, oidc.RS384, oidc.RS512,
	oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.ES256, oidc.ES384, oidc.ES512,
	oidc.EdDSA,
}

// VerifierConfig configures a Verifier. Zero fields take the defaults noted.
type VerifierConfig struct {
	// Issuer is the issuer URL, exactly as tokens carry it in "iss".
	// Discovery reads {Issuer}/.well-known/openid-configuration. Required.
	Issuer string
	// Audience must be one of the token's "aud" values. Required.
	Audience string
	// RolesClaim names the claim holding the roles; a dotted path such as
	// "realm_access.roles" (Keycloak) descends into objects. A claim whose
	// name itself contains dots is matched first. Default "roles".
	RolesClaim string
	// Leeway is the clock skew tolerated on "exp", "nbf" and "iat". Default 30s.
	Leeway time.Duration
	// KeysMaxAge is how long a fetched key set is trusted before it is
	// fetched again, so that a key the issuer withdraws stops verifying
	// tokens. Default 5m.
	KeysMaxAge time.Duration
	// HTTPClient fetches discovery and keys. Default: a client with a 10s
	// timeout.
	HTTPClient *http.Client
	// Logger records discovery and key refreshes. Default slog.Default().
	Logger *slog.Logger
}

// Verifier verifies bearer tokens. It is safe for concurrent use; after the
// first successful discovery a Verify does no I/O unless a token names a key
// the Verifier has not seen.
type Verifier struct {
	cfg    VerifierConfig
	client *http.Client
	logger *slog.Logger

	ready atomic.Pointer[verifierState] // set once discovery succeeded

	mu          sync.Mutex // serializes discovery attempts
	lastAttempt time.Time
	lastErr     error

	cache tokenCache
}

// verifierState is what discovery produces.
type verifierState struct {
	keys     *keySet
	verifier *oidc.IDTokenVerifier
}

// NewVerifier returns a Verifier for cfg. It performs no I/O: discovery
// happens on the first Verify, so the API may build the Verifier before the
// issuer (possibly itself) is listening.
func NewVerifier(cfg VerifierConfig) (*Verifier, error) {
	cfg.RolesClaim = cmp.Or(cfg.RolesClaim, DefaultRolesClaim)
	cfg.Leeway = cmp.Or(cfg.Leeway, DefaultLeeway)
	cfg.KeysMaxAge = cmp.Or(cfg.KeysMaxAge, DefaultKeysMaxAge)
	if cfg.Issuer == "" {
		return nil, errors.New("auth: issuer is required")
	}
	if cfg.Audience == "" {
		return nil, errors.New("auth: audience is required")
	}
	if cfg.Leeway < 0 {
		return nil, fmt.Errorf("auth: leeway must not be negative, got %s", cfg.Leeway)
	}
	v := &Verifier{cfg: cfg, client: cfg.HTTPClient, logger: cfg.Logger}
	if v.client == nil {
		v.client = &http.Client{Timeout: 10 * time.Second}
	}
	if v.logger == nil {
		v.logger = slog.Default()
	}
	return v, nil
}

// Messages of the errors returned to callers: deliberately terse. The
// wrapped cause (in Error(), for the server log) says more.
const (
	msgMissingToken = "missing token"
	msgInvalidToken = "invalid token"
	msgExpiredToken = "token expired"
	msgUnavailable  = "identity provider unavailable"
)

// authError wraps a client-facing *tokenlysis.Error with the detailed cause.
// Error() includes the cause for logs; errors.As finds the tokenlysis error,
// whose Message is all a client sees.
type authError struct {
	public *tokenlysis.Error
	cause  error
}

func (e *authError) Error() string { return "auth: " + e.public.Message + ": " + e.cause.Error() }
func (e *authError) Unwrap() error { return e.public }

func fail(code, message string, cause error) error {
	return &authError{public: &tokenlysis.Error{Code: code, Message: message}, cause: cause}
}

func unauthorized(message string, cause error) error {
	return fail(tokenlysis.EUNAUTHORIZED, message, cause)
}

// Verify checks rawToken (without the "Bearer " prefix) and returns the
// principal it describes.
//
// Errors: EUNAUTHORIZED ("missing token", "invalid token", "token expired")
// for any token that is not acceptable; EUNAVAILABLE when the issuer's
// discovery document or keys cannot be fetched (retried on a later call, at
// most once per second).
func (v *Verifier) Verify(ctx context.Context, rawToken string) (Principal, error) {
	if rawToken == "" {
		return Principal{}, unauthorized(msgMissingToken, errors.New("empty bearer token"))
	}
	st, err := v.state(ctx)
	if err != nil {
		return Principal{}, fail(tokenlysis.EUNAVAILABLE, msgUnavailable, err)
	}
	now := time.Now()
	st.keys.refreshIfStale(ctx, v.cfg.KeysMaxAge)
	if p, kid, ok := v.cache.get(rawToken, now); ok && st.keys.has(kid) {
		return p, nil // verified before, and its key is still published
	}

	// Parse once here: the kid decides whether keys must be refreshed, and
	// the key set reuses the parsed JWS (go-jose parsing is not free).
	jws, err := jose.ParseSigned(rawToken, asymmetricJOSEAlgs)
	if err != nil {
		return Principal{}, unauthorized(msgInvalidToken, err)
	}
	if len(jws.Signatures) != 1 {
		return Principal{}, unauthorized(msgInvalidToken, errors.New("want exactly one signature"))
	}
	kid := jws.Signatures[0].Header.KeyID
	ctx = context.WithValue(ctx, parsedJWSKey{}, parsedJWS{raw: rawToken, jws: jws})
	if !st.keys.has(kid) {
		// An unknown key: the issuer may have rotated. Refresh (rate
		// limited), then require the key to be known.
		if err := st.keys.refresh(ctx); err != nil && st.keys.empty() {
			return Principal{}, fail(tokenlysis.EUNAVAILABLE, msgUnavailable, err)
		}
		if !st.keys.has(kid) {
			return Principal{}, unauthorized(msgInvalidToken, fmt.Errorf("unknown key id %q", kid))
		}
	}

	tok, err := st.verifier.Verify(ctx, rawToken)
	if err != nil {
		if _, ok := errors.AsType[*oidc.TokenExpiredError](err); ok {
			return Principal{}, unauthorized(msgExpiredToken, err)
		}
		return Principal{}, unauthorized(msgInvalidToken, err)
	}

	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return Principal{}, unauthorized(msgInvalidToken, err)
	}
	// go-oidc allows 5 minutes on nbf and does not look at iat: both get
	// exp's leeway here.
	for _, name := range []string{"nbf", "iat"} {
		if at, ok := claims[name].(float64); ok && time.Unix(int64(at), 0).After(now.Add(v.cfg.Leeway)) {
			return Principal{}, unauthorized(msgInvalidToken, fmt.Errorf("token %s is in the future", name))
		}
	}
	p := Principal{
		Subject: tok.Subject,
		Email:   stringClaim(claims, "email"),
		Name:    cmp.Or(stringClaim(claims, "name"), stringClaim(claims, "preferred_username")),
		Roles:   rolesFromClaims(claims, v.cfg.RolesClaim),
	}
	if !tok.Expiry.IsZero() {
		p.ValidUntil = tok.Expiry.Add(v.cfg.Leeway)
	}
	if p.Subject == "" {
		return Principal{}, unauthorized(msgInvalidToken, errors.New("token has no subject"))
	}
	until := now.Add(tokenCacheTTL)
	if exp := tok.Expiry.Add(v.cfg.Leeway); exp.Before(until) {
		until = exp
	}
	v.cache.put(rawToken, p, kid, until)
	return p, nil
}

// tokenCacheTTL bounds how long a verified token is trusted without a new
// signature check. A cached token is also refused as soon as its key is no
// longer in the issuer's key set.
const tokenCacheTTL = 2 * time.Minute

// tokenCacheSize bounds the cache; when full, expired entries go first,
// and if none has expired the cache starts over.
const tokenCacheSize = 10_000

// tokenCache remembers verified tokens until they expire (or for
// tokenCacheTTL), so that a client calling the API many times with one
// token pays for the RSA verification once.
type tokenCache struct {
	mu      sync.Mutex
	entries map[string]cachedToken
}

type cachedToken struct {
	p     Principal
	kid   string
	until time.Time
}

func (c *tokenCache) get(raw string, now time.Time) (Principal, string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[raw]
	if !ok || !now.Before(e.until) {
		return Principal{}, "", false
	}
	return e.p, e.kid, true
}

func (c *tokenCache) put(raw string, p Principal, kid string, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]cachedToken{}
	}
	if len(c.entries) >= tokenCacheSize {
		now := time.Now()
		for k, e := range c.entries {
			if !now.Before(e.until) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= tokenCacheSize {
			clear(c.entries)
		}
	}
	c.entries[raw] = cachedToken{p: p, kid: kid, until: until}
}

// state returns the discovered state, performing discovery when it has not
// succeeded yet and the last attempt is more than retryInterval old.
func (v *Verifier) state(ctx context.Context) (*verifierState, error) {
	if st := v.ready.Load(); st != nil {
		return st, nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if st := v.ready.Load(); st != nil { // another caller won the race
		return st, nil
	}
	if !v.lastAttempt.IsZero() && time.Since(v.lastAttempt) < retryInterval {
		return nil, v.lastErr
	}
	v.lastAttempt = time.Now()
	st, err := v.discover(ctx)
	if err != nil {
		v.lastErr = fmt.Errorf("oidc discovery at %s: %w", v.cfg.Issuer, err)
		return nil, v.lastErr
	}
	v.ready.Store(st)
	return st, nil
}

// discover reads the issuer's discovery document and builds the go-oidc
// verifier over a rate-limited key set.
func (v *Verifier) discover(ctx context.Context) (*verifierState, error) {
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, v.client), v.cfg.Issuer)
	if err != nil {
		return nil, err
	}
	var meta struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := provider.Claims(&meta); err != nil {
		return nil, err
	}
	if meta.JWKSURI == "" {
		return nil, errors.New("discovery document has no jwks_uri")
	}
	keys := newKeySet(v.client, meta.JWKSURI, v.logger)
	leeway := v.cfg.Leeway
	verifier := oidc.NewVerifier(v.cfg.Issuer, keys, &oidc.Config{
		ClientID:             v.cfg.Audience,
		SupportedSigningAlgs: asymmetricAlgs,
		// go-oidc refuses exp < Now(); moving Now back by the leeway
		// tolerates that much skew on exp (Verify checks nbf and iat).
		Now: func() time.Time { return time.Now().Add(-leeway) },
	})
	v.logger.Info("oidc issuer discovered", "issuer", v.cfg.Issuer, "jwks_uri", meta.JWKSURI)
	return &verifierState{keys: keys, verifier: verifier}, nil
}

func stringClaim(claims map[string]any, name string) string {
	s, _ := claims[name].(string)
	return s
}

// rolesFromClaims returns the roles at path: a claim of that exact name if
// there is one, else the dotted path through nested objects. The value may
// be an array of strings (other members are ignored) or a space-separated
// string. Anything else yields no roles.
func rolesFromClaims(claims map[string]any, path string) []string {
	val, ok := claims[path]
	if !ok {
		var cur any = claims
		for part := range strings.SplitSeq(path, ".") {
			obj, isObj := cur.(map[string]any)
			if !isObj {
				return nil
			}
			if cur, ok = obj[part]; !ok {
				return nil
			}
		}
		val = cur
	}
	switch val := val.(type) {
	case string:
		return strings.Fields(val)
	case []any:
		var roles []string
		for _, r := range val {
			if s, ok := r.(string); ok && s != "" {
				roles = append(roles, s)
			}
		}
		return roles
	}
	return nil
}
