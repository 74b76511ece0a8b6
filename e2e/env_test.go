package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/cli"
	"github.com/tenon-dev/tenon/examples/checklist"
	"github.com/tenon-dev/tenon/fakeatlassian"
	"github.com/tenon-dev/tenon/keyring"
)

// Names from the checklist app's descriptor.
const (
	panelModule = "checklist-panel"
	issueKey    = "DEMO-1"
)

// env is one fake Atlassian and one checklist backend, wired as
// `tenon dev` wires them, each on its own loopback port.
type env struct {
	t       *testing.T
	fake    *fakeatlassian.Fake
	backend *cli.Backend
	appURL  string // the app's base URL, as the descriptor announces it
	appKey  string
	client  *http.Client
}

// envOptions vary what differs between tests.
type envOptions struct {
	// basePath mounts the app under a path of its host ("" for the root),
	// so every qsh the fake signs for the app must strip it.
	basePath string
}

// newEnv starts the fake and the app. Everything stops when the test ends;
// the logs of both are printed only when the test failed, since they are
// noise otherwise.
func newEnv(t *testing.T, opts envOptions) *env {
	t.Helper()
	logs := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs of the fake and the app:\n%s", logs.String())
		}
	})
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	fake := fakeatlassian.New(fakeatlassian.Options{
		Logger: logger.With("component", "fake"),
		// Jira waits minutes between retries; a test cannot.
		WebhookRetryDelays: []time.Duration{10 * time.Millisecond, 20 * time.Millisecond},
	})
	if err := fake.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("start the fake: %v", err)
	}

	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret.key")
	line, err := keyring.Generate(nil)
	if err != nil {
		t.Fatalf("generate a secret key: %v", err)
	}
	if err := os.WriteFile(keyFile, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	appURL := "http://" + ln.Addr().String() + opts.basePath
	app := checklist.New(checklist.Options{
		// The panel loads the AP library from the fake, as in `tenon dev`:
		// a browser test has no network, and the fake's copy speaks to the
		// fake's host page.
		AllJSURL: fake.URL() + "/atlassian-connect/all.js",
		Logger:   logger.With("component", "checklist"),
	})
	cfg := &cli.Config{
		Addr:            ln.Addr().String(),
		BaseURL:         appURL,
		DB:              filepath.Join(dir, "tenon.db"),
		Environment:     "development",
		InstallKeysURL:  fake.KeyServerURL(),
		SecretKeyFile:   keyFile,
		LogLevel:        "debug",
		ShutdownTimeout: 10 * time.Second, // above net/http's 5 s grace for an unused connection
	}
	b, err := cli.Open(context.Background(), cfg, app, logger.With("component", "tenon"))
	if err != nil {
		ln.Close()
		fake.Close()
		t.Fatalf("open the backend: %v", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- b.ServeListener(ctx, ln) }()
	t.Cleanup(func() {
		// The fake first, so no webhook retry is in flight when the app
		// goes away.
		fake.Close()
		stop()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("the backend did not shut down within 10s")
		}
		if err := b.Close(); err != nil {
			t.Errorf("close the backend: %v", err)
		}
	})

	return &env{
		t:       t,
		fake:    fake,
		backend: b,
		appURL:  appURL,
		appKey:  b.Server.AppKey(),
		client:  &http.Client{Timeout: 15 * time.Second},
	}
}

// withT returns a copy of e that reports to t, for subtests: a failing
// helper must stop the test it runs in, not its parent.
func (e *env) withT(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

// addSite creates a site on the fake.
func (e *env) addSite(name, product string) *fakeatlassian.Site {
	e.t.Helper()
	site, err := e.fake.AddSite(fakeatlassian.SiteOptions{Name: name, Product: product})
	if err != nil {
		e.t.Fatalf("add site %s: %v", name, err)
	}
	return site
}

// install installs the app on site as an administrator would.
func (e *env) install(site *fakeatlassian.Site) fakeatlassian.App {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	app, err := e.fake.Install(ctx, site, e.appURL+"/atlassian-connect.json")
	if err != nil {
		e.t.Fatalf("install on %s: %v", site.Name, err)
	}
	return app
}

// tenant reads the site's installation from the app's store.
func (e *env) tenant(site *fakeatlassian.Site) *tenon.Installation {
	e.t.Helper()
	in, err := e.backend.Store.Installation(context.Background(), site.ClientKey)
	if err != nil {
		e.t.Fatalf("the store has no tenant %s: %v", site.ClientKey, err)
	}
	return in
}

// panelURL is the signed iframe src of the checklist panel on issue.
func (e *env) panelURL(site *fakeatlassian.Site, issue string) string {
	e.t.Helper()
	u, err := e.fake.SignedModuleURL(site, e.appKey, panelModule, fakeatlassian.FrameOptions{IssueKey: issue})
	if err != nil {
		e.t.Fatalf("signed panel URL: %v", err)
	}
	return u
}

// contextToken is what AP.context.getToken returns inside the panel on issue.
func (e *env) contextToken(site *fakeatlassian.Site, issue string) string {
	e.t.Helper()
	tok, err := e.fake.ContextToken(site, e.appKey, fakeatlassian.FrameOptions{IssueKey: issue})
	if err != nil {
		e.t.Fatalf("context token: %v", err)
	}
	return tok
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) String() string {
	return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(r.body))
}

// do sends one request and reads the whole answer.
func (e *env) do(method, url string, hdr http.Header, body io.Reader) response {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		e.t.Fatalf("request %s %s: %v", method, url, err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("read the answer of %s %s: %v", method, url, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// page fetches an iframe URL as a browser would.
func (e *env) page(url string) response {
	e.t.Helper()
	return e.do(http.MethodGet, url, http.Header{"Accept": {"text/html,application/xhtml+xml"}}, nil)
}

// api calls the checklist API of issue as the panel's browser code does:
// a context token in the Authorization header, JSON in and out.
func (e *env) api(method, token, issue, path string, in any) response {
	e.t.Helper()
	hdr := http.Header{"Accept": {"application/json"}, "Authorization": {"JWT " + token}}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			e.t.Fatal(err)
		}
		body = bytes.NewReader(b)
		hdr.Set("Content-Type", "application/json")
	}
	return e.do(method, e.appURL+"/api/checklists/"+issue+path, hdr, body)
}

// checklist decodes an API answer that must have the given status.
func (e *env) checklist(r response, wantStatus int) checklist.Checklist {
	e.t.Helper()
	if r.status != wantStatus {
		e.t.Fatalf("status: got %s, want %d", r, wantStatus)
	}
	var c checklist.Checklist
	if err := json.Unmarshal(r.body, &c); err != nil {
		e.t.Fatalf("decode checklist %q: %v", r.body, err)
	}
	return c
}

// waitWebhooks waits, within a bound, until the fake has delivered every
// queued webhook, retries included.
func (e *env) waitWebhooks() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := e.fake.WaitWebhooks(ctx); err != nil {
		e.t.Fatalf("wait for webhooks: %v", err)
	}
}

// calls returns the fake's record filtered by keep.
func (e *env) calls(keep func(fakeatlassian.Call) bool) []fakeatlassian.Call {
	var out []fakeatlassian.Call
	for _, c := range e.fake.Calls() {
		if keep(c) {
			out = append(out, c)
		}
	}
	return out
}

// lifecycleCalls returns the lifecycle callbacks the fake sent to the app
// on site, in order, as "event status".
func (e *env) lifecycleCalls(site *fakeatlassian.Site) []string {
	var out []string
	for _, c := range e.calls(func(c fakeatlassian.Call) bool {
		return c.Kind == fakeatlassian.KindLifecycle && c.Direction == fakeatlassian.DirectionOut && c.Site == site.Name
	}) {
		out = append(out, fmt.Sprintf("%s %d", c.Event, c.Status))
	}
	return out
}

// itemTexts lists the texts of a checklist's items.
func itemTexts(c checklist.Checklist) []string {
	out := []string{}
	for _, it := range c.Items {
		out = append(out, it.Text)
	}
	return out
}

// lockedBuffer collects log lines written from many goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// isCode reports whether err carries the tenon error code.
func isCode(err error, code string) bool {
	var te *tenon.Error
	return errors.As(err, &te) && te.Code == code
}

// joinLines is for readable failure messages.
func joinLines(lines []string) string { return "\n\t" + strings.Join(lines, "\n\t") }
