package auth

import (
	"cmp"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// DefaultTokenTTL is the lifetime of a minted token when TokenRequest.TTL is
// zero.
const DefaultTokenTTL = time.Hour

// DevKey is the RSA key the development issuer signs with.
type DevKey struct {
	private *rsa.PrivateKey
	kid     string
}

// KeyID returns the key's "kid": its RFC 7638 SHA-256 thumbprint, so it is
// stable across restarts for the same key.
func (k *DevKey) KeyID() string { return k.kid }

// Public returns the public half of the key.
func (k *DevKey) Public() *rsa.PublicKey { return &k.private.PublicKey }

// LoadOrCreateDevKey returns the RSA-2048 key stored as PEM at path,
// creating it (mode 0600, parent directories 0700) when the file does not
// exist. Reusing the key across restarts keeps minted tokens valid. Two
// processes starting at once end up with the same key.
func LoadOrCreateDevKey(path string) (*DevKey, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createDevKey(path)
	} else if err != nil {
		return nil, fmt.Errorf("dev key %s: %w", path, err)
	}
	return parseDevKey(path, data)
}

func createDevKey(path string) (*DevKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("dev key: generate: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("dev key: encode: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("dev key %s: %w", path, err)
	}
	// Write a temporary file, then link it into place: the link fails if
	// another process created the key meanwhile, and a reader never sees a
	// partly written file.
	tmp, err := os.CreateTemp(dir, ".dev-key-*")
	if err != nil {
		return nil, fmt.Errorf("dev key %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("dev key %s: %w", path, err)
	}
	if err := pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("dev key %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("dev key %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		return LoadOrCreateDevKey(path) // lost the race: use the winner's key
	} else if err != nil {
		return nil, fmt.Errorf("dev key %s: %w", path, err)
	}
	return newDevKey(priv)
}

func parseDevKey(path string, data []byte) (*DevKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("dev key %s: no PEM block", path)
	}
	var priv *rsa.PrivateKey
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("dev key %s: %w", path, err)
		}
		var ok bool
		if priv, ok = k.(*rsa.PrivateKey); !ok {
			return nil, fmt.Errorf("dev key %s: want an RSA key, got %T", path, k)
		}
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("dev key %s: %w", path, err)
		}
		priv = k
	default:
		return nil, fmt.Errorf("dev key %s: unexpected PEM block %q", path, block.Type)
	}
	if priv.N.BitLen() < 2048 {
		return nil, fmt.Errorf("dev key %s: RSA key of %d bits, want at least 2048", path, priv.N.BitLen())
	}
	return newDevKey(priv)
}

func newDevKey(priv *rsa.PrivateKey) (*DevKey, error) {
	jwk := jose.JSONWebKey{Key: &priv.PublicKey}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("dev key: thumbprint: %w", err)
	}
	return &DevKey{private: priv, kid: base64.RawURLEncoding.EncodeToString(tp)}, nil
}

// DevIssuer is a minimal OIDC issuer for development: it mints tokens and
// publishes what a relying party needs to verify them. It has no login flow;
// whoever can call Mint decides who the caller is, so it must never be
// enabled in production.
type DevIssuer struct {
	key       *DevKey
	issuerURL string
	audience  string
	signer    jose.Signer
	signerErr error
	discovery []byte
	jwks      []byte
}

// TokenRequest describes the token to mint. TTL zero means DefaultTokenTTL.
type TokenRequest struct {
	Subject string
	Email   string
	Name    string
	Roles   []string
	TTL     time.Duration
}

// NewDevIssuer returns an issuer whose tokens carry iss issuerURL and aud
// audience and are signed (RS256) with key. Its discovery document and key
// set live at {issuerURL}/.well-known/openid-configuration and
// {issuerURL}/oauth/jwks (without a doubled slash when issuerURL ends with
// one); the caller mounts the handlers there.
func NewDevIssuer(key *DevKey, issuerURL, audience string) *DevIssuer {
	// iss stays exactly as given (a relying party compares it byte for
	// byte); paths below it are joined without doubling the slash.
	base := strings.TrimSuffix(issuerURL, "/")
	d := &DevIssuer{key: key, issuerURL: issuerURL, audience: audience}
	d.signer, d.signerErr = jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key.private, KeyID: key.kid}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	// Both documents are fixed: encode them once. Encoding maps and a
	// public RSA key cannot fail.
	d.discovery, _ = json.Marshal(map[string]any{
		"issuer":                                issuerURL,
		"jwks_uri":                              base + "/oauth/jwks",
		"id_token_signing_alg_values_supported": []string{string(jose.RS256)},
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public"},
		"claims_supported":                      []string{"iss", "aud", "sub", "iat", "nbf", "exp", "email", "name", "roles"},
	})
	d.jwks, _ = json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: &key.private.PublicKey, KeyID: key.kid, Algorithm: string(jose.RS256), Use: "sig",
	}}})
	return d
}

// DiscoveryHandler serves the OpenID Provider configuration document.
func (d *DevIssuer) DiscoveryHandler() http.HandlerFunc {
	return staticJSON(d.discovery)
}

// JWKSHandler serves the public key set.
func (d *DevIssuer) JWKSHandler() http.HandlerFunc {
	return staticJSON(d.jwks)
}

func staticJSON(body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Write(body)
	}
}

// Mint returns a signed RS256 JWT for req with iss, aud, sub, iat, nbf, exp
// and, when set, email, name and a top-level roles claim. It fails when
// Subject is empty. A negative TTL mints an already expired token (useful in
// tests).
func (d *DevIssuer) Mint(req TokenRequest) (string, error) {
	if req.Subject == "" {
		return "", errors.New("auth: mint: subject is required")
	}
	now := time.Now().Truncate(time.Second)
	claims := map[string]any{
		"iss": d.issuerURL,
		"aud": d.audience,
		"sub": req.Subject,
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(cmp.Or(req.TTL, DefaultTokenTTL)).Unix(),
	}
	if req.Email != "" {
		claims["email"] = req.Email
	}
	if req.Name != "" {
		claims["name"] = req.Name
	}
	if req.Roles != nil {
		claims["roles"] = req.Roles
	}
	return d.sign(claims)
}

// sign signs arbitrary claims with the issuer's key.
func (d *DevIssuer) sign(claims map[string]any) (string, error) {
	if d.signerErr != nil {
		return "", fmt.Errorf("auth: signer: %w", d.signerErr)
	}
	raw, err := jwt.Signed(d.signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("auth: mint: %w", err)
	}
	return raw, nil
}
