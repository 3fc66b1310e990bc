package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// testIssuer is an OIDC issuer built independently of DevIssuer: it signs
// with the algorithm it was created for, can rotate its key and can be taken
// down, and counts the requests it serves.
type testIssuer struct {
	t   testing.TB
	srv *httptest.Server
	alg jose.SignatureAlgorithm

	mu   sync.Mutex
	key  jose.JSONWebKey // current signing key (private)
	down bool

	discoveryHits atomic.Int64
	jwksHits      atomic.Int64
}

func newTestIssuer(t testing.TB, alg jose.SignatureAlgorithm) *testIssuer {
	t.Helper()
	ti := &testIssuer{t: t, alg: alg}
	ti.key = ti.newKey()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		ti.discoveryHits.Add(1)
		if ti.isDown() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, map[string]any{
			"issuer":                                ti.srv.URL,
			"jwks_uri":                              ti.srv.URL + "/keys",
			"id_token_signing_alg_values_supported": []string{string(alg)},
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
		})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		ti.jwksHits.Add(1)
		if ti.isDown() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		ti.mu.Lock()
		pub := ti.key.Public()
		ti.mu.Unlock()
		writeJSON(w, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	})
	ti.srv = httptest.NewServer(mux)
	t.Cleanup(ti.srv.Close)
	return ti
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (ti *testIssuer) newKey() jose.JSONWebKey {
	ti.t.Helper()
	var priv crypto.Signer
	var err error
	switch ti.alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.RS256, jose.PS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		ti.t.Fatalf("testIssuer: unsupported alg %s", ti.alg)
	}
	if err != nil {
		ti.t.Fatalf("generate key: %v", err)
	}
	k := jose.JSONWebKey{Key: priv, Algorithm: string(ti.alg), Use: "sig"}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		ti.t.Fatalf("thumbprint: %v", err)
	}
	k.KeyID = string(ti.alg) + "-" + base64.RawURLEncoding.EncodeToString(tp)[:16]
	return k
}

func (ti *testIssuer) isDown() bool {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	return ti.down
}

func (ti *testIssuer) setDown(down bool) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	ti.down = down
}

// rotate replaces the signing key; the JWKS then publishes only the new one.
func (ti *testIssuer) rotate() {
	k := ti.newKey()
	ti.mu.Lock()
	defer ti.mu.Unlock()
	ti.key = k
}

// sign signs claims with the current key.
func (ti *testIssuer) sign(claims map[string]any) string {
	ti.t.Helper()
	ti.mu.Lock()
	key := ti.key
	ti.mu.Unlock()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: ti.alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		ti.t.Fatalf("signer: %v", err)
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		ti.t.Fatalf("sign: %v", err)
	}
	return raw
}
