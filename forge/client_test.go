package forge_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/forge"
	"github.com/tenon-dev/tenon/hostclient"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/sqlite"
)

// product is an api.atlassian.com stand-in that accepts one bearer token
// and records what it received.
type product struct {
	srv   *httptest.Server
	token string
	mu    sync.Mutex
	paths []string
	fail  []int // statuses to answer first, one per request
}

func newProduct(t *testing.T, token string) *product {
	p := &product{token: token}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.paths = append(p.paths, r.URL.RequestURI())
		var status int
		if len(p.fail) > 0 {
			status, p.fail = p.fail[0], p.fail[1:]
		}
		token := p.token
		p.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, `{"message":"bad token"}`, http.StatusUnauthorized)
			return
		}
		if status != 0 {
			w.Header().Set("Retry-After", "0")
			http.Error(w, `{"message":"injected"}`, status)
			return
		}
		if !strings.HasPrefix(r.URL.Path, "/ex/jira/"+cloudID+"/rest/api/3/") {
			http.Error(w, `{"errorMessages":["no such resource"]}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"accountId":"557058:app","path":"` + r.URL.Path + `"}`))
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *product) base() string { return p.srv.URL + "/ex/jira/" + cloudID }

func (p *product) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.paths...)
}

func noSleep(ctx context.Context, d time.Duration) error { return ctx.Err() }

func testClient(opts forge.ClientOptions) *forge.Client {
	opts.AllowHTTP = true
	opts.Policy.Sleep = noSleep
	opts.Policy.Rand = func() float64 { return 0 }
	return forge.NewClient(opts)
}

func callContext(apiBase string) *tenon.ForgeContext {
	fc := &tenon.ForgeContext{InstallationID: installationID, CloudID: cloudID, APIBaseURL: apiBase}
	fc.SetTokens("system-token", "user-token")
	return fc
}

func TestClientForCall(t *testing.T) {
	sys := newProduct(t, "system-token")
	c := testClient(forge.ClientOptions{})
	ctx := context.Background()
	var me struct{ AccountID, Path string }
	if err := c.ForCall(callContext(sys.base()), false).GetJSON(ctx, "/rest/api/3/myself", &me); err != nil {
		t.Fatal(err)
	}
	if me.Path != "/ex/jira/"+cloudID+"/rest/api/3/myself" {
		t.Errorf("path %q", me.Path)
	}
	// As the user, the user token goes out.
	usr := newProduct(t, "user-token")
	if err := c.ForCall(callContext(usr.base()), true).GetJSON(ctx, "/rest/api/3/myself", nil); err != nil {
		t.Errorf("as user: %v", err)
	}
	// A call whose token Forge did not send fails clearly.
	fc := callContext(sys.base())
	fc.SetTokens("", "")
	err := c.ForCall(fc, false).GetJSON(ctx, "/rest/api/3/myself", nil)
	if !errors.Is(err, forge.ErrNoToken) || tenon.ErrorCode(err) != tenon.EUNAVAILABLE {
		t.Errorf("no token: %v", err)
	}
	if err := c.ForCall(nil, false).GetJSON(ctx, "/rest/api/3/myself", nil); err == nil {
		t.Error("a nil Forge context was accepted")
	}
}

func TestClientErrorsAndRetries(t *testing.T) {
	p := newProduct(t, "system-token")
	c := testClient(forge.ClientOptions{})
	ctx := context.Background()
	call := c.ForCall(callContext(p.base()), false)

	// A GET is retried through the Resilience, as Connect calls are.
	p.mu.Lock()
	p.fail = []int{http.StatusServiceUnavailable}
	p.mu.Unlock()
	if err := call.GetJSON(ctx, "/rest/api/3/myself", nil); err != nil {
		t.Fatalf("after one 503: %v", err)
	}
	if n := len(p.requests()); n != 2 {
		t.Errorf("%d requests, want 2 (one retry)", n)
	}
	// A POST is not.
	p.mu.Lock()
	p.fail = []int{http.StatusServiceUnavailable}
	p.mu.Unlock()
	err := call.SendJSON(ctx, http.MethodPost, "/rest/api/3/issue", map[string]string{"a": "b"}, nil)
	var un *hostclient.UnavailableError
	if tenon.ErrorCode(err) != tenon.EUNAVAILABLE || !errors.As(err, &un) {
		t.Errorf("POST after a 503: %v", err)
	}
	err = call.GetJSON(ctx, "/rest/api/3/nothing/../../x", nil)
	if err == nil {
		t.Error("dot segments accepted")
	}
	err = call.GetJSON(ctx, "/rest/other", nil)
	var ae *hostclient.APIError
	if tenon.ErrorCode(err) != tenon.ENOTFOUND || !errors.As(err, &ae) || ae.Status != 404 {
		t.Errorf("404: %v", err)
	}
	if strings.Contains(tenon.ErrorMessage(err), "no such resource") {
		t.Error("the product's body reached the caller's message")
	}
}

func TestClientRefusesPathsThatLeave(t *testing.T) {
	p := newProduct(t, "system-token")
	call := testClient(forge.ClientOptions{}).ForCall(callContext(p.base()), false)
	for _, path := range []string{
		"", "rest/api/3/myself", "//evil.example/x", "/a/../../../admin", "/a/%2e%2e/b", "/a%2Fb",
		"/a\\b", "/a#frag", "/a b", "https://evil.example/x",
	} {
		if _, err := call.Do(context.Background(), http.MethodGet, path, nil, nil); err == nil {
			t.Errorf("path %q accepted", path)
		}
	}
	if n := len(p.requests()); n != 0 {
		t.Errorf("%d requests reached the product", n)
	}
	if _, err := call.Do(context.Background(), http.MethodGet, "/rest/api/3/myself", strings.NewReader("x"), nil); err == nil {
		t.Error("GET with a body accepted")
	}
}

func TestClientDoesNotFollowRedirects(t *testing.T) {
	var leaked bool
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked = r.Header.Get("Authorization") != ""
	}))
	defer evil.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, evil.URL+"/steal", http.StatusFound)
	}))
	defer redirect.Close()
	call := testClient(forge.ClientOptions{}).ForCall(callContext(redirect.URL+"/ex/jira/"+cloudID), false)
	resp, err := call.Do(context.Background(), http.MethodGet, "/rest/api/3/myself", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || leaked {
		t.Errorf("status %d, token leaked %v", resp.StatusCode, leaked)
	}
}

func TestClientHTTPRefusedByDefault(t *testing.T) {
	p := newProduct(t, "system-token")
	call := forge.NewClient(forge.ClientOptions{}).ForCall(callContext(p.base()), false)
	if err := call.GetJSON(context.Background(), "/rest/api/3/myself", nil); err == nil {
		t.Error("an http apiBaseUrl was called without AllowHTTP")
	}
}

func TestClientAsAppUsesCachedToken(t *testing.T) {
	kr, err := keyring.New(bytes.Repeat([]byte{7}, keyring.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	c := newClock()
	store, err := sqlite.Open(filepath.Join(t.TempDir(), "tenon.db"), sqlite.Options{SecretBox: kr, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	p := newProduct(t, "cached-system-token")
	ctx := context.Background()
	client := testClient(forge.ClientOptions{Tokens: store, Installations: store, Now: c.Now})

	if _, err := client.AsApp(ctx, installationID); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("unknown installation: %v", err)
	}
	in := &tenon.ForgeInstallation{InstallationID: installationID, AppID: appID, CloudID: cloudID, APIBaseURL: p.base()}
	if err := store.RecordForgeInstallation(ctx, in); err != nil {
		t.Fatal(err)
	}
	if _, err := client.AsApp(ctx, installationID); !errors.Is(err, forge.ErrNoToken) {
		t.Errorf("no cached token: %v", err)
	}
	// A token about to expire is not handed out.
	if err := store.PutToken(ctx, forge.SystemTokenKey(installationID), "cached-system-token", c.Now().Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := client.AsApp(ctx, installationID); !errors.Is(err, forge.ErrNoToken) {
		t.Errorf("token about to expire: %v", err)
	}
	if err := store.PutToken(ctx, forge.SystemTokenKey(installationID), "cached-system-token", c.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	call, err := client.AsApp(ctx, installationID)
	if err != nil {
		t.Fatal(err)
	}
	if err := call.GetJSON(ctx, "/rest/api/3/myself", nil); err != nil {
		t.Fatalf("AsApp call: %v", err)
	}
	// The product refuses the token: it is dropped from the cache, so
	// later work waits for a fresh one.
	p.mu.Lock()
	p.token = "rotated"
	p.mu.Unlock()
	if err := call.GetJSON(ctx, "/rest/api/3/myself", nil); tenon.ErrorCode(err) != tenon.EUNAUTHORIZED {
		t.Errorf("refused token: %v", err)
	}
	if _, _, err := store.Token(ctx, forge.SystemTokenKey(installationID), c.Now()); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("the refused token is still cached: %v", err)
	}
	if _, err := client.AsUser(ctx, installationID, ""); err == nil {
		t.Error("AsUser without an accountId accepted")
	}
	if _, err := client.AsUser(ctx, installationID, "557058:someone"); !errors.Is(err, forge.ErrNoToken) {
		t.Errorf("AsUser without a token: %v", err)
	}
}
