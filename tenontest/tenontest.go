// Package tenontest runs an app built on tenon against the fake Atlassian,
// on loopback, for the app's own tests: the app is installed into a fake
// Jira site with real signed lifecycle calls, and a test requests its
// module pages with signed URLs, its browser-API routes with context
// tokens, and its Forge Remote routes with Forge Invocation Tokens — the
// requests the product would send, verified by the same code as in
// production.
//
//	func TestHello(t *testing.T) {
//		env := tenontest.Start(t, app{}, tenontest.Options{})
//		res := env.Page("hello-page", fakeatlassian.FrameOptions{})
//		if res.Status != 200 { t.Fatal(res) }
//	}
//
// Everything Start starts is stopped when the test ends. The store is
// SQLite in the test's temporary directory.
package tenontest

import (
	"bytes"
	"context"
	"encoding/json"
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

	"github.com/tenon-dev/tenon/cli"
	"github.com/tenon-dev/tenon/fakeatlassian"
	"github.com/tenon-dev/tenon/keyring"
)

// Options vary an Env. The zero value installs the app into one Jira site.
type Options struct {
	// Product of the site: "jira" (default) or "confluence".
	Product string
	// Forge installs the fake's Forge app into the site too, with the
	// app's base URL as its remote, so ForgeInvoke reaches the app's
	// Forge Remote routes.
	Forge bool
}

// Env is one app and one fake Atlassian, wired as `tenon dev` wires them.
type Env struct {
	Fake    *fakeatlassian.Fake
	Site    *fakeatlassian.Site
	App     fakeatlassian.App // the installed Connect app
	Backend *cli.Backend
	// BaseURL is the app's base URL, as its descriptor is served.
	BaseURL string

	t      testing.TB
	client *http.Client
}

// Response is an answer of the app, read whole.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

func (r Response) String() string { return fmt.Sprintf("%d %s", r.Status, r.Body) }

// Start runs app on SQLite with the fake Atlassian and installs it into a
// site. It fails the test when any of that fails; the logs of the app and
// the fake are printed when the test fails, and only then.
func Start(t testing.TB, app cli.App, opts Options) *Env {
	t.Helper()
	logs := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs of the fake Atlassian and the app:\n%s", logs.String())
		}
	})
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	fake := fakeatlassian.New(fakeatlassian.Options{
		Logger:             logger.With("component", "fake"),
		WebhookRetryDelays: []time.Duration{10 * time.Millisecond, 50 * time.Millisecond},
	})
	if err := fake.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("tenontest: start the fake Atlassian: %v", err)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret.key")
	line, err := keyring.Generate(nil)
	if err != nil {
		fake.Close()
		t.Fatalf("tenontest: generate a secret key: %v", err)
	}
	if err := os.WriteFile(keyFile, []byte(line+"\n"), 0o600); err != nil {
		fake.Close()
		t.Fatalf("tenontest: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fake.Close()
		t.Fatalf("tenontest: listen: %v", err)
	}
	baseURL := "http://" + ln.Addr().String()
	cfg := &cli.Config{
		Addr:           ln.Addr().String(),
		BaseURL:        baseURL,
		DB:             filepath.Join(dir, "tenon.db"),
		Environment:    "development",
		InstallKeysURL: fake.KeyServerURL(),
		SecretKeyFile:  keyFile,
		LogLevel:       "debug",
		// Above net/http's 5 s grace for a connection opened but never
		// used, so such a connection cannot make a clean stop time out.
		ShutdownTimeout: 10 * time.Second,
		AllJSURL:        fake.URL() + "/atlassian-connect/all.js",
		ForgeAppID:      fake.ForgeAppID(),
		ForgeJWKSURL:    fake.ForgeJWKSURL(),
		OAuthServerURL:  fake.AuthServerURL(),
	}
	b, err := cli.Open(context.Background(), cfg, app, logger.With("component", "tenon"))
	if err != nil {
		ln.Close()
		fake.Close()
		t.Fatalf("tenontest: open the app: %v", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- b.ServeListener(ctx, ln) }()
	e := &Env{Fake: fake, Backend: b, BaseURL: baseURL, t: t, client: &http.Client{Timeout: 15 * time.Second}}
	t.Cleanup(func() {
		fake.Close()
		e.client.CloseIdleConnections()
		stop()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("tenontest: serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("tenontest: the app did not shut down within 20s")
		}
		if err := b.Close(); err != nil {
			t.Errorf("tenontest: close the app: %v", err)
		}
	})

	e.Site, err = fake.AddSite(fakeatlassian.SiteOptions{Name: "test", Product: opts.Product})
	if err != nil {
		t.Fatalf("tenontest: add a site: %v", err)
	}
	installCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	e.App, err = fake.Install(installCtx, e.Site, baseURL+"/atlassian-connect.json")
	if err != nil {
		t.Fatalf("tenontest: install the app: %v", err)
	}
	if opts.Forge {
		if _, err := fake.InstallForge(e.Site, fakeatlassian.ForgeInstallOptions{RemoteBaseURL: baseURL, Environment: fakeatlassian.ForgeDevelopment}); err != nil {
			t.Fatalf("tenontest: install the Forge app: %v", err)
		}
	}
	return e
}

// Page requests the module page moduleKey as the product's iframe does:
// with a URL the fake signed for this one request.
func (e *Env) Page(moduleKey string, opts fakeatlassian.FrameOptions) Response {
	e.t.Helper()
	u, err := e.Fake.SignedModuleURL(e.Site, e.App.Key, moduleKey, opts)
	if err != nil {
		e.t.Fatalf("tenontest: sign a URL for module %s: %v", moduleKey, err)
	}
	return e.Do(http.MethodGet, u, nil, nil)
}

// ContextToken is what AP.context.getToken returns inside a module page.
func (e *Env) ContextToken(opts fakeatlassian.FrameOptions) string {
	e.t.Helper()
	tok, err := e.Fake.ContextToken(e.Site, e.App.Key, opts)
	if err != nil {
		e.t.Fatalf("tenontest: context token: %v", err)
	}
	return tok
}

// API calls a browser-API route (a path under the app's base URL) with a
// context token of the site's default user, as the app's page script
// does. in, when not nil, is sent as JSON.
func (e *Env) API(method, path string, in any) Response {
	e.t.Helper()
	return e.APIWithToken(method, path, e.ContextToken(fakeatlassian.FrameOptions{}), in)
}

// APIWithToken is API with a token of the caller's choosing.
func (e *Env) APIWithToken(method, path, token string, in any) Response {
	e.t.Helper()
	hdr := http.Header{"Authorization": {"JWT " + token}, "Accept": {"application/json"}}
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			e.t.Fatalf("tenontest: encode the request: %v", err)
		}
		body = bytes.NewReader(raw)
		hdr.Set("Content-Type", "application/json")
	}
	return e.Do(method, e.BaseURL+path, hdr, body)
}

// ForgeInvoke calls a Forge Remote route as Forge's invokeRemote does,
// with a Forge Invocation Token; Start needs Options.Forge.
func (e *Env) ForgeInvoke(inv fakeatlassian.ForgeInvocation) Response {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := e.Fake.InvokeRemote(ctx, e.Site, inv)
	if err != nil {
		e.t.Fatalf("tenontest: invoke %s: %v", inv.Path, err)
	}
	return Response{Status: res.Status, Header: res.Header, Body: string(res.Body)}
}

// Do sends one request to the app and reads the whole answer.
func (e *Env) Do(method, url string, hdr http.Header, body io.Reader) Response {
	e.t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		e.t.Fatalf("tenontest: %v", err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	res, err := e.client.Do(req)
	if err != nil {
		e.t.Fatalf("tenontest: %s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 8<<20))
	if err != nil {
		e.t.Fatalf("tenontest: read the answer to %s %s: %v", method, url, err)
	}
	return Response{Status: res.StatusCode, Header: res.Header, Body: string(raw)}
}

// Eventually calls check until it returns nil or the timeout passes, for
// effects of background work such as queued webhooks; it fails the test
// with check's last error.
func (e *Env) Eventually(timeout time.Duration, check func() error) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("tenontest: still not so after %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
