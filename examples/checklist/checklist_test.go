package checklist_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/cli"
	"github.com/tenon-dev/tenon/connectjwt"
	"github.com/tenon-dev/tenon/examples/checklist"
	"github.com/tenon-dev/tenon/hostclient"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/qsh"
	"github.com/tenon-dev/tenon/server"
	"github.com/tenon-dev/tenon/sqlite"
)

const (
	appBase   = "https://checklist.example.com/apps/checklist"
	basePath  = "/apps/checklist"
	clientKey = "site-1"
	secret    = "shared-secret-of-site-1-0123456789abcdef0123456789abcdef"
	accountID = "5b10ac8d82e05b22cc7d4ef5"

	siteBasePath = "/s/acme" // path of the Jira site's base URL
)

// The app plugs into tenon's command line like any vendor's app.
var _ cli.HookedApp = (*checklist.App)(nil)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// noKeys is a key source for a test that sends no signed installs.
type noKeys struct{}

func (noKeys) PublicKey(context.Context, string) (*rsa.PublicKey, error) {
	return nil, connectjwt.ErrKeyNotFound
}

// jira answers the one REST call the app makes, after checking the app's
// token as Jira would.
type jira struct {
	srv    *httptest.Server
	down   atomic.Bool
	mu     sync.Mutex
	issues map[string]string // key → summary
	errs   []error
}

func newJira(t *testing.T) *jira {
	j := &jira{issues: map[string]string{"DEMO-1": "Ship the release", "DEMO-2": "Second issue"}}
	j.srv = httptest.NewServer(http.HandlerFunc(j.serve))
	t.Cleanup(func() {
		j.srv.Close()
		j.mu.Lock()
		defer j.mu.Unlock()
		for _, err := range j.errs {
			t.Errorf("jira refused a call of the app: %v", err)
		}
	})
	return j
}

func (j *jira) serve(w http.ResponseWriter, r *http.Request) {
	if err := verifyAppToken(r); err != nil {
		j.mu.Lock()
		j.errs = append(j.errs, err)
		j.mu.Unlock()
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if j.down.Load() {
		http.Error(w, `{"message":"maintenance"}`, http.StatusServiceUnavailable)
		return
	}
	// The site's REST API lives under its base URL path, as on the fake.
	key, ok := strings.CutPrefix(r.URL.Path, siteBasePath+"/rest/api/3/issue/")
	j.mu.Lock()
	summary, found := j.issues[key]
	j.mu.Unlock()
	if !ok || !found || r.URL.Query().Get("fields") != "summary" {
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"errorMessages":["Issue does not exist or you do not have permission to see it."]}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"id": "10001", "key": key, "fields": map[string]string{"summary": summary}})
}

func verifyAppToken(r *http.Request) error {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "JWT ")
	if !ok {
		return errors.New("no JWT")
	}
	tok, err := connectjwt.Parse(raw)
	if err != nil {
		return err
	}
	v := &connectjwt.Verifier{Now: func() time.Time { return testNow }}
	if err := v.VerifyHS256(tok, []byte(secret)); err != nil {
		return err
	}
	if tok.Claims.Issuer != "tenon-checklist" {
		return fmt.Errorf("iss %q", tok.Claims.Issuer)
	}
	if tok.Claims.QSH != qsh.FromRequest(r, siteBasePath) {
		return errors.New("qsh mismatch")
	}
	return nil
}

type env struct {
	t     *testing.T
	h     http.Handler
	srv   *server.Server
	run   sync.Once
	store *sqlite.Store
	jira  *jira
	logs  *bytes.Buffer
	app   *checklist.App
}

func newEnv(t *testing.T) *env {
	t.Helper()
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
	j := newJira(t)
	in := &tenon.Installation{
		ClientKey: clientKey, AppKey: "tenon-checklist", SharedSecret: secret,
		BaseURL: j.srv.URL + siteBasePath, ProductType: "jira",
		Payload: json.RawMessage(`{"clientKey":"site-1"}`),
	}
	if err := store.SaveInstallation(context.Background(), in); err != nil {
		t.Fatal(err)
	}

	logs := &bytes.Buffer{}
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: logs}, nil))
	app := checklist.New(checklist.Options{AllJSURL: "https://connect-cdn.atl-paas.net/all.js", Logger: logger, Now: now})
	srv, err := server.New(server.Config{
		Descriptor:   app.Descriptor(),
		BaseURL:      appBase,
		Store:        store,
		InstallKeys:  noKeys{},
		AllowedHosts: []string{"127.0.0.1"},
		AllowHTTP:    true,
		Now:          now,
		Logger:       logger,
		Hooks:        app.Hooks(),
		Products:     hostclient.New("tenon-checklist", hostclient.Options{Now: now}).Products(),
	})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	if err := app.Routes(srv); err != nil {
		t.Fatalf("Routes: %v", err)
	}
	return &env{t: t, h: srv, srv: srv, store: store, jira: j, logs: logs, app: app}
}

// process runs the server's job runner (once per test) and waits until
// every queued webhook was processed or gave up.
func (e *env) process() {
	e.t.Helper()
	e.run.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.srv.Run(ctx) }()
		e.t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("Run: %v", err)
			}
		})
	})
	queue := server.WebhookQueue("jira:issue_deleted")
	deadline := time.Now().Add(15 * time.Second)
	for {
		st, err := e.store.Stats(context.Background(), queue)
		if err != nil {
			e.t.Fatal(err)
		}
		if st.Pending == 0 && st.Running == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("queued webhooks not processed: %+v", st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// contextToken is what AP.context.getToken gives the panel's browser code.
func contextToken(t *testing.T, context string) string {
	t.Helper()
	c := connectjwt.Claims{Issuer: clientKey, Subject: accountID, IssuedAt: testNow.Unix(), ExpiresAt: testNow.Add(15 * time.Minute).Unix(), QSH: qsh.ContextQSH}
	if context != "" {
		c.Context = json.RawMessage(context)
	}
	tok, err := connectjwt.SignHS256(c, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

const demo1Context = `{"jira":{"issue":{"key":"DEMO-1","id":"10001"},"project":{"key":"DEMO"}}}`

// api calls a browser-API route with a context token.
func (e *env) api(method, path, body, context string) *httptest.ResponseRecorder {
	e.t.Helper()
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, basePath+path, rb)
	r.Header.Set("Authorization", "JWT "+contextToken(e.t, context))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

// signed calls an iframe or webhook route as the product does: a token
// whose qsh is the hash of this request, in the jwt query parameter.
func (e *env) signed(method, path, query, body string) *httptest.ResponseRecorder {
	e.t.Helper()
	full := basePath + path
	c := connectjwt.Claims{Issuer: clientKey, Subject: accountID, IssuedAt: testNow.Unix(), ExpiresAt: testNow.Add(3 * time.Minute).Unix(),
		QSH: qsh.Hash(method, full, query, basePath)}
	tok, err := connectjwt.SignHS256(c, []byte(secret))
	if err != nil {
		e.t.Fatal(err)
	}
	target := full + "?" + query
	if query != "" {
		target += "&"
	}
	target += "jwt=" + tok
	var rb io.Reader
	if body != "" {
		rb = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rb)
	r.Header.Set("Accept", "text/html,application/xhtml+xml")
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

func (e *env) stored(key string) (map[string]any, bool) {
	e.t.Helper()
	raw, err := e.store.GetValue(context.Background(), clientKey, "checklist/"+key)
	if tenon.ErrorCode(err) == tenon.ENOTFOUND {
		return nil, false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		e.t.Fatal(err)
	}
	return v, true
}

func decodeChecklist(t *testing.T, w *httptest.ResponseRecorder) checklist.Checklist {
	t.Helper()
	var c checklist.Checklist
	if err := json.Unmarshal(w.Body.Bytes(), &c); err != nil {
		t.Fatalf("response %d %q: %v", w.Code, w.Body.String(), err)
	}
	return c
}

func wantStatus(t *testing.T, w *httptest.ResponseRecorder, status int) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d; body %s", w.Code, status, w.Body.String())
	}
}

func TestValidIssueKey(t *testing.T) {
	for key, want := range map[string]bool{
		"DEMO-1": true, "AB-123": true, "A1_B2-9": true,
		"": false, "A-1": false, "demo-1": false, "DEMO-": false, "DEMO-1a": false, "-1": false,
		"1DEMO-1": false, "DEMO 1": false, "DEMO-1\n": false, "../DEMO-1": false, "DEMO-1/x": false,
		"DEMO-" + strings.Repeat("1", 300): false,
	} {
		if got := checklist.ValidIssueKey(key); got != want {
			t.Errorf("ValidIssueKey(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestNormalizeItemText(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"Write tests", "Write tests", true},
		{"  padded\t ", "padded", true},
		{"Größe prüfen ✓", "Größe prüfen ✓", true},
		{strings.Repeat("ä", 500), strings.Repeat("ä", 500), true},
		{strings.Repeat("ä", 501), "", false},
		{"", "", false},
		{" \t\n ", "", false},
		{"two\nlines", "", false},
		{"nul\x00byte", "", false},
		{"bad \xff utf8", "", false},
	}
	for _, tt := range tests {
		got, err := checklist.NormalizeItemText(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("NormalizeItemText(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && tenon.ErrorCode(err) != tenon.EINVALID {
			t.Errorf("NormalizeItemText(%q): code %q, want EINVALID", tt.in, tenon.ErrorCode(err))
		}
	}
}

func TestLanguage(t *testing.T) {
	for loc, want := range map[string]string{
		"de-DE": "de", "de_AT": "de", "DE": "de", "de": "de",
		"en-US": "en", "fr-FR": "en", "": "en", "deu": "en", "x-de": "en",
	} {
		if got := checklist.Language(loc); got != want {
			t.Errorf("Language(%q) = %q, want %q", loc, got, want)
		}
	}
}

func TestDescriptor(t *testing.T) {
	var d struct {
		Key             string          `json:"key"`
		EnableLicensing bool            `json:"enableLicensing"`
		APIMigrations   map[string]bool `json:"apiMigrations"`
		Scopes          []string        `json:"scopes"`
		Lifecycle       map[string]string
		Modules         struct {
			WebPanels []struct{ Key, Location, URL string } `json:"webPanels"`
			Webhooks  []struct{ Event, URL string }         `json:"webhooks"`
		} `json:"modules"`
	}
	if err := json.Unmarshal(checklist.New(checklist.Options{}).Descriptor(), &d); err != nil {
		t.Fatal(err)
	}
	switch {
	case d.Key != "tenon-checklist", !d.EnableLicensing, len(d.Lifecycle) != 4,
		!d.APIMigrations["signed-install"] || !d.APIMigrations["context-qsh"] || !d.APIMigrations["gdpr"],
		strings.Join(d.Scopes, ",") != "READ,WRITE":
		t.Errorf("descriptor basics: %+v", d)
	}
	if len(d.Modules.WebPanels) != 1 || d.Modules.WebPanels[0].Key != "checklist-panel" ||
		d.Modules.WebPanels[0].Location != "atl.jira.view.issue.right.context" ||
		d.Modules.WebPanels[0].URL != "/panel?issueKey={issue.key}&projectKey={project.key}" {
		t.Errorf("webPanels: %+v", d.Modules.WebPanels)
	}
	if len(d.Modules.Webhooks) != 1 || d.Modules.Webhooks[0].Event != "jira:issue_deleted" ||
		d.Modules.Webhooks[0].URL != "/webhooks/issue-deleted?issueKey=${issue.key}" {
		t.Errorf("webhooks: %+v", d.Modules.Webhooks)
	}
}

func TestChecklistLifecycle(t *testing.T) {
	e := newEnv(t)

	w := e.api("GET", "/api/checklists/DEMO-1", "", demo1Context)
	wantStatus(t, w, http.StatusOK)
	if c := decodeChecklist(t, w); c.IssueKey != "DEMO-1" || len(c.Items) != 0 {
		t.Errorf("empty checklist: %+v", c)
	}
	if w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", w.Header().Get("Cache-Control"))
	}

	wantStatus(t, e.api("POST", "/api/checklists/DEMO-1/items", `{"text":"  Write the release notes "}`, demo1Context), http.StatusCreated)
	w = e.api("POST", "/api/checklists/DEMO-1/items", `{"text":"Tag the build"}`, demo1Context)
	wantStatus(t, w, http.StatusCreated)
	c := decodeChecklist(t, w)
	if len(c.Items) != 2 || c.Items[0].Text != "Write the release notes" || c.Items[1].ID == c.Items[0].ID {
		t.Fatalf("after two adds: %+v", c)
	}
	first, second := c.Items[0], c.Items[1]
	if first.CreatedBy != accountID || !first.CreatedAt.Equal(testNow) || first.Done {
		t.Errorf("first item %+v", first)
	}

	w = e.api("PATCH", "/api/checklists/DEMO-1/items/"+first.ID, `{"done":true}`, demo1Context)
	wantStatus(t, w, http.StatusOK)
	if c := decodeChecklist(t, w); !c.Items[0].Done || c.Items[1].Done {
		t.Errorf("after ticking the first: %+v", c)
	}
	w = e.api("PATCH", "/api/checklists/DEMO-1/items/"+second.ID, `{"text":"Tag and sign the build"}`, demo1Context)
	wantStatus(t, w, http.StatusOK)
	if c := decodeChecklist(t, w); c.Items[1].Text != "Tag and sign the build" {
		t.Errorf("after renaming: %+v", c)
	}

	// What the API said is what the store holds.
	doc, ok := e.stored("DEMO-1")
	if !ok {
		t.Fatal("nothing stored under checklist/DEMO-1")
	}
	items, _ := doc["items"].([]any)
	if len(items) != 2 || items[0].(map[string]any)["done"] != true || items[0].(map[string]any)["createdBy"] != accountID {
		t.Errorf("stored document: %v", doc)
	}

	wantStatus(t, e.api("DELETE", "/api/checklists/DEMO-1/items/"+first.ID, "", demo1Context), http.StatusOK)
	// Deleting again is not an error.
	w = e.api("DELETE", "/api/checklists/DEMO-1/items/"+first.ID, "", demo1Context)
	wantStatus(t, w, http.StatusOK)
	if c := decodeChecklist(t, w); len(c.Items) != 1 || c.Items[0].ID != second.ID {
		t.Errorf("after deleting the first: %+v", c)
	}

	// A new item never reuses a deleted item's id.
	w = e.api("POST", "/api/checklists/DEMO-1/items", `{"text":"Announce"}`, demo1Context)
	wantStatus(t, w, http.StatusCreated)
	if c := decodeChecklist(t, w); c.Items[1].ID == first.ID {
		t.Errorf("id %s reused", first.ID)
	}

	// Removing the last items removes the document.
	for _, it := range decodeChecklist(t, e.api("GET", "/api/checklists/DEMO-1", "", demo1Context)).Items {
		wantStatus(t, e.api("DELETE", "/api/checklists/DEMO-1/items/"+it.ID, "", demo1Context), http.StatusOK)
	}
	if _, ok := e.stored("DEMO-1"); ok {
		t.Error("an empty checklist is still stored")
	}
}

func TestIssueContextRule(t *testing.T) {
	e := newEnv(t)
	// A token from DEMO-1's panel cannot touch DEMO-2.
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/api/checklists/DEMO-2", ""},
		{"POST", "/api/checklists/DEMO-2/items", `{"text":"sneaky"}`},
		{"PATCH", "/api/checklists/DEMO-2/items/1", `{"done":true}`},
		{"DELETE", "/api/checklists/DEMO-2/items/1", ""},
	} {
		w := e.api(tc.method, tc.path, tc.body, demo1Context)
		if w.Code != http.StatusForbidden {
			t.Errorf("%s %s with a DEMO-1 token: %d %s; want 403", tc.method, tc.path, w.Code, w.Body.String())
		}
	}
	if _, ok := e.stored("DEMO-2"); ok {
		t.Error("DEMO-2 was written with a DEMO-1 token")
	}
	// A token whose context names no issue is not bound to one.
	wantStatus(t, e.api("POST", "/api/checklists/DEMO-2/items", `{"text":"from a page without issue"}`, `{"jira":{"project":{"key":"DEMO"}}}`), http.StatusCreated)
	wantStatus(t, e.api("GET", "/api/checklists/DEMO-2", "", ""), http.StatusOK)
	// An explicit "no license" in the context is refused.
	w := e.api("GET", "/api/checklists/DEMO-1", "", `{"license":{"active":false},"jira":{"issue":{"key":"DEMO-1"}}}`)
	wantStatus(t, w, http.StatusForbidden)
	wantStatus(t, e.api("GET", "/api/checklists/DEMO-1", "", `{"license":{"active":true},"jira":{"issue":{"key":"DEMO-1"}}}`), http.StatusOK)
}

func TestAPIValidation(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, method, path, body, context string
		status                            int
	}{
		{"lower-case key", "GET", "/api/checklists/demo-1", "", "", 400},
		{"key without number", "GET", "/api/checklists/DEMO", "", "", 400},
		{"empty text", "POST", "/api/checklists/DEMO-1/items", `{"text":"   "}`, demo1Context, 400},
		{"text too long", "POST", "/api/checklists/DEMO-1/items", `{"text":"` + strings.Repeat("x", 501) + `"}`, demo1Context, 400},
		{"no text", "POST", "/api/checklists/DEMO-1/items", `{}`, demo1Context, 400},
		{"text not a string", "POST", "/api/checklists/DEMO-1/items", `{"text":42}`, demo1Context, 400},
		{"unknown field", "POST", "/api/checklists/DEMO-1/items", `{"text":"a","colour":"red"}`, demo1Context, 400},
		{"not JSON", "POST", "/api/checklists/DEMO-1/items", `text=a`, demo1Context, 400},
		{"trailing data", "POST", "/api/checklists/DEMO-1/items", `{"text":"a"} {}`, demo1Context, 400},
		{"body too large", "POST", "/api/checklists/DEMO-1/items", `{"text":"` + strings.Repeat("x", 10<<10) + `"}`, demo1Context, 413},
		{"bad item id", "PATCH", "/api/checklists/DEMO-1/items/abc", `{"done":true}`, demo1Context, 400},
		{"empty patch", "PATCH", "/api/checklists/DEMO-1/items/1", `{}`, demo1Context, 400},
		{"unknown item", "PATCH", "/api/checklists/DEMO-1/items/999", `{"done":true}`, demo1Context, 404},
		{"text exactly 500", "POST", "/api/checklists/DEMO-1/items", `{"text":"` + strings.Repeat("ü", 500) + `"}`, demo1Context, 201},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.api(tt.method, tt.path, tt.body, tt.context)
			if w.Code != tt.status {
				t.Fatalf("%d %s; want %d", w.Code, w.Body.String(), tt.status)
			}
			if tt.status >= 400 && !strings.Contains(w.Body.String(), `"message"`) {
				t.Errorf("error without a message: %s", w.Body.String())
			}
		})
	}
}

func TestItemLimit(t *testing.T) {
	e := newEnv(t)
	for i := range checklist.MaxItems {
		wantStatus(t, e.api("POST", "/api/checklists/DEMO-1/items", fmt.Sprintf(`{"text":"item %d"}`, i), demo1Context), http.StatusCreated)
	}
	w := e.api("POST", "/api/checklists/DEMO-1/items", `{"text":"one too many"}`, demo1Context)
	wantStatus(t, w, http.StatusConflict)
}

func TestConcurrentAddsAreAllKept(t *testing.T) {
	e := newEnv(t)
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			w := e.api("POST", "/api/checklists/DEMO-1/items", fmt.Sprintf(`{"text":"parallel %d"}`, i), demo1Context)
			if w.Code != http.StatusCreated {
				t.Errorf("add %d: %d %s", i, w.Code, w.Body.String())
			}
		})
	}
	wg.Wait()
	c := decodeChecklist(t, e.api("GET", "/api/checklists/DEMO-1", "", demo1Context))
	if len(c.Items) != n {
		t.Errorf("%d items after %d concurrent adds", len(c.Items), n)
	}
	ids := map[string]bool{}
	for _, it := range c.Items {
		ids[it.ID] = true
	}
	if len(ids) != n {
		t.Errorf("ids not unique: %v", ids)
	}
}

func TestAPIRefusesIframeTokens(t *testing.T) {
	e := newEnv(t)
	// A token bound to one request (as in an iframe URL) is not a context
	// token; the server refuses it on API routes.
	w := e.signed("GET", "/api/checklists/DEMO-1", "", "")
	if w.Code != http.StatusUnauthorized {
		t.Errorf("iframe token on an API route: %d; want 401", w.Code)
	}
}

func panelQuery(lic, loc string) string {
	return url.Values{"issueKey": {"DEMO-1"}, "projectKey": {"DEMO"}, "lic": {lic}, "loc": {loc}, "xdm_e": {"https://acme.atlassian.net"}}.Encode()
}

func TestPanel(t *testing.T) {
	e := newEnv(t)
	wantStatus(t, e.api("POST", "/api/checklists/DEMO-1/items", `{"text":"<script>alert(1)</script>"}`, demo1Context), http.StatusCreated)
	wantStatus(t, e.api("POST", "/api/checklists/DEMO-1/items", `{"text":"\" onmouseover=\"alert(2)"}`, demo1Context), http.StatusCreated)
	e.jira.mu.Lock()
	e.jira.issues["DEMO-1"] = `Fix <img src=x onerror=alert(3)>`
	e.jira.mu.Unlock()

	w := e.signed("GET", "/panel", panelQuery("active", "en-US"), "")
	wantStatus(t, w, http.StatusOK)
	body := w.Body.String()
	for _, bad := range []string{"<script>alert", "<img src=x", `" onmouseover="alert`} {
		if strings.Contains(body, bad) {
			t.Errorf("the page contains %q unescaped:\n%s", bad, body)
		}
	}
	for _, want := range []string{
		`&lt;script&gt;alert(1)&lt;/script&gt;`,  // the item, shown as text
		`Fix &lt;img src=x onerror=alert(3)&gt;`, // Jira's summary, shown as text
		`<span class="issue-key">DEMO-1</span>`,
		`id="new-item"`, `id="add-item"`, `<ul id="items">`, `class="toggle"`, `class="delete"`,
		`<script src="https://connect-cdn.atl-paas.net/all.js"></script>`,
		`src="static/checklist.js?v=`, `href="static/checklist.css?v=`,
		`0 of 2 done`, `>Add</button>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q:\n%s", want, body)
		}
	}
	if strings.Count(body, "<li ") != 2 {
		t.Errorf("want 2 list items:\n%s", body)
	}
	if strings.Contains(body, "<script>") {
		t.Error("the page has an inline script")
	}
	csp := w.Header().Get("Content-Security-Policy")
	for _, want := range []string{"script-src 'self' https://connect-cdn.atl-paas.net;", "default-src 'none'", "frame-ancestors " + e.jira.srv.URL} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	for _, d := range strings.Split(csp, ";") {
		if d = strings.TrimSpace(d); strings.HasPrefix(d, "script-src") && strings.Contains(d, "unsafe") {
			t.Errorf("CSP allows inline or eval'd script: %q", d)
		}
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	if strings.Contains(e.logs.String(), secret) {
		t.Error("the shared secret reached the logs")
	}
}

func TestPanelLanguage(t *testing.T) {
	e := newEnv(t)
	w := e.signed("GET", "/panel", panelQuery("active", "de-DE"), "")
	wantStatus(t, w, http.StatusOK)
	body := w.Body.String()
	for _, want := range []string{`<html lang="de">`, `<title>Checkliste</title>`, `>Hinzufügen</button>`, `Noch keine Einträge.`, `0 von 0 erledigt`, `Eintrag löschen`} {
		if !strings.Contains(body, want) {
			t.Errorf("German page lacks %q:\n%s", want, body)
		}
	}
	for _, loc := range []string{"fr-FR", ""} {
		w := e.signed("GET", "/panel", panelQuery("active", loc), "")
		wantStatus(t, w, http.StatusOK)
		if b := w.Body.String(); !strings.Contains(b, `<html lang="en">`) || !strings.Contains(b, `>Add</button>`) {
			t.Errorf("loc %q: want the English page:\n%s", loc, b)
		}
	}
}

func TestPanelNeedsLicense(t *testing.T) {
	e := newEnv(t)
	w := e.signed("GET", "/panel", panelQuery("none", "en"), "")
	wantStatus(t, w, http.StatusForbidden)
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type %q: the iframe should show a page", ct)
	}
	if strings.Contains(w.Body.String(), `id="items"`) {
		t.Error("the unlicensed page shows the checklist")
	}
}

func TestPanelWhenJiraFails(t *testing.T) {
	e := newEnv(t)
	wantStatus(t, e.api("POST", "/api/checklists/DEMO-1/items", `{"text":"still here"}`, demo1Context), http.StatusCreated)

	e.jira.down.Store(true)
	w := e.signed("GET", "/panel", panelQuery("active", "en"), "")
	wantStatus(t, w, http.StatusOK)
	if b := w.Body.String(); !strings.Contains(b, "Jira could not be reached") || !strings.Contains(b, "still here") {
		t.Errorf("Jira down: want the notice and the checklist:\n%s", b)
	}
	e.jira.down.Store(false)

	e.jira.mu.Lock()
	delete(e.jira.issues, "DEMO-1")
	e.jira.mu.Unlock()
	w = e.signed("GET", "/panel", panelQuery("active", "en"), "")
	wantStatus(t, w, http.StatusOK)
	if b := w.Body.String(); !strings.Contains(b, "Jira did not return this issue") {
		t.Errorf("issue missing: want the notice:\n%s", b)
	}
}

func TestPanelRejectsBadIssueKey(t *testing.T) {
	e := newEnv(t)
	q := url.Values{"issueKey": {"<b>x</b>"}, "lic": {"active"}}.Encode()
	w := e.signed("GET", "/panel", q, "")
	wantStatus(t, w, http.StatusBadRequest)
}

func TestWebhookDeletesChecklist(t *testing.T) {
	e := newEnv(t)
	wantStatus(t, e.api("POST", "/api/checklists/DEMO-1/items", `{"text":"a"}`, demo1Context), http.StatusCreated)
	wantStatus(t, e.api("POST", "/api/checklists/DEMO-2/items", `{"text":"b"}`, `{"jira":{"issue":{"key":"DEMO-2"}}}`), http.StatusCreated)

	body := `{"webhookEvent":"jira:issue_deleted","issue":{"id":"10001","key":"DEMO-1"}}`
	// Acknowledged once stored; the checklist goes when the job runs.
	wantStatus(t, e.signed("POST", "/webhooks/issue-deleted", "issueKey=DEMO-1", body), http.StatusNoContent)
	if _, ok := e.stored("DEMO-1"); !ok {
		t.Fatal("the webhook was processed before the job runner ran")
	}
	e.process()
	if _, ok := e.stored("DEMO-1"); ok {
		t.Error("DEMO-1's checklist survived its issue")
	}
	if _, ok := e.stored("DEMO-2"); !ok {
		t.Error("DEMO-2's checklist was deleted too")
	}
	// Jira delivers again at times: same answer, and deleting what is
	// gone succeeds.
	wantStatus(t, e.signed("POST", "/webhooks/issue-deleted", "issueKey=DEMO-1", body), http.StatusNoContent)
	e.process()

	// Without the URL variable filled in, the body names the issue.
	wantStatus(t, e.signed("POST", "/webhooks/issue-deleted", "", `{"issue":{"key":"DEMO-2"}}`), http.StatusNoContent)
	e.process()
	if _, ok := e.stored("DEMO-2"); ok {
		t.Error("DEMO-2's checklist survived a webhook naming it in the body")
	}
	queue := server.WebhookQueue("jira:issue_deleted")
	if st, err := e.store.Stats(context.Background(), queue); err != nil || st.Dead != 0 {
		t.Fatalf("dead letters after good events: %+v, %v", st, err)
	}

	// An event naming no issue can never succeed: acknowledged, then a
	// dead letter at its first attempt, for an operator to look at.
	wantStatus(t, e.signed("POST", "/webhooks/issue-deleted", "", `{"issue":{}}`), http.StatusNoContent)
	e.process()
	dead, err := e.store.Jobs(context.Background(), tenon.JobFilter{Queue: queue, State: tenon.JobDead})
	if err != nil || len(dead) != 1 || dead[0].Attempts != 1 || !strings.Contains(dead[0].LastError, "issue key is not valid") {
		t.Fatalf("dead letters: %+v, %v; want the one event without an issue", dead, err)
	}

	// A body that is not JSON is refused before it is stored.
	wantStatus(t, e.signed("POST", "/webhooks/issue-deleted", "issueKey=DEMO-1", `{"issue":`), http.StatusBadRequest)

	// A context token from the browser cannot call the webhook.
	r := httptest.NewRequest("POST", basePath+"/webhooks/issue-deleted?issueKey=DEMO-1", strings.NewReader(body))
	r.Header.Set("Authorization", "JWT "+contextToken(t, demo1Context))
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, r)
	wantStatus(t, rec, http.StatusUnauthorized)
}

func TestStaticFiles(t *testing.T) {
	e := newEnv(t)
	panel := e.signed("GET", "/panel", panelQuery("active", "en"), "").Body.String()
	_, rest, _ := strings.Cut(panel, `src="static/checklist.js?v=`)
	version, _, _ := strings.Cut(rest, `"`)
	if version == "" {
		t.Fatalf("no versioned script URL in the panel:\n%s", panel)
	}
	get := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, httptest.NewRequest("GET", basePath+path, nil))
		return w
	}
	w := get("/static/checklist.js?v=" + version)
	wantStatus(t, w, http.StatusOK)
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("Content-Type %q", ct)
	}
	if !strings.Contains(w.Header().Get("Cache-Control"), "immutable") || w.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", w.Header())
	}
	if !strings.Contains(w.Body.String(), "AP.context") {
		t.Error("the script is not the panel's")
	}
	if cc := get("/static/checklist.js").Header().Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("unversioned Cache-Control %q", cc)
	}
	wantStatus(t, get("/static/checklist.css"), http.StatusOK)
	wantStatus(t, get("/static/nope.js"), http.StatusNotFound)
	wantStatus(t, get("/static/sub/checklist.js"), http.StatusNotFound)
}

func TestRoutesRejectsBadAllJSURL(t *testing.T) {
	e := newEnv(t)
	app := checklist.New(checklist.Options{AllJSURL: "javascript:alert(1)"})
	srv, err := server.New(server.Config{
		Descriptor: app.Descriptor(), BaseURL: appBase, Store: e.store, InstallKeys: noKeys{},
		AllowedHosts: []string{"127.0.0.1"}, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Routes(srv); err == nil {
		t.Error("Routes accepted a javascript: AllJSURL")
	}
}

func TestHooksLogWithoutSecrets(t *testing.T) {
	var buf bytes.Buffer
	app := checklist.New(checklist.Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	in := &tenon.Installation{ClientKey: clientKey, SharedSecret: secret, BaseURL: "https://acme.atlassian.net", ProductType: "jira",
		Payload: json.RawMessage(`{"sharedSecret":"` + secret + `"}`)}
	h := app.Hooks()
	h.Installed(context.Background(), in)
	h.Uninstalled(context.Background(), in)
	h.Enabled(context.Background(), in)
	h.Disabled(context.Background(), in)
	out := buf.String()
	if strings.Contains(out, secret) {
		t.Errorf("a hook logged the shared secret: %s", out)
	}
	for _, ev := range []string{"installed", "uninstalled", "enabled", "disabled"} {
		if !strings.Contains(out, "checklist: "+ev) {
			t.Errorf("no log line for %s: %s", ev, out)
		}
	}
	if !strings.Contains(out, clientKey) {
		t.Errorf("the log does not name the tenant: %s", out)
	}
}
