package server_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/connectjwt"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/qsh"
	"github.com/tenon-dev/tenon/server"
	"github.com/tenon-dev/tenon/sqlite"
)

const (
	appKey     = "com.example.tenon-test"
	appBaseURL = "https://app.example.test/app"
	basePath   = "/app"
	kid        = "test-key-1"
	siteURL    = "https://acme.atlassian.net"
)

// testDescriptor is a descriptor as a developer writes it; the baseUrl is
// replaced at serve time.
const testDescriptor = `{
  "key": "com.example.tenon-test",
  "name": "Tenon test app",
  "baseUrl": "https://placeholder.example",
  "authentication": {"type": "jwt"},
  "lifecycle": {
    "installed": "/installed",
    "uninstalled": "/uninstalled",
    "enabled": "/enabled",
    "disabled": "/disabled"
  },
  "apiMigrations": {"signed-install": true, "context-qsh": true},
  "enableLicensing": true,
  "scopes": ["READ"],
  "modules": {
    "webhooks": [{"event": "jira:issue_created", "url": "/hooks/issue?id={issue.id}"}],
    "generalPages": [{"key": "main", "url": "/page?lic={lic}", "name": {"value": "Main"}}]
  }
}`

// RSA keys are slow to generate; every test shares these.
var (
	installKey = sync.OnceValue(func() *rsa.PrivateKey { return mustRSAKey() })
	otherKey   = sync.OnceValue(func() *rsa.PrivateKey { return mustRSAKey() })
)

func mustRSAKey() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

// clock is a settable clock shared by the server, the store and the
// tokens the tests sign.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// logBuffer collects log output from concurrent requests.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newKeyServer serves the PEM of installKey under kid, 404 otherwise.
func newKeyServer(t testing.TB) *httptest.Server {
	der, err := x509.MarshalPKIXPublicKey(&installKey().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	ks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/"+kid {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(pemBytes)
	}))
	t.Cleanup(ks.Close)
	return ks
}

func mustKeySource(t testing.TB, url string, timeout time.Duration) *connectjwt.KeyServer {
	ks, err := connectjwt.NewKeyServer(url, connectjwt.KeyServerOptions{Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// calls records what app handlers saw.
type calls struct {
	mu sync.Mutex
	n  int
	p  *tenon.Principal
}

func (c *calls) record(p *tenon.Principal) {
	c.mu.Lock()
	c.n++
	c.p = p
	c.mu.Unlock()
}

func (c *calls) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func (c *calls) last() *tenon.Principal {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.p
}

type env struct {
	t     testing.TB
	srv   *server.Server
	ts    *httptest.Server
	store *sqlite.Store
	clock *clock
	logs  *logBuffer
	calls *calls
}

type envOption func(*server.Config)

// newEnv starts the app with a real SQLite store, a real key server and
// the test routes, served on 127.0.0.1.
func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	clk := newClock()
	logs := &logBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	kr, err := keyring.New(bytes.Repeat([]byte{7}, keyring.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(filepath.Join(t.TempDir(), "tenon.db"), sqlite.Options{SecretBox: kr, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })

	ks := newKeyServer(t)
	cfg := server.Config{
		Descriptor:   []byte(testDescriptor),
		BaseURL:      appBaseURL,
		Store:        store,
		InstallKeys:  mustKeySource(t, ks.URL, 2*time.Second),
		AllowedHosts: []string{"*.atlassian.net"},
		Now:          clk.Now,
		Logger:       logger,
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, store: store, clock: clk, logs: logs, calls: &calls{}}
	e.routes()
	e.ts = httptest.NewServer(srv)
	t.Cleanup(e.ts.Close)
	return e
}

func (e *env) routes() {
	ok := func(w http.ResponseWriter, r *http.Request) error {
		e.calls.record(tenon.PrincipalFrom(r.Context()))
		_, err := io.WriteString(w, "ok")
		return err
	}
	e.srv.Module("GET /page", ok)
	e.srv.Module("POST /form", func(w http.ResponseWriter, r *http.Request) error {
		e.calls.record(tenon.PrincipalFrom(r.Context()))
		_, err := io.WriteString(w, "field="+r.FormValue("field"))
		return err
	})
	e.srv.Module("POST /upload", func(w http.ResponseWriter, r *http.Request) error {
		e.calls.record(tenon.PrincipalFrom(r.Context()))
		_, err := io.Copy(io.Discard, r.Body)
		return err
	})
	e.srv.Module("GET /licensed", ok, server.RequireLicense())
	e.srv.Module("GET /fail", func(w http.ResponseWriter, r *http.Request) error {
		return fmt.Errorf("database on fire: secret=%s", "do-not-show")
	})
	e.srv.Module("GET /missing", func(w http.ResponseWriter, r *http.Request) error {
		return tenon.Errorf(tenon.ENOTFOUND, "No such issue.")
	})
	e.srv.Module("GET /panic", func(w http.ResponseWriter, r *http.Request) error {
		panic("boom")
	})
	e.srv.Module("GET /data", func(w http.ResponseWriter, r *http.Request) error {
		p := tenon.PrincipalFrom(r.Context())
		e.calls.record(p)
		return p.Data().Put(r.Context(), "greeting", map[string]string{"hello": p.AccountID})
	})
	e.srv.API("/api/items", ok)
	e.srv.API("GET /api/licensed", ok, server.RequireLicense())
	e.srv.Webhook("/hooks/issue?id={issue.id}", ok)
	e.srv.Public("GET /health", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "healthy")
	}))
}

// url returns the absolute URL of an app path (relative to the base path).
func (e *env) url(pathQuery string) string { return e.ts.URL + basePath + pathQuery }

// installClaims are the claims the product signs for a lifecycle call.
func (e *env) lifecycleClaims(clientKey, event string) connectjwt.Claims {
	now := e.clock.Now()
	return connectjwt.Claims{
		Issuer:    clientKey,
		Audience:  connectjwt.Audience{appBaseURL},
		IssuedAt:  now.Unix(),
		ExpiresAt: now.Add(3 * time.Minute).Unix(),
		QSH:       qsh.Hash(http.MethodPost, basePath+"/"+event, "", basePath),
	}
}

func signRS256(t testing.TB, c connectjwt.Claims, keyID string, key *rsa.PrivateKey) string {
	t.Helper()
	tok, err := connectjwt.SignRS256(c, keyID, key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func signHS256(t testing.TB, c connectjwt.Claims, secret string) string {
	t.Helper()
	tok, err := connectjwt.SignHS256(c, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// installToken is a valid signed-install token for clientKey and event.
func (e *env) installToken(clientKey, event string) string {
	return signRS256(e.t, e.lifecycleClaims(clientKey, event), kid, installKey())
}

func lifecycleBody(clientKey, secret string, mods ...func(map[string]any)) []byte {
	m := map[string]any{
		"key":            appKey,
		"clientKey":      clientKey,
		"sharedSecret":   secret,
		"baseUrl":        siteURL,
		"productType":    "jira",
		"description":    "Atlassian JIRA at " + siteURL,
		"eventType":      "installed",
		"futureField":    map[string]any{"kept": true},
		"serverVersion":  "100",
		"pluginsVersion": "1001",
	}
	for _, f := range mods {
		f(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

type response struct {
	status int
	header http.Header
	body   string
}

func (e *env) do(req *http.Request) response {
	e.t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// lifecycle posts body to a lifecycle route with token in the
// Authorization header (none when token is "").
func (e *env) lifecycle(event string, body []byte, token string) response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url("/"+event), bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "JWT "+token)
	}
	return e.do(req)
}

// install installs clientKey with secret and fails the test otherwise.
func (e *env) install(clientKey, secret string) {
	e.t.Helper()
	r := e.lifecycle("installed", lifecycleBody(clientKey, secret), e.installToken(clientKey, "installed"))
	if r.status != http.StatusNoContent {
		e.t.Fatalf("install %s: status %d: %s", clientKey, r.status, r.body)
	}
}

// tenantToken signs an HS256 token for a request to pathQuery (relative
// to the base path).
func (e *env) tenantToken(clientKey, secret, method, pathQuery string, mods ...func(*connectjwt.Claims)) string {
	path, query, _ := strings.Cut(pathQuery, "?")
	now := e.clock.Now()
	c := connectjwt.Claims{
		Issuer:    clientKey,
		Subject:   "557058:user-1",
		IssuedAt:  now.Unix(),
		ExpiresAt: now.Add(3 * time.Minute).Unix(),
		QSH:       qsh.Hash(method, basePath+path, query, basePath),
	}
	for _, f := range mods {
		if f != nil {
			f(&c)
		}
	}
	return signHS256(e.t, c, secret)
}

// contextToken signs a context JWT (qsh "context-qsh").
func (e *env) contextToken(clientKey, secret string, context string) string {
	now := e.clock.Now()
	c := connectjwt.Claims{
		Issuer:    clientKey,
		Subject:   "557058:user-1",
		IssuedAt:  now.Unix(),
		ExpiresAt: now.Add(15 * time.Minute).Unix(),
		QSH:       qsh.ContextQSH,
	}
	if context != "" {
		c.Context = json.RawMessage(context)
	}
	return signHS256(e.t, c, secret)
}

// get requests pathQuery with the token in the query.
func (e *env) get(pathQuery, token string) response {
	e.t.Helper()
	u := e.url(pathQuery)
	if token != "" {
		sep := "?"
		if strings.Contains(pathQuery, "?") {
			sep = "&"
		}
		u += sep + "jwt=" + token
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.do(req)
}

// request sends method pathQuery with the token in the Authorization header.
func (e *env) request(method, pathQuery, token string, body io.Reader, header ...string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url(pathQuery), body)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "JWT "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return e.do(req)
}

// snapshot renders every stored installation, secrets included, so a test
// can prove a refused request changed nothing.
func (e *env) snapshot() string {
	e.t.Helper()
	list, err := e.store.Installations(context.Background(), "")
	if err != nil {
		e.t.Fatal(err)
	}
	var b strings.Builder
	for _, in := range list {
		fmt.Fprintf(&b, "%s|%s|%s|%s|%s|%d|%d|%s\n", in.ClientKey, in.SharedSecret, in.BaseURL, in.State,
			in.ProductType, in.InstalledAt.UnixNano(), in.UpdatedAt.UnixNano(), in.Payload)
	}
	return b.String()
}

func (e *env) installation(clientKey string) *tenon.Installation {
	e.t.Helper()
	in, err := e.store.Installation(context.Background(), clientKey)
	if err != nil {
		e.t.Fatalf("installation %s: %v", clientKey, err)
	}
	return in
}

// expectRefused checks status and that the body is a JSON error with that
// status's code, and that the store is as before.
func (e *env) expectRefused(r response, status int, before string) {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if after := e.snapshot(); after != before {
		e.t.Fatalf("store changed by a refused request:\nbefore %s\nafter  %s", before, after)
	}
}

// tokenWithoutExp signs c with exp left out entirely (connectjwt always
// writes it): HS256 with secret, or RS256 with key when key is set.
func tokenWithoutExp(t testing.TB, c connectjwt.Claims, secret string, key *rsa.PrivateKey) string {
	t.Helper()
	var m map[string]any
	b, _ := json.Marshal(c)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "exp")
	payload, _ := json.Marshal(m)
	enc := base64.RawURLEncoding
	header := `{"alg":"HS256","typ":"JWT"}`
	if key != nil {
		header = `{"alg":"RS256","typ":"JWT","kid":"` + kid + `"}`
	}
	input := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString(payload)
	var sig []byte
	if key != nil {
		sum := sha256.Sum256([]byte(input))
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:]); err != nil {
			t.Fatal(err)
		}
	} else {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(input))
		sig = mac.Sum(nil)
	}
	return input + "." + enc.EncodeToString(sig)
}

// unsignedToken builds a token with an arbitrary header, e.g. alg none.
func unsignedToken(header string, c connectjwt.Claims, sig string) string {
	payload, err := json.Marshal(c)
	if err != nil {
		panic(err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString(payload) + "." + sig
}
