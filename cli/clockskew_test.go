package cli_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tenon-dev/tenon/cli"
	"github.com/tenon-dev/tenon/connectjwt"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/qsh"
	"github.com/tenon-dev/tenon/server"
)

var signingKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

const (
	skewAppKey   = "com.example.skew"
	skewForgeApp = "ari:cloud:ecosystem::app/8db33809-1f32-48bb-8c52-5877dab48107"
	skewInstall  = "ari:cloud:ecosystem::installation/0a3a7799-53ae-4a5b-9e7e-03338980abb5"
)

// skewApp has one route of every kind that takes a token.
type skewApp struct{}

func (skewApp) Descriptor() []byte {
	return []byte(`{"key": "` + skewAppKey + `", "name": "Skew", "baseUrl": "https://placeholder.example",
  "authentication": {"type": "jwt"},
  "lifecycle": {"installed": "/installed", "uninstalled": "/uninstalled"},
  "apiMigrations": {"signed-install": true, "context-qsh": true},
  "modules": {"webhooks": [{"event": "jira:issue_created", "url": "/hooks/issue?id={issue.id}"}],
    "generalPages": [{"key": "main", "url": "/page", "name": {"value": "Main"}}]}}`)
}

func (skewApp) Routes(s *server.Server) error {
	ok := func(w http.ResponseWriter, r *http.Request) error { _, err := io.WriteString(w, "ok"); return err }
	s.Module("GET /page", ok)
	s.API("GET /api/ping", ok)
	s.Webhook("/hooks/issue?id={issue.id}", ok)
	s.ForgeRemote("GET /forge/ping", ok)
	return nil
}

// skewBackend serves skewApp as `tenon serve` configures it from args and
// vars, on a clock the test sets, with its own key server and Forge JWKS.
type skewBackend struct {
	url string
	now time.Time
}

func startSkewBackend(t *testing.T, now time.Time, args []string, vars map[string]string) *skewBackend {
	t.Helper()
	pub := &signingKey().PublicKey
	der, _ := x509.MarshalPKIXPublicKey(pub)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/kid-1" {
			http.NotFound(w, r)
			return
		}
		w.Write(pemKey)
	}))
	t.Cleanup(keys.Close)
	jwksDoc, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "RSA", "kid": "forge-1", "use": "sig", "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}})
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(jwksDoc) }))
	t.Cleanup(jwks.Close)

	dir := t.TempDir()
	line, err := keyring.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "secret.key")
	if err := os.WriteFile(keyFile, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	cfg, err := cli.LoadConfig(append([]string{
		"--environment", "development", "--base-url", base, "--db", filepath.Join(dir, "tenon.db"),
		"--secret-key-file", keyFile, "--install-keys-url", keys.URL,
		"--forge-app-id", skewForgeApp, "--forge-jwks-url", jwks.URL,
	}, args...), env(vars), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Now = func() time.Time { return now }
	b, err := cli.Open(context.Background(), cfg, skewApp{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ts := httptest.NewUnstartedServer(b.Server)
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	t.Cleanup(ts.Close)
	return &skewBackend{url: base, now: now}
}

func (sb *skewBackend) send(t *testing.T, method, path, auth string, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(method, sb.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// request sends one request of kind whose token expired ago before the
// backend's now, and returns the status.
func (sb *skewBackend) request(t *testing.T, kind string, ago time.Duration) int {
	t.Helper()
	exp := sb.now.Add(-ago)
	hs := func(method, path, query string, context bool) string {
		c := connectjwt.Claims{Issuer: "client-a", Subject: "557058:user-1",
			IssuedAt: exp.Add(-3 * time.Minute).Unix(), ExpiresAt: exp.Unix(), QSH: qsh.Hash(method, path, query, "")}
		if context {
			c.QSH = qsh.ContextQSH
		}
		tok, err := connectjwt.SignHS256(c, []byte("secret-a"))
		if err != nil {
			t.Fatal(err)
		}
		return "JWT " + tok
	}
	switch kind {
	case "lifecycle":
		tok, err := connectjwt.SignRS256(connectjwt.Claims{Issuer: "client-a", Audience: connectjwt.Audience{sb.url},
			IssuedAt: exp.Add(-3 * time.Minute).Unix(), ExpiresAt: exp.Unix(), QSH: qsh.Hash("POST", "/installed", "", "")}, "kid-1", signingKey())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(map[string]any{"key": skewAppKey, "clientKey": "client-a", "sharedSecret": "secret-a",
			"baseUrl": "https://acme.atlassian.net", "productType": "jira", "eventType": "installed"})
		return sb.send(t, "POST", "/installed", "JWT "+tok, body)
	case "module":
		return sb.send(t, "GET", "/page", hs("GET", "/page", "", false), nil)
	case "API":
		return sb.send(t, "GET", "/api/ping", hs("GET", "/api/ping", "", true), nil)
	case "webhook":
		return sb.send(t, "POST", "/hooks/issue?id=1", hs("POST", "/hooks/issue", "id=1", false), []byte(`{}`))
	case "FIT":
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
			"iss": "forge/invocation-token", "aud": skewForgeApp, "jti": "jti-" + ago.String(),
			"iat": exp.Add(-25 * time.Second).Unix(), "nbf": exp.Add(-25 * time.Second).Unix(), "exp": exp.Unix(),
			"app": map[string]any{"id": skewForgeApp, "installationId": skewInstall,
				"apiBaseUrl":  "https://api.atlassian.com/ex/jira/d0d52620-3203-4cfa-8db5-f2587155f0dd",
				"environment": map[string]any{"type": "PRODUCTION", "id": "ari:cloud:ecosystem::environment/prod"},
				"module":      map[string]any{"type": "jira:issuePanel", "key": "panel"}},
		})
		tok.Header["kid"] = "forge-1"
		s, err := tok.SignedString(signingKey())
		if err != nil {
			t.Fatal(err)
		}
		return sb.send(t, "GET", "/forge/ping", "Bearer "+s, nil)
	}
	t.Fatalf("unknown kind %s", kind)
	return 0
}

// The binary's default clock skew (10 s) reaches every verifier: a token
// that expired 10 s ago is accepted, one that expired 11 s or 40 s ago is not;
// --clock-skew and TENON_CLOCK_SKEW change it.
func TestServeClockSkew(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	kinds := []string{"lifecycle", "module", "API", "webhook", "FIT"}
	ok := map[string]int{"lifecycle": http.StatusNoContent}
	for _, tc := range []struct {
		name     string
		args     []string
		vars     map[string]string
		accepted []time.Duration
		refused  []time.Duration
	}{
		{"default", nil, nil, []time.Duration{9 * time.Second, 10 * time.Second}, []time.Duration{11 * time.Second, 40 * time.Second}},
		{"flag 0s", []string{"--clock-skew", "0s"}, nil, nil, []time.Duration{time.Second, 9 * time.Second}},
		{"environment 30s", nil, map[string]string{"TENON_CLOCK_SKEW": "30s"}, []time.Duration{29 * time.Second, 30 * time.Second}, []time.Duration{31 * time.Second, 40 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb := startSkewBackend(t, now, tc.args, tc.vars)
			// A fresh install first, so the tenant exists for the others.
			if code := sb.request(t, "lifecycle", -time.Minute); code != http.StatusNoContent {
				t.Fatalf("install: %d", code)
			}
			for _, kind := range kinds {
				want := ok[kind]
				if want == 0 {
					want = http.StatusOK
				}
				for _, ago := range tc.accepted {
					if code := sb.request(t, kind, ago); code != want {
						t.Errorf("%s token expired %v ago: %d, want %d", kind, ago, code, want)
					}
				}
				for _, ago := range tc.refused {
					if code := sb.request(t, kind, ago); code != http.StatusUnauthorized {
						t.Errorf("%s token expired %v ago: %d, want 401", kind, ago, code)
					}
				}
			}
		})
	}
}

func TestClockSkewOutOfRangeRefusedAtStart(t *testing.T) {
	base := []string{"--base-url", "https://app.example.com", "--secret-key-file", "k"}
	for _, tc := range []struct {
		args []string
		vars map[string]string
	}{
		{[]string{"--clock-skew", "31s"}, nil},
		{[]string{"--clock-skew", "1m"}, nil},
		{[]string{"--clock-skew", "-1s"}, nil},
		{[]string{"--clock-skew", "10"}, nil},
		{nil, map[string]string{"TENON_CLOCK_SKEW": "45s"}},
	} {
		var stderr bytes.Buffer
		code := cli.Run(context.Background(), cli.Env{Stdout: io.Discard, Stderr: &stderr, Getenv: env(tc.vars)}, skewApp{},
			append(append([]string{"serve"}, base...), tc.args...))
		if code != 1 || !strings.Contains(stderr.String(), "--clock-skew / TENON_CLOCK_SKEW must be a duration from 0s to 30s") {
			t.Errorf("%v %v: exit %d: %s", tc.args, tc.vars, code, stderr.String())
		}
	}
	cfg, err := cli.LoadConfig(base, env(nil), io.Discard)
	if err != nil || cfg.ClockSkew != 10*time.Second || cli.DefaultClockSkew != 10*time.Second {
		t.Errorf("default clock skew %v, %v", cfg.ClockSkew, err)
	}
}
