package fakeatlassian_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tenon-dev/tenon/fakeatlassian"
)

// newFake starts a fake on 127.0.0.1:0 with fast webhook retries.
func newFake(t *testing.T, opts fakeatlassian.Options) *fakeatlassian.Fake {
	t.Helper()
	if opts.WebhookRetryDelays == nil {
		opts.WebhookRetryDelays = []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError}))
	}
	f := fakeatlassian.New(opts)
	if err := f.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("start fake: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("close fake: %v", err)
		}
	})
	return f
}

func addSite(t *testing.T, f *fakeatlassian.Fake, name, product string) *fakeatlassian.Site {
	t.Helper()
	s, err := f.AddSite(fakeatlassian.SiteOptions{Name: name, Product: product})
	if err != nil {
		t.Fatalf("add site %s: %v", name, err)
	}
	return s
}

// lifecycleCall is one lifecycle callback the test app received.
type lifecycleCall struct {
	Event   string
	Path    string
	Payload map[string]any
	Header  map[string]any
	Claims  jwt.MapClaims
	Err     error // verification failure, if any
}

// webhookCall is one webhook delivery attempt the test app received.
type webhookCall struct {
	Path, RawQuery string
	ID, Retry      string
	Body           map[string]any
	Claims         jwt.MapClaims
	Err            error
}

// testApp is a tiny Connect app: it serves a descriptor, verifies every
// callback the way an app must (RS256 from the key server for
// installed/uninstalled, HS256 with the shared secret otherwise, qsh,
// aud, iss) and records what it got.
type testApp struct {
	t          *testing.T
	fake       *fakeatlassian.Fake
	srv        *httptest.Server
	key        string
	basePath   string // the app's baseUrl path, stripped for qsh
	descriptor map[string]any

	mu             sync.Mutex
	secrets        map[string]string // clientKey → shared secret
	lifecycle      []lifecycleCall
	webhooks       []webhookCall
	failLifecycle  map[string]int // event → status to answer
	webhookAnswers []int          // statuses for successive webhook attempts; then 204
	frames         []url.Values   // queries of iframe loads
	reports        chan []byte    // what browserPage reported
	slowWebhooks   int            // attempts to answer only after webhookDelay
	webhookDelay   time.Duration
	kids           []string
	// beforeLifecycle, when set, runs before a lifecycle callback is
	// answered, outside mu.
	beforeLifecycle func(event string)
}

func newTestApp(t *testing.T, f *fakeatlassian.Fake, key string) *testApp {
	t.Helper()
	a := &testApp{t: t, fake: f, key: key, basePath: "/app", secrets: map[string]string{}, failLifecycle: map[string]int{},
		reports: make(chan []byte, 1)}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	a.descriptor = map[string]any{
		"key":             key,
		"name":            "Test app " + key,
		"baseUrl":         a.baseURL(),
		"authentication":  map[string]any{"type": "jwt"},
		"lifecycle":       map[string]any{"installed": "/installed", "uninstalled": "/uninstalled", "enabled": "/enabled", "disabled": "/disabled"},
		"scopes":          []string{"READ", "WRITE", "DELETE", "ACT_AS_USER"},
		"enableLicensing": true,
		"apiMigrations":   map[string]any{"signed-install": true, "context-qsh": true},
		"modules": map[string]any{
			"webhooks": []any{
				map[string]any{"event": "jira:issue_created", "url": "/webhook/created?issue=${issue.key}&project={project.key}"},
				map[string]any{"event": "jira:issue_updated", "url": "/webhook/updated"},
				map[string]any{"event": "jira:issue_deleted", "url": "/webhook/deleted"},
			},
			"webPanels": []any{
				map[string]any{"key": "issue-panel", "name": map[string]any{"value": "Panel"}, "url": "/panel?issueKey={issue.key}&projectId={project.id}", "location": "atl.jira.view.issue.right.context"},
			},
			"generalPages": []any{
				map[string]any{"key": "main-page", "name": map[string]any{"value": "Main page"}, "url": "/page"},
				map[string]any{"key": "browser-page", "name": map[string]any{"value": "Browser check"}, "url": "/browser"},
			},
		},
	}
	return a
}

func (a *testApp) baseURL() string       { return a.srv.URL + a.basePath }
func (a *testApp) descriptorURL() string { return a.srv.URL + "/atlassian-connect.json" }

func (a *testApp) secret(clientKey string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.secrets[clientKey]
}

func (a *testApp) lifecycleCalls() []lifecycleCall {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.lifecycle)
}

func (a *testApp) answerWebhooks(statuses ...int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.webhookAnswers = statuses
}

// delayWebhooks makes the next n webhook attempts answer after d.
func (a *testApp) delayWebhooks(n int, d time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.slowWebhooks, a.webhookDelay = n, d
}

func (a *testApp) failEvent(event string, status int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failLifecycle[event] = status
}

func (a *testApp) setDescriptor(field string, v any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.descriptor[field] = v
}

func (a *testApp) kidsSeen() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.kids)
}

func (a *testApp) webhookCalls() []webhookCall {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.webhooks)
}

func (a *testApp) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/atlassian-connect.json":
		a.mu.Lock()
		b, _ := json.Marshal(a.descriptor)
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	case r.Method == http.MethodPost && slices.Contains([]string{"/app/installed", "/app/uninstalled", "/app/enabled", "/app/disabled"}, r.URL.Path):
		a.serveLifecycle(w, r)
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/app/webhook/"):
		a.serveWebhook(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/app/browser":
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, browserPage, a.fake.URL())
	case r.Method == http.MethodPost && r.URL.Path == "/app/report":
		b, _ := io.ReadAll(r.Body)
		select {
		case a.reports <- b:
		default:
		}
	case r.Method == http.MethodGet && (r.URL.Path == "/app/panel" || r.URL.Path == "/app/page"):
		a.mu.Lock()
		a.frames = append(a.frames, r.URL.Query())
		a.mu.Unlock()
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<!doctype html><p>app frame</p>`)
	default:
		http.NotFound(w, r)
	}
}

func (a *testApp) serveLifecycle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	call := lifecycleCall{Path: r.URL.Path, Event: strings.TrimPrefix(r.URL.Path, "/app/")}
	if err := json.Unmarshal(body, &call.Payload); err != nil {
		call.Err = fmt.Errorf("payload: %w", err)
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "JWT ")
	if !ok {
		call.Err = errors.New("no JWT Authorization header")
	}
	if call.Err == nil {
		call.Header, call.Claims, call.Err = a.verifyLifecycle(call.Event, token, r, call.Payload)
	}
	if a.beforeLifecycle != nil {
		a.beforeLifecycle(call.Event)
	}
	a.mu.Lock()
	a.lifecycle = append(a.lifecycle, call)
	status := a.failLifecycle[call.Event]
	if call.Err == nil && call.Event == "installed" && status == 0 {
		a.secrets[call.Payload["clientKey"].(string)] = call.Payload["sharedSecret"].(string)
	}
	a.mu.Unlock()
	switch {
	case call.Err != nil:
		http.Error(w, call.Err.Error(), http.StatusUnauthorized)
	case status != 0:
		http.Error(w, "the app says no", status)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// verifyLifecycle checks a lifecycle token as PROTOCOL §2 requires.
func (a *testApp) verifyLifecycle(event, token string, r *http.Request, payload map[string]any) (map[string]any, jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	var tok *jwt.Token
	var err error
	if event == "installed" || event == "uninstalled" {
		tok, err = jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithExpirationRequired(), jwt.WithAudience(a.baseURL())).
			ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
				kid, _ := t.Header["kid"].(string)
				a.mu.Lock()
				a.kids = append(a.kids, kid)
				a.mu.Unlock()
				return fetchInstallKey(a.fake.KeyServerURL(), kid)
			})
	} else {
		clientKey, _ := payload["clientKey"].(string)
		tok, err = jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired()).
			ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return []byte(a.secret(clientKey)), nil })
	}
	if err != nil {
		return nil, nil, fmt.Errorf("verify %s token: %w", event, err)
	}
	if want := fakeatlassian.QSH("POST", r.URL.EscapedPath(), a.basePath, r.URL.RawQuery); claims["qsh"] != want {
		return nil, nil, fmt.Errorf("qsh %v, want %s", claims["qsh"], want)
	}
	if claims["iss"] != payload["clientKey"] {
		return nil, nil, fmt.Errorf("iss %v != clientKey %v", claims["iss"], payload["clientKey"])
	}
	return tok.Header, claims, nil
}

// fetchInstallKey gets and parses a PEM public key from the key server.
func fetchInstallKey(keyServer, kid string) (*rsa.PublicKey, error) {
	if kid == "" {
		return nil, errors.New("no kid")
	}
	resp, err := http.Get(keyServer + "/" + url.PathEscape(kid))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("key server answered %d for kid %s", resp.StatusCode, kid)
	}
	pemBytes, _ := io.ReadAll(resp.Body)
	return jwt.ParseRSAPublicKeyFromPEM(pemBytes)
}

func (a *testApp) serveWebhook(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	slow := a.slowWebhooks > 0
	if slow {
		a.slowWebhooks--
	}
	delay := a.webhookDelay
	a.mu.Unlock()
	if slow {
		time.Sleep(delay)
	}
	body, _ := io.ReadAll(r.Body)
	call := webhookCall{Path: r.URL.Path, RawQuery: r.URL.RawQuery,
		ID: r.Header.Get("X-Atlassian-Webhook-Identifier"), Retry: r.Header.Get("X-Atlassian-Webhook-Retry")}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &call.Body); err != nil {
			call.Err = err
		}
	}
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "JWT ")
	claims := jwt.MapClaims{}
	_, err := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired()).
		ParseWithClaims(token, claims, func(*jwt.Token) (any, error) {
			iss, _ := claims["iss"].(string)
			return []byte(a.secret(iss)), nil
		})
	if err != nil {
		call.Err = fmt.Errorf("verify webhook token: %w", err)
	} else if want := fakeatlassian.QSH("POST", r.URL.EscapedPath(), a.basePath, r.URL.RawQuery); claims["qsh"] != want {
		call.Err = fmt.Errorf("webhook qsh %v, want %s", claims["qsh"], want)
	}
	call.Claims = claims
	a.mu.Lock()
	a.webhooks = append(a.webhooks, call)
	status := http.StatusNoContent
	if len(a.webhookAnswers) > 0 {
		status, a.webhookAnswers = a.webhookAnswers[0], a.webhookAnswers[1:]
	}
	a.mu.Unlock()
	w.WriteHeader(status)
}

// install installs the app on site and fails the test on error.
func (a *testApp) install(site *fakeatlassian.Site) fakeatlassian.App {
	a.t.Helper()
	app, err := a.fake.Install(context.Background(), site, a.descriptorURL())
	if err != nil {
		a.t.Fatalf("install %s on %s: %v", a.key, site.Name, err)
	}
	return app
}

// signREST signs a request to the product as the app (PROTOCOL §5).
func signREST(t *testing.T, app fakeatlassian.App, site *fakeatlassian.Site, method, rawURL string, mutate func(jwt.MapClaims)) string {
	t.Helper()
	now := time.Now()
	claims := jwt.MapClaims{
		"iss": app.Key,
		"iat": now.Unix(),
		"exp": now.Add(3 * time.Minute).Unix(),
		"qsh": fakeatlassian.QSHOfURL(method, rawURL, site.BaseURL),
	}
	if mutate != nil {
		mutate(claims)
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(app.SharedSecret))
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return tok
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
	return m
}

// do makes a request and reads the whole answer.
func do(t *testing.T, method, rawURL, auth string, body any) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, rawURL, rd)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// asApp calls the product REST API with the app's JWT.
func asApp(t *testing.T, app fakeatlassian.App, site *fakeatlassian.Site, method, path string, body any) response {
	t.Helper()
	u := site.BaseURL + path
	return do(t, method, u, "JWT "+signREST(t, app, site, method, u, nil), body)
}

func waitWebhooks(t *testing.T, f *fakeatlassian.Fake) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.WaitWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// clock is a settable time source for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

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

func readAll(resp *http.Response) ([]byte, error) { return io.ReadAll(resp.Body) }

// browserPage is an app page that exercises the AP bridge in a real
// browser and reports what it got to /app/report.
const browserPage = `<!doctype html>
<html><body><p>browser check</p>
<script src="%s/atlassian-connect/all.js" data-options="resize:false"></script>
<script>
(async function () {
  var out = {};
  try {
    out.token = await AP.context.getToken();
    out.context = await AP.context.getContext();
    var r = await AP.request({url: '/rest/api/3/myself'});
    out.myself = JSON.parse(r.body);
    out.callbackToken = await new Promise(function (resolve) { AP.context.getToken(resolve); });
    try { await AP.request('/rest/api/3/issue/NOPE-1'); } catch (e) { out.notFoundStatus = e.xhr.status; }
    out.user = await AP.user.getCurrentUser();
    out.theming = await AP.theming.initializeTheming();
    out.colorMode = document.documentElement.getAttribute('data-color-mode');
    out.dataTheme = document.documentElement.getAttribute('data-theme');
  } catch (e) {
    out.error = String(e && e.message || e);
  }
  await fetch('/app/report', {method: 'POST', body: JSON.stringify(out)});
})();
</script></body></html>`
