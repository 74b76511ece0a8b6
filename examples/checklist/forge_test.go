package checklist_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/connectjwt"
	"github.com/tenon-dev/tenon/examples/checklist"
	"github.com/tenon-dev/tenon/forge"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/qsh"
	"github.com/tenon-dev/tenon/server"
	"github.com/tenon-dev/tenon/sqlite"
)

const (
	forgeAppID = "ari:cloud:ecosystem::app/3f0f6a52-0c8d-4d5e-9b1a-5f1c2d3e4f50"
	forgeInst  = "ari:cloud:ecosystem::installation/5d8e0b0e-6c4b-4a1e-8a52-0a9b8c7d6e5f"
	cloudID    = "cloud-of-site-1"
	forgeKid   = "forge-test-key"
)

// forgeEnv is the checklist app with Forge configured, on a site whose
// Connect tenant is linked to the Forge installation by cloudId.
type forgeEnv struct {
	t     *testing.T
	srv   *server.Server
	store *sqlite.Store
	key   *rsa.PrivateKey
	jtis  atomic.Int64
}

func newForgeEnv(t *testing.T) *forgeEnv {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "RSA", "kid": forgeKid, "alg": "RS256", "use": "sig",
		"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
	}}})
	jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(doc) }))
	t.Cleanup(jwksSrv.Close)

	kr, err := keyring.New(bytes.Repeat([]byte{7}, keyring.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return testNow }
	store, err := sqlite.Open(filepath.Join(t.TempDir(), "tenon.db"), sqlite.Options{SecretBox: kr, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	in := &tenon.Installation{
		ClientKey: clientKey, AppKey: "tenon-checklist", SharedSecret: secret,
		BaseURL: "https://site-1.atlassian.net", ProductType: "jira", CloudID: cloudID,
	}
	if err := store.SaveInstallation(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	keys, err := forge.NewJWKS(jwksSrv.URL, forge.JWKSOptions{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	app := checklist.New(checklist.Options{AllJSURL: "https://connect-cdn.atl-paas.net/all.js", Logger: logger, Now: now})
	srv, err := server.New(server.Config{
		Descriptor: app.Descriptor(), BaseURL: appBase, Store: store, InstallKeys: noKeys{},
		AllowedHosts: []string{"*.atlassian.net"}, Now: now, Logger: logger,
		ForgeAppID: forgeAppID, ForgeKeys: keys,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Routes(srv); err != nil {
		t.Fatal(err)
	}
	return &forgeEnv{t: t, srv: srv, store: store, key: key}
}

// fit signs a Forge Invocation Token of the panel on issueKey ("" for an
// event's token, without context or principal).
func (e *forgeEnv) fit(issueKey string) string {
	e.t.Helper()
	c := jwt.MapClaims{
		"iss": "forge/invocation-token", "aud": forgeAppID, "jti": fmt.Sprintf("jti-%d", e.jtis.Add(1)),
		"iat": testNow.Unix(), "nbf": testNow.Unix(), "exp": testNow.Add(25 * time.Second).Unix(),
		"app": map[string]any{
			"id": forgeAppID, "installationId": forgeInst, "apiBaseUrl": "https://api.atlassian.com/ex/jira/" + cloudID,
			"environment": map[string]any{"type": "PRODUCTION", "id": "env"},
			"module":      map[string]any{"type": "jira:issuePanel", "key": "checklist-panel"},
		},
	}
	if issueKey != "" {
		c["principal"] = accountID
		c["context"] = map[string]any{"cloudId": cloudID, "extension": map[string]any{"type": "jira:issuePanel", "issue": map[string]any{"key": issueKey}}}
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = forgeKid
	s, err := tok.SignedString(e.key)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *forgeEnv) forge(method, path, fit, body string) *httptest.ResponseRecorder {
	e.t.Helper()
	req := httptest.NewRequest(method, basePath+path, strings.NewReader(body))
	if fit != "" {
		req.Header.Set("Authorization", "Bearer "+fit)
	}
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, req)
	return w
}

func (e *forgeEnv) connect(method, path, body, issueKey string) *httptest.ResponseRecorder {
	e.t.Helper()
	tok, err := connectjwt.SignHS256(connectjwt.Claims{
		Issuer: clientKey, Subject: accountID, IssuedAt: testNow.Unix(), ExpiresAt: testNow.Add(15 * time.Minute).Unix(),
		QSH: qsh.ContextQSH, Context: json.RawMessage(`{"jira":{"issue":{"key":"` + issueKey + `"}}}`),
	}, []byte(secret))
	if err != nil {
		e.t.Fatal(err)
	}
	req := httptest.NewRequest(method, basePath+path, strings.NewReader(body))
	req.Header.Set("Authorization", "JWT "+tok)
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, req)
	return w
}

func itemsOf(t *testing.T, w *httptest.ResponseRecorder) []string {
	t.Helper()
	var c checklist.Checklist
	if err := json.Unmarshal(w.Body.Bytes(), &c); err != nil {
		t.Fatalf("not a checklist (%d): %s", w.Code, w.Body)
	}
	var out []string
	for _, it := range c.Items {
		out = append(out, it.Text)
	}
	return out
}

func TestManifestNamesServedRoutes(t *testing.T) {
	e := newForgeEnv(t)
	m := string(checklist.New(checklist.Options{}).Manifest())
	paths := regexp.MustCompile(`(?m)^\s+path: (/\S*)$`).FindAllStringSubmatch(m, -1)
	if len(paths) == 0 {
		t.Fatal("the manifest routes no endpoint to a path")
	}
	for _, p := range paths {
		// Served, and only with a token: 401, not 404.
		if w := e.forge(http.MethodPost, p[1], "", `{}`); w.Code != http.StatusUnauthorized {
			t.Errorf("manifest route.path %s: status %d, want 401 (a Forge route)", p[1], w.Code)
		}
	}
	if !strings.Contains(m, "path: "+checklist.ForgeEventPath) {
		t.Errorf("the manifest does not route events to %s", checklist.ForgeEventPath)
	}
	invokePath := strings.TrimSuffix(checklist.ForgeChecklistPath, "/{issueKey}")
	if !strings.Contains(m, invokePath+"/") {
		t.Errorf("the manifest does not name the invokeRemote path %s", invokePath)
	}
	for _, want := range []string{"remotes:", "baseUrl:", "endpoint: checklist-remote", "avi:jira:deleted:issue", "read:app-system-token"} {
		if !strings.Contains(m, want) {
			t.Errorf("the manifest lacks %q", want)
		}
	}
	if w := e.forge(http.MethodGet, "/forge/checklists/DEMO-1", "", ""); w.Code != http.StatusUnauthorized {
		t.Errorf("checklist route without a token: %d", w.Code)
	}
}

func TestForgeServesTheConnectChecklist(t *testing.T) {
	e := newForgeEnv(t)
	if w := e.connect(http.MethodPost, "/api/checklists/DEMO-1/items", `{"text":"written through Connect"}`, "DEMO-1"); w.Code != http.StatusCreated {
		t.Fatalf("Connect add: %d %s", w.Code, w.Body)
	}
	w := e.forge(http.MethodGet, "/forge/checklists/DEMO-1", e.fit("DEMO-1"), "")
	if w.Code != http.StatusOK || strings.Join(itemsOf(t, w), "|") != "written through Connect" {
		t.Fatalf("Forge read: %d %s", w.Code, w.Body)
	}
	// The issue rule holds for Forge tokens too.
	if w := e.forge(http.MethodGet, "/forge/checklists/DEMO-1", e.fit("DEMO-2"), ""); w.Code != http.StatusForbidden {
		t.Errorf("a token of DEMO-2 on DEMO-1: %d", w.Code)
	}
	if w := e.forge(http.MethodPost, "/forge/checklists/DEMO-1/items", e.fit("DEMO-1"), `{"text":"written through Forge"}`); w.Code != http.StatusCreated {
		t.Fatalf("Forge add: %d %s", w.Code, w.Body)
	}
	w = e.connect(http.MethodGet, "/api/checklists/DEMO-1", "", "DEMO-1")
	if got := strings.Join(itemsOf(t, w), "|"); got != "written through Connect|written through Forge" {
		t.Errorf("Connect read: %q", got)
	}

	// Forge's issue-deleted event removes it, once processed.
	w = e.forge(http.MethodPost, checklist.ForgeEventPath, e.fit(""), `{"payload":{"eventType":"avi:jira:deleted:issue","issue":{"key":"DEMO-1"}}}`)
	if w.Code != http.StatusAccepted {
		t.Fatalf("event: %d %s", w.Code, w.Body)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := e.store.GetValue(context.Background(), clientKey, "checklist/DEMO-1")
		if tenon.ErrorCode(err) == tenon.ENOTFOUND {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the event did not delete the checklist: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
