package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// keySet is the issuer's JSON Web Key Set, cached. It replaces go-oidc's
// RemoteKeySet, which fetches the set again for every token whose signature
// fails to verify: here a token naming an unknown key ID triggers a
// refresh (Verifier.Verify calls refresh), and so does a cached set older
// than the verifier's KeysMaxAge (refreshIfStale), so that withdrawn keys
// stop verifying; refreshes are at most one per retryInterval. VerifySignature itself never does I/O.
type keySet struct {
	client *http.Client
	url    string
	logger *slog.Logger

	mu   sync.RWMutex
	keys []jose.JSONWebKey // public, signing, asymmetric keys only

	fetchMu   sync.Mutex // serializes refreshes
	lastFetch time.Time
	lastErr   error
	fetchedAt time.Time // of keys (guarded by mu)
}

var _ oidc.KeySet = (*keySet)(nil)

func newKeySet(client *http.Client, url string, logger *slog.Logger) *keySet {
	return &keySet{client: client, url: url, logger: logger}
}

func (k *keySet) cached() []jose.JSONWebKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.keys
}

func (k *keySet) empty() bool { return len(k.cached()) == 0 }

// has reports whether a token with this kid can be checked against the
// cached keys. A token without a kid is checked against every key.
func (k *keySet) has(kid string) bool {
	keys := k.cached()
	if kid == "" {
		return len(keys) > 0
	}
	for _, key := range keys {
		if key.KeyID == kid {
			return true
		}
	}
	return false
}

// refresh fetches the key set unless a fetch happened less than
// retryInterval ago, in which case it returns that fetch's error.
func (k *keySet) refresh(ctx context.Context) error {
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	return k.refreshLocked(ctx)
}

// refreshLocked is refresh with fetchMu held.
func (k *keySet) refreshLocked(ctx context.Context) error {
	if !k.lastFetch.IsZero() && time.Since(k.lastFetch) < retryInterval {
		return k.lastErr
	}
	k.lastFetch = time.Now()
	keys, err := k.fetch(ctx)
	k.lastErr = err
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.keys, k.fetchedAt = keys, time.Now()
	k.mu.Unlock()
	kids := make([]string, len(keys))
	for i, key := range keys {
		kids[i] = key.KeyID
	}
	k.logger.Info("oidc keys refreshed", "jwks_uri", k.url, "kids", kids)
	return nil
}

// refreshIfStale fetches the key set again once the cached one is older
// than maxAge. One caller fetches (rate limited as refresh is), the others
// go on with the cached keys meanwhile; a failed fetch keeps them, logged,
// and is tried again after retryInterval.
func (k *keySet) refreshIfStale(ctx context.Context, maxAge time.Duration) {
	k.mu.RLock()
	stale := !k.fetchedAt.IsZero() && time.Since(k.fetchedAt) > maxAge
	k.mu.RUnlock()
	if !stale || !k.fetchMu.TryLock() {
		return
	}
	defer k.fetchMu.Unlock()
	if err := k.refreshLocked(ctx); err != nil {
		k.logger.Warn("oidc keys not refreshed; the cached ones stay in use", "jwks_uri", k.url, "err", err)
	}
}

func (k *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks fetch: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("jwks read: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks fetch: %s", resp.Status)
	}
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("jwks decode: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, r := range raw.Keys {
		var key jose.JSONWebKey
		if err := json.Unmarshal(r, &key); err != nil {
			continue // unsupported key types (or garbage) are skipped
		}
		if key.Use != "" && key.Use != "sig" {
			continue
		}
		switch key.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey,
			*rsa.PrivateKey, *ecdsa.PrivateKey, ed25519.PrivateKey:
			keys = append(keys, key.Public())
		}
		// Symmetric ("oct") keys are never used: HMAC is refused anyway.
	}
	if len(keys) == 0 {
		return nil, errors.New("jwks has no usable signing keys")
	}
	return keys, nil
}

// VerifySignature implements oidc.KeySet over the cached keys: it returns
// the payload when a key with the token's kid (any key, when the token has
// none) verifies the signature with the token's algorithm. A key that
// declares an "alg" is used only for that algorithm.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	var jws *jose.JSONWebSignature
	if p, ok := ctx.Value(parsedJWSKey{}).(parsedJWS); ok && p.raw == raw {
		jws = p.jws
	} else {
		var err error
		if jws, err = jose.ParseSigned(raw, asymmetricJOSEAlgs); err != nil {
			return nil, fmt.Errorf("parse jws: %w", err)
		}
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("want exactly one signature")
	}
	h := jws.Signatures[0].Header
	for _, key := range k.cached() {
		if h.KeyID != "" && key.KeyID != h.KeyID {
			continue
		}
		if key.Algorithm != "" && key.Algorithm != h.Algorithm {
			continue
		}
		if payload, err := jws.Verify(&key); err == nil {
			return payload, nil
		}
	}
	return nil, errors.New("no key verifies the signature")
}

// parsedJWSKey is the context key under which Verify hands the JWS it
// already parsed to VerifySignature, which go-oidc calls with the raw token.
type parsedJWSKey struct{}

type parsedJWS struct {
	raw string
	jws *jose.JSONWebSignature
}

var asymmetricJOSEAlgs = func() []jose.SignatureAlgorithm {
	algs := make([]jose.SignatureAlgorithm, len(asymmetricAlgs))
	for i, a := range asymmetricAlgs {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	return algs
}()
