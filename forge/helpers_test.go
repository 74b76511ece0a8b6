package forge_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	appID          = "ari:cloud:ecosystem::app/8db33809-1f32-48bb-8c52-5877dab48107"
	otherAppID     = "ari:cloud:ecosystem::app/00000000-1111-2222-3333-444444444444"
	installationID = "ari:cloud:ecosystem::installation/0a3a7799-53ae-4a5b-9e7e-03338980abb5"
	cloudID        = "d0d52620-3203-4cfa-8db5-f2587155f0dd"
	apiBaseURL     = "https://api.atlassian.com/ex/jira/" + cloudID
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// keyPair is an RSA signing key with its kid. Keys are generated once per
// test binary: RSA generation is the slowest part of these tests.
type keyPair struct {
	kid string
	key *rsa.PrivateKey
}

var (
	keysMu  sync.Mutex
	keyPool = map[int]*rsa.PrivateKey{}
)

// testKey returns the i-th shared test key under kid, generating it on
// first use.
func testKey(t testing.TB, i int, kid string) keyPair {
	t.Helper()
	keysMu.Lock()
	defer keysMu.Unlock()
	k := keyPool[i]
	if k == nil {
		var err error
		if k, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
		keyPool[i] = k
	}
	return keyPair{kid: kid, key: k}
}

// jwk is the JSON form of a public key.
func jwk(k keyPair) map[string]any {
	pub := &k.key.PublicKey
	return map[string]any{
		"kty": "RSA", "kid": k.kid, "use": "sig", "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
}

// keyServer serves a JWK Set on 127.0.0.1 and counts its fetches.
type keyServer struct {
	srv     *httptest.Server
	mu      sync.Mutex
	keys    []map[string]any
	down    bool
	fetches atomic.Int64
}

func newKeyServer(t testing.TB, keys ...keyPair) *keyServer {
	t.Helper()
	ks := &keyServer{}
	ks.set(keys...)
	ks.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ks.fetches.Add(1)
		ks.mu.Lock()
		down, doc := ks.down, map[string]any{"keys": ks.keys}
		ks.mu.Unlock()
		if down {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(doc)
	}))
	t.Cleanup(ks.srv.Close)
	return ks
}

func (ks *keyServer) url() string { return ks.srv.URL + "/.well-known/jwks.json" }

func (ks *keyServer) set(keys ...keyPair) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.keys = nil
	for _, k := range keys {
		ks.keys = append(ks.keys, jwk(k))
	}
}

func (ks *keyServer) setDown(down bool) {
	ks.mu.Lock()
	ks.down = down
	ks.mu.Unlock()
}

// clock is a manual clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: testNow} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fitClaims are the claims of a valid FIT issued at testNow.
func fitClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss": "forge/invocation-token",
		"aud": appID,
		"iat": testNow.Unix(),
		"nbf": testNow.Unix(),
		"exp": testNow.Add(25 * time.Second).Unix(),
		"jti": "d8a496253ec8c18a54631e4c82cbedd5d0ae8570",
		"app": map[string]any{
			"id":             appID,
			"version":        "16",
			"appVersion":     "16.0.1",
			"installationId": installationID,
			"apiBaseUrl":     apiBaseURL,
			"environment":    map[string]any{"type": "PRODUCTION", "id": "ari:cloud:ecosystem::environment/8db33809/aa911f10"},
			"module":         map[string]any{"type": "jira:issuePanel", "key": "checklist-panel"},
			"installation": map[string]any{
				"id":       installationID,
				"contexts": []any{map[string]any{"name": "jira", "apiBaseUrl": apiBaseURL}},
			},
		},
		"context": map[string]any{
			"cloudId":   cloudID,
			"siteUrl":   "https://acme.atlassian.net",
			"moduleKey": "checklist-panel",
			"extension": map[string]any{"type": "jira:issuePanel", "issue": map[string]any{"key": "DEMO-1"}},
		},
		"principal": "655362:312d3308-8954-42b0-aa38-771a10c88656",
	}
}

func sign(t testing.TB, k keyPair, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	if k.kid != "" {
		tok.Header["kid"] = k.kid
	}
	s, err := tok.SignedString(k.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
