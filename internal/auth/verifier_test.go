package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tokenlysis/tokenlysis/internal/tokenlysis"
)

const testAudience = "tokenlysis-api"

// testBundle holds a DevIssuer served over HTTP and a Verifier pointed at it.
type testBundle struct {
	issuer   *DevIssuer
	key      *DevKey
	srv      *httptest.Server
	verifier *Verifier
}

func setup(t testing.TB) *testBundle {
	t.Helper()
	key, err := LoadOrCreateDevKey(filepath.Join(t.TempDir(), "dev-key.pem"))
	if err != nil {
		t.Fatalf("LoadOrCreateDevKey: %v", err)
	}
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	issuer := NewDevIssuer(key, srv.URL, testAudience)
	mux.Handle("/.well-known/openid-configuration", issuer.DiscoveryHandler())
	mux.Handle("/oauth/jwks", issuer.JWKSHandler())

	v, err := NewVerifier(VerifierConfig{Issuer: srv.URL, Audience: testAudience, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return &testBundle{issuer: issuer, key: key, srv: srv, verifier: v}
}

// testLogger writes to the test's output, shown only for failures and -v.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}

func (b *testBundle) mint(t testing.TB, req TokenRequest) string {
	t.Helper()
	raw, err := b.issuer.Mint(req)
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	return raw
}

// requireCode fails unless err carries a *tokenlysis.Error with code.
func requireCode(t testing.TB, err error, code string) *tokenlysis.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("want error with code %q, got nil", code)
	}
	var te *tokenlysis.Error
	if !errors.As(err, &te) {
		t.Fatalf("want *tokenlysis.Error with code %q, got %T: %v", code, err, err)
	}
	if te.Code != code {
		t.Fatalf("want code %q, got %q (%v)", code, te.Code, err)
	}
	return te
}

func b64json(t testing.TB, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(data)
}

func TestVerifyDevIssuerToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	raw := b.mint(t, TokenRequest{Subject: "u-1", Email: "ada@example.com", Name: "Ada", Roles: []string{"analyst", "user"}, TTL: time.Minute})

	p, err := b.verifier.Verify(t.Context(), raw)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := Principal{Subject: "u-1", Email: "ada@example.com", Name: "Ada", Roles: []string{"analyst", "user"}}
	if p.Subject != want.Subject || p.Email != want.Email || p.Name != want.Name || !slices.Equal(p.Roles, want.Roles) {
		t.Fatalf("Principal = %+v, want %+v", p, want)
	}
}

func TestVerifyRefusesBadTokens(t *testing.T) {
	t.Parallel()
	b := setup(t)
	valid := b.mint(t, TokenRequest{Subject: "u-1", Roles: []string{"user"}, TTL: time.Minute})
	parts := strings.Split(valid, ".")
	if len(parts) != 3 {
		t.Fatalf("minted token has %d parts", len(parts))
	}
	var header map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if err := json.Unmarshal(hb, &header); err != nil {
		t.Fatal(err)
	}
	kid, _ := header["kid"].(string)
	if kid == "" {
		t.Fatal("minted token has no kid")
	}
	claims := map[string]any{
		"iss": b.srv.URL, "aud": testAudience, "sub": "attacker", "roles": []string{"admin"},
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	}

	// alg none: header and claims, empty signature.
	algNone := b64json(t, map[string]any{"alg": "none", "typ": "JWT", "kid": kid}) + "." + b64json(t, claims) + "."

	// HS256 keyed with the issuer's public key bytes (key confusion attack).
	pubDER, err := x509.MarshalPKIXPublicKey(b.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hsInput := b64json(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}) + "." + b64json(t, claims)
	mac := hmac.New(sha256.New, pubPEM)
	mac.Write([]byte(hsInput))
	hs256 := hsInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

	// A valid signature over changed claims.
	tampered := parts[0] + "." + b64json(t, claims) + "." + parts[2]

	other := newTestIssuer(t, jose.RS256)
	otherClaims := func(mod func(map[string]any)) map[string]any {
		c := map[string]any{"iss": other.srv.URL, "aud": testAudience, "sub": "u-2", "exp": time.Now().Add(time.Hour).Unix()}
		mod(c)
		return c
	}
	// Validly signed by another issuer, claiming to be ours: the kid is unknown here.
	foreign := other.sign(otherClaims(func(c map[string]any) { c["iss"] = b.srv.URL }))

	tests := []struct {
		name    string
		token   string
		message string
	}{
		{"empty", "", "missing token"},
		{"garbage", "not-a-jwt", "invalid token"},
		{"expired beyond leeway", b.mint(t, TokenRequest{Subject: "u-1", TTL: -time.Minute}), "token expired"},
		{"wrong audience", mintWith(t, b, func(c map[string]any) { c["aud"] = "someone-else" }), "invalid token"},
		{"wrong issuer", mintWith(t, b, func(c map[string]any) { c["iss"] = "https://evil.example" }), "invalid token"},
		{"alg none", algNone, "invalid token"},
		{"HS256 with public key as secret", hs256, "invalid token"},
		{"tampered claims", tampered, "invalid token"},
		{"signed by another issuer", foreign, "invalid token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := b.verifier.Verify(t.Context(), tt.token)
			te := requireCode(t, err, tokenlysis.EUNAUTHORIZED)
			if te.Message != tt.message {
				t.Errorf("message = %q, want %q", te.Message, tt.message)
			}
			if p.Subject != "" || len(p.Roles) != 0 {
				t.Errorf("refused token still yields principal %+v", p)
			}
		})
	}
}

// mintWith signs, with the dev issuer's key, the claims of a valid token
// changed by mod.
func mintWith(t testing.TB, b *testBundle, mod func(map[string]any)) string {
	t.Helper()
	c := map[string]any{
		"iss": b.srv.URL, "aud": testAudience, "sub": "u-1",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	}
	mod(c)
	raw, err := b.issuer.sign(c)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return raw
}

func TestVerifyLeeway(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// Expired 10s ago: inside the default 30s leeway.
	within := mintWith(t, b, func(c map[string]any) { c["exp"] = time.Now().Add(-10 * time.Second).Unix() })
	if _, err := b.verifier.Verify(t.Context(), within); err != nil {
		t.Fatalf("token expired within leeway refused: %v", err)
	}
	// Expired 45s ago: beyond it.
	beyond := mintWith(t, b, func(c map[string]any) { c["exp"] = time.Now().Add(-45 * time.Second).Unix() })
	te := requireCode(t, func() error { _, err := b.verifier.Verify(t.Context(), beyond); return err }(), tokenlysis.EUNAUTHORIZED)
	if te.Message != "token expired" {
		t.Fatalf("message = %q", te.Message)
	}

	// A verifier with no leeway to speak of refuses the first token too.
	strict, err := NewVerifier(VerifierConfig{Issuer: b.srv.URL, Audience: testAudience, Leeway: time.Nanosecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	requireCode(t, func() error { _, err := strict.Verify(t.Context(), within); return err }(), tokenlysis.EUNAUTHORIZED)
}

func TestVerifyES256AndKeyRotation(t *testing.T) {
	t.Parallel()
	ti := newTestIssuer(t, jose.ES256)
	v, err := NewVerifier(VerifierConfig{Issuer: ti.srv.URL, Audience: testAudience, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	claims := func() map[string]any {
		return map[string]any{"iss": ti.srv.URL, "aud": []string{"other", testAudience}, "sub": "u-9",
			"exp": time.Now().Add(time.Hour).Unix(), "roles": "user analyst"}
	}
	first := ti.sign(claims())
	p, err := v.Verify(t.Context(), first)
	if err != nil {
		t.Fatalf("Verify ES256: %v", err)
	}
	if p.Subject != "u-9" || !slices.Equal(p.Roles, []string{"user", "analyst"}) {
		t.Fatalf("Principal = %+v", p)
	}
	// The key set is cached: more tokens cost no fetch.
	for range 5 {
		if _, err := v.Verify(t.Context(), first); err != nil {
			t.Fatal(err)
		}
	}
	if n := ti.jwksHits.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times for one key, want 1", n)
	}

	ti.rotate()
	second := ti.sign(claims())
	// The unknown kid triggers a refresh (at most one per second), so the
	// new token is accepted within a short deadline.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err = v.Verify(t.Context(), second)
		if err == nil {
			break
		}
		requireCode(t, err, tokenlysis.EUNAUTHORIZED)
		if time.Now().After(deadline) {
			t.Fatalf("token signed with the rotated key still refused: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	hits := ti.jwksHits.Load()
	if hits < 2 || hits > 3 {
		t.Fatalf("JWKS fetched %d times across one rotation, want 2 or 3", hits)
	}
	// The retired key is no longer published: its tokens are refused.
	requireCode(t, func() error { _, err := v.Verify(t.Context(), first); return err }(), tokenlysis.EUNAUTHORIZED)

	// A flood of tokens with unknown kids does not hammer the issuer.
	before := ti.jwksHits.Load()
	bogusHeader := b64json(t, map[string]any{"alg": "ES256", "typ": "JWT", "kid": "nope"})
	bogus := bogusHeader + "." + b64json(t, claims()) + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 64))
	for range 50 {
		requireCode(t, func() error { _, err := v.Verify(t.Context(), bogus); return err }(), tokenlysis.EUNAUTHORIZED)
	}
	if n := ti.jwksHits.Load() - before; n > 1 {
		t.Fatalf("50 unknown-kid tokens caused %d JWKS fetches, want at most 1", n)
	}
}

func TestVerifyRSAAlgorithmMismatchWithKey(t *testing.T) {
	t.Parallel()
	// The issuer's key is published for RS256; a PS256 signature by the same
	// key must not be accepted because the key's alg pins RS256.
	ti := newTestIssuer(t, jose.RS256)
	v, err := NewVerifier(VerifierConfig{Issuer: ti.srv.URL, Audience: testAudience, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ti.mu.Lock()
	key := ti.key
	ti.mu.Unlock()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.PS256, Key: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(map[string]any{"iss": ti.srv.URL, "aud": testAudience, "sub": "x", "exp": time.Now().Add(time.Hour).Unix()})
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	requireCode(t, func() error { _, err := v.Verify(t.Context(), raw); return err }(), tokenlysis.EUNAUTHORIZED)
	// The same claims under RS256 pass, so the refusal is about the algorithm.
	var c map[string]any
	_ = json.Unmarshal(payload, &c)
	if _, err := v.Verify(t.Context(), ti.sign(c)); err != nil {
		t.Fatalf("RS256 token refused: %v", err)
	}
}

func TestVerifyRolesClaimPath(t *testing.T) {
	t.Parallel()
	ti := newTestIssuer(t, jose.ES256)
	v, err := NewVerifier(VerifierConfig{Issuer: ti.srv.URL, Audience: testAudience, RolesClaim: "realm_access.roles", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	raw := ti.sign(map[string]any{
		"iss": ti.srv.URL, "aud": testAudience, "sub": "kc-1", "exp": time.Now().Add(time.Hour).Unix(),
		"email": "kc@example.com", "preferred_username": "kc",
		"roles":        []string{"admin"}, // ignored: not the configured claim
		"realm_access": map[string]any{"roles": []string{"analyst", "offline_access"}},
	})
	p, err := v.Verify(t.Context(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Roles, []string{"analyst", "offline_access"}) {
		t.Fatalf("Roles = %v", p.Roles)
	}
	if p.Name != "kc" || p.Email != "kc@example.com" {
		t.Fatalf("Principal = %+v", p)
	}
}

func TestRolesFromClaims(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		claims string
		path   string
		want   []string
	}{
		{"array", `{"roles":["a","b"]}`, "roles", []string{"a", "b"}},
		{"space separated", `{"roles":" a  b "}`, "roles", []string{"a", "b"}},
		{"dotted path", `{"realm_access":{"roles":["x"]}}`, "realm_access.roles", []string{"x"}},
		{"deeper path", `{"resource_access":{"api":{"roles":["y","z"]}}}`, "resource_access.api.roles", []string{"y", "z"}},
		{"literal key with dots", `{"https://example.com/roles":["n"]}`, "https://example.com/roles", []string{"n"}},
		{"missing", `{"sub":"s"}`, "roles", nil},
		{"missing intermediate", `{"realm_access":"nope"}`, "realm_access.roles", nil},
		{"non-string members dropped", `{"roles":["a",1,null,"",{"b":1},"c"]}`, "roles", []string{"a", "c"}},
		{"wrong type", `{"roles":42}`, "roles", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var claims map[string]any
			if err := json.Unmarshal([]byte(tt.claims), &claims); err != nil {
				t.Fatal(err)
			}
			if got := rolesFromClaims(claims, tt.path); !slices.Equal(got, tt.want) {
				t.Fatalf("rolesFromClaims = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestVerifyDiscoveryFailureThenRecovery(t *testing.T) {
	t.Parallel()
	ti := newTestIssuer(t, jose.ES256)
	ti.setDown(true)
	v, err := NewVerifier(VerifierConfig{Issuer: ti.srv.URL, Audience: testAudience, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if n := ti.discoveryHits.Load(); n != 0 {
		t.Fatalf("NewVerifier performed discovery (%d requests); it must be lazy", n)
	}
	raw := ti.sign(map[string]any{"iss": ti.srv.URL, "aud": testAudience, "sub": "u", "exp": time.Now().Add(time.Hour).Unix()})

	for range 10 {
		requireCode(t, func() error { _, err := v.Verify(t.Context(), raw); return err }(), tokenlysis.EUNAVAILABLE)
	}
	if n := ti.discoveryHits.Load(); n != 1 {
		t.Fatalf("10 quick calls made %d discovery requests, want 1", n)
	}

	ti.setDown(false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := v.Verify(t.Context(), raw)
		if err == nil {
			break
		}
		requireCode(t, err, tokenlysis.EUNAVAILABLE)
		if time.Now().After(deadline) {
			t.Fatalf("verifier did not recover after the issuer came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := ti.discoveryHits.Load(); n < 2 || n > 7 {
		t.Fatalf("discovery requests = %d, want a retry about once per second", n)
	}
}

func TestVerifyIssuerUnreachable(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	v, err := NewVerifier(VerifierConfig{Issuer: url, Audience: testAudience, HTTPClient: &http.Client{Timeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	te := requireCode(t, func() error { _, err := v.Verify(ctx, "a.b.c"); return err }(), tokenlysis.EUNAVAILABLE)
	if strings.Contains(te.Message, "127.0.0.1") {
		t.Fatalf("message leaks the issuer address: %q", te.Message)
	}
}

func TestNewVerifierConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  VerifierConfig
	}{
		{"no issuer", VerifierConfig{Audience: "a"}},
		{"no audience", VerifierConfig{Issuer: "https://issuer.example"}},
		{"negative leeway", VerifierConfig{Issuer: "https://issuer.example", Audience: "a", Leeway: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewVerifier(tt.cfg); err == nil {
				t.Fatal("want error")
			}
		})
	}
}

// BenchmarkVerify measures Verify on a valid RS256 token with the key
// cached, the cost the API pays on every request.
func BenchmarkVerify(b *testing.B) {
	tb := setup(b)
	raw := tb.mint(b, TokenRequest{Subject: "u-1", Email: "a@example.com", Roles: []string{"user"}, TTL: time.Hour})
	ctx := context.Background()
	if _, err := tb.verifier.Verify(ctx, raw); err != nil { // discovery + JWKS once
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tb.verifier.Verify(ctx, raw); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := tb.verifier.Verify(ctx, raw); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
	})
}

func TestVerifyConcurrentFirstUse(t *testing.T) {
	t.Parallel()
	ti := newTestIssuer(t, jose.ES256)
	v, err := NewVerifier(VerifierConfig{Issuer: ti.srv.URL, Audience: testAudience, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	raw := ti.sign(map[string]any{"iss": ti.srv.URL, "aud": testAudience, "sub": "u", "exp": time.Now().Add(time.Hour).Unix()})
	errs := make(chan error, 20)
	for range cap(errs) {
		go func() {
			_, err := v.Verify(t.Context(), raw)
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Errorf("concurrent Verify: %v", err)
		}
	}
	if d, k := ti.discoveryHits.Load(), ti.jwksHits.Load(); d != 1 || k != 1 {
		t.Fatalf("20 concurrent first calls: %d discovery and %d JWKS requests, want 1 and 1", d, k)
	}
}

// TestCachedTokenStillExpires: the verified-token cache never outlives the
// token's expiry (plus leeway).
func TestCachedTokenStillExpires(t *testing.T) {
	key, err := LoadOrCreateDevKey(t.TempDir() + "/k.pem")
	if err != nil {
		t.Fatal(err)
	}
	var iss *DevIssuer
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/jwks") {
			iss.JWKSHandler()(w, r)
			return
		}
		iss.DiscoveryHandler()(w, r)
	}))
	defer srv.Close()
	iss = NewDevIssuer(key, srv.URL, "aud")
	v, err := NewVerifier(VerifierConfig{Issuer: srv.URL, Audience: "aud", Leeway: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := iss.Mint(TokenRequest{Subject: "s", TTL: 1500 * time.Millisecond})
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("second verification (cached): %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := v.Verify(context.Background(), tok)
		if tokenlysis.ErrorCode(err) == tokenlysis.EUNAUTHORIZED {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("an expired token was still accepted (err %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// nbf and iat get the same small leeway as exp: a token not valid yet, or
// issued in the future, is refused beyond it.
func TestVerifyNotBeforeAndIssuedAt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, tc := range []struct {
		name  string
		claim string
		at    time.Duration
		ok    bool
	}{
		{"nbf within the leeway", "nbf", 10 * time.Second, true},
		{"nbf beyond it", "nbf", 4 * time.Minute, false},
		{"iat within the leeway", "iat", 10 * time.Second, true},
		{"iat in the future", "iat", time.Hour, false},
	} {
		raw := mintWith(t, b, func(c map[string]any) { c[tc.claim] = time.Now().Add(tc.at).Unix() })
		_, err := b.verifier.Verify(t.Context(), raw)
		if tc.ok && err != nil {
			t.Errorf("%s: refused: %v", tc.name, err)
		}
		if !tc.ok {
			if te := requireCode(t, err, tokenlysis.EUNAUTHORIZED); te.Message != "invalid token" {
				t.Errorf("%s: message %q", tc.name, te.Message)
			}
		}
	}
}

// A key the issuer withdraws from its key set stops being trusted once the
// cached set is older than KeysMaxAge, although no token names an unknown
// key (an issuer publishing its next key beside the current one rotates
// without any).
func TestWithdrawnKeyIsDroppedAfterKeysMaxAge(t *testing.T) {
	t.Parallel()
	ti := newTestIssuer(t, jose.RS256)
	v, err := NewVerifier(VerifierConfig{Issuer: ti.srv.URL, Audience: testAudience, KeysMaxAge: 1500 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	claims := func(sub string) map[string]any {
		return map[string]any{"iss": ti.srv.URL, "aud": testAudience, "sub": sub, "exp": time.Now().Add(time.Hour).Unix()}
	}
	first, later := ti.sign(claims("first")), ti.sign(claims("later")) // both signed with key A
	if _, err := v.Verify(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	ti.rotate() // the key set now holds only key B
	if _, err := v.Verify(t.Context(), later); err != nil {
		t.Fatalf("key A refused while the cached set is fresh: %v", err)
	}
	time.Sleep(1600 * time.Millisecond)
	requireCode(t, func() error { _, err := v.Verify(t.Context(), later); return err }(), tokenlysis.EUNAUTHORIZED)
}
