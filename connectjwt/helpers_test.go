package connectjwt_test

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/connectjwt"
)

// now is the fixed clock of the tests: 2026-01-01T00:00:00Z.
var now = time.Unix(1767225600, 0)

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

var secret = []byte("a-tenant-shared-secret-of-reasonable-length")

// validClaims are the claims of a typical iframe token, valid at now.
func validClaims() connectjwt.Claims {
	return connectjwt.Claims{
		Issuer:    "jira:0b1f2c3d-4e5f-6789-abcd-ef0123456789",
		Subject:   "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077",
		IssuedAt:  now.Unix() - 10,
		ExpiresAt: now.Unix() + 170,
		QSH:       "be16910858a41fd19ea5c1b4e9decca9a784d1024cb00b2158defe2f29dc86dd",
		Context:   []byte(`{"user":{"accountId":"557058:f58131cb-b67d-43c7-b30d-6b58d40bd077","userKey":"admin","userId":"admin"},"license":{"active":true}}`),
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// hsToken builds an HS256-signed token from raw header and payload JSON, so
// that tests can craft what SignHS256 would never produce.
func hsToken(header, payload string, key []byte) string {
	in := b64(header) + "." + b64(payload)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func mustSignHS(t testing.TB, c connectjwt.Claims, key []byte) string {
	t.Helper()
	tok, err := connectjwt.SignHS256(c, key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func mustParse(t testing.TB, tok string) *connectjwt.Token {
	t.Helper()
	pt, err := connectjwt.Parse(tok)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return pt
}

// Key generation takes a while, so each size is made once per test run.
var (
	rsaKey2048 = sync.OnceValue(func() *rsa.PrivateKey { return genKey(2048) })
	rsaKey1024 = sync.OnceValue(func() *rsa.PrivateKey { return genKey(1024) })
	rsaKeyB    = sync.OnceValue(func() *rsa.PrivateKey { return genKey(2048) })
)

func genKey(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

func publicPEM(t testing.TB, k *rsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// keyServer is a real HTTP key server on 127.0.0.1 that counts requests.
type keyServer struct {
	*httptest.Server
	requests atomic.Int64
	mu       sync.Mutex
	bodies   map[string][]byte // path without leading '/' → body
	status   int               // when non-zero, every answer has this status
	delay    time.Duration     // wait before answering (or until the request ends)
	gate     chan struct{}     // when non-nil, answers wait until it is closed
}

func newKeyServer(t testing.TB) *keyServer {
	t.Helper()
	ks := &keyServer{bodies: make(map[string][]byte)}
	ks.Server = httptest.NewServer(http.HandlerFunc(ks.serve))
	t.Cleanup(ks.Close)
	return ks
}

func (ks *keyServer) put(kid string, body []byte) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.bodies[kid] = body
}

func (ks *keyServer) serve(w http.ResponseWriter, r *http.Request) {
	ks.requests.Add(1)
	ks.mu.Lock()
	body, ok := ks.bodies[strings.TrimPrefix(r.URL.Path, "/")]
	status, delay, gate := ks.status, ks.delay, ks.gate
	ks.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	switch {
	case status != 0:
		http.Error(w, http.StatusText(status), status)
	case !ok:
		http.NotFound(w, r)
	default:
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(body)
	}
}

// closedURL returns the URL of a 127.0.0.1 port nobody listens on.
func closedURL(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}
