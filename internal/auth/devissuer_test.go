package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestLoadOrCreateDevKey(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nested", "dir", "dev-key.pem")

	k1, err := LoadOrCreateDevKey(path)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("key file not written: %v", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("key file mode = %o, want 600", perm)
	}
	if k1.Public().N.BitLen() != 2048 {
		t.Fatalf("key size = %d bits, want 2048", k1.Public().N.BitLen())
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	k2, err := LoadOrCreateDevKey(path)
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	if !k1.Public().Equal(k2.Public()) || k1.KeyID() != k2.KeyID() {
		t.Fatal("second call did not reuse the stored key")
	}
	second, _ := os.ReadFile(path)
	if !bytes.Equal(first, second) {
		t.Fatal("key file rewritten on reuse")
	}

	// Distinct keys get distinct kids (the kid is a thumbprint).
	other, err := LoadOrCreateDevKey(filepath.Join(t.TempDir(), "other.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if k1.KeyID() == other.KeyID() {
		t.Fatal("two different keys share a kid")
	}
}

func TestLoadOrCreateDevKeyRefusesGarbage(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bad.pem")
	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadOrCreateDevKey(path)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("want an error naming %s, got %v", path, err)
	}
}

func TestDevIssuerDiscoveryAndJWKS(t *testing.T) {
	t.Parallel()
	b := setup(t)

	resp, err := http.Get(b.srv.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("discovery: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var doc struct {
		Issuer   string   `json:"issuer"`
		JWKSURI  string   `json:"jwks_uri"`
		Algs     []string `json:"id_token_signing_alg_values_supported"`
		Subjects []string `json:"subject_types_supported"`
		Response []string `json:"response_types_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.Issuer != b.srv.URL || doc.JWKSURI != b.srv.URL+"/oauth/jwks" ||
		len(doc.Algs) != 1 || doc.Algs[0] != "RS256" || len(doc.Subjects) == 0 || len(doc.Response) == 0 {
		t.Fatalf("discovery document = %+v", doc)
	}

	resp2, err := http.Get(doc.JWKSURI)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp2.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("JWKS has %d keys", len(set.Keys))
	}
	k := set.Keys[0]
	if !k.IsPublic() || k.KeyID != b.key.KeyID() || k.Algorithm != "RS256" || k.Use != "sig" {
		t.Fatalf("JWKS key: public=%v kid=%q alg=%q use=%q", k.IsPublic(), k.KeyID, k.Algorithm, k.Use)
	}

	post, err := http.Post(doc.JWKSURI, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	post.Body.Close()
	if post.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST jwks = %d", post.StatusCode)
	}
}

func TestDevIssuerMintClaims(t *testing.T) {
	t.Parallel()
	b := setup(t)
	before := time.Now().Add(-time.Second).Unix()
	raw := b.mint(t, TokenRequest{Subject: "s-1", Email: "e@example.com", Name: "N", Roles: []string{"admin"}, TTL: 10 * time.Minute})

	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	var header struct{ Alg, Kid, Typ string }
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if err := json.Unmarshal(hb, &header); err != nil {
		t.Fatal(err)
	}
	if header.Alg != "RS256" || header.Kid != b.key.KeyID() || header.Typ != "JWT" {
		t.Fatalf("header = %+v", header)
	}
	var c struct {
		Iss, Sub, Email, Name string
		Aud                   any
		Iat, Nbf, Exp         int64
		Roles                 []string
	}
	pb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if err := json.Unmarshal(pb, &c); err != nil {
		t.Fatal(err)
	}
	if c.Iss != b.srv.URL || c.Aud != testAudience || c.Sub != "s-1" || c.Email != "e@example.com" || c.Name != "N" ||
		len(c.Roles) != 1 || c.Roles[0] != "admin" {
		t.Fatalf("claims = %+v", c)
	}
	if c.Iat < before || c.Nbf != c.Iat || c.Exp != c.Iat+600 {
		t.Fatalf("times: iat=%d nbf=%d exp=%d (before=%d)", c.Iat, c.Nbf, c.Exp, before)
	}

	if _, err := b.issuer.Mint(TokenRequest{Roles: []string{"admin"}}); err == nil {
		t.Fatal("Mint without subject succeeded")
	}
	// The default TTL is positive: such a token verifies.
	p, err := b.verifier.Verify(t.Context(), b.mint(t, TokenRequest{Subject: "s-2"}))
	if err != nil || p.Subject != "s-2" || len(p.Roles) != 0 {
		t.Fatalf("default TTL token: %+v, %v", p, err)
	}
}

func TestDevIssuerTrailingSlash(t *testing.T) {
	t.Parallel()
	b := setup(t) // for its key only
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	issuerURL := srv.URL + "/"
	di := NewDevIssuer(b.key, issuerURL, testAudience)
	mux.Handle("/.well-known/openid-configuration", di.DiscoveryHandler())
	mux.Handle("/oauth/jwks", di.JWKSHandler())

	v, err := NewVerifier(VerifierConfig{Issuer: issuerURL, Audience: testAudience, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := di.Mint(TokenRequest{Subject: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), raw); err != nil {
		t.Fatalf("issuer with a trailing slash: %v", err)
	}
}
