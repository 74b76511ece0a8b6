package hostclient_test

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
	"github.com/tenon-dev/tenon/hostclient"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/sqlite"
)

const (
	forgeAppID          = "ari:cloud:ecosystem::app/8db33809-1f32-48bb-8c52-5877dab48107"
	forgeInstallationID = "ari:cloud:ecosystem::installation/0a3a7799-53ae-4a5b-9e7e-03338980abb5"
	forgeCloudID        = "d0d52620-3203-4cfa-8db5-f2587155f0dd"
)

// forgeProduct is an api.atlassian.com stand-in that accepts one bearer
// token and records every request it receives.
type forgeProduct struct {
	srv   *httptest.Server
	mu    sync.Mutex
	token string
	seen  []string // request targets
	auths []string
	fail  []int // statuses to answer first, one per request
}

func newForgeProduct(t *testing.T, token string) *forgeProduct {
	t.Helper()
	p := &forgeProduct{token: token}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.seen = append(p.seen, r.RequestURI)
		p.auths = append(p.auths, r.Header.Get("Authorization"))
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
		if !strings.HasPrefix(r.URL.Path, "/ex/jira/"+forgeCloudID+"/rest/api/3/") {
			http.Error(w, `{"errorMessages":["no such resource"]}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"accountId":"557058:app","path":"` + r.URL.Path + `"}`))
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *forgeProduct) base() string { return p.srv.URL + "/ex/jira/" + forgeCloudID }

func (p *forgeProduct) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

func (p *forgeProduct) setToken(tok string) {
	p.mu.Lock()
	p.token = tok
	p.mu.Unlock()
}

func (p *forgeProduct) failNext(statuses ...int) {
	p.mu.Lock()
	p.fail = statuses
	p.mu.Unlock()
}

// forgeClient is a client for Forge calls on the test clock whose waits
// return at once and which accepts the test servers' http URLs.
func forgeClient(opts hostclient.Options) *hostclient.Client {
	opts.Forge.AllowHTTP = true
	if opts.Now == nil {
		opts.Now = func() time.Time { return testNow }
	}
	opts.Policy.Sleep = noSleep
	opts.Policy.Rand = func() float64 { return 0 }
	return hostclient.New(appKey, opts)
}

func forgeContext(apiBase string) *tenon.ForgeContext {
	fc := &tenon.ForgeContext{InstallationID: forgeInstallationID, CloudID: forgeCloudID, APIBaseURL: apiBase}
	fc.SetTokens("system-token", "user-token")
	return fc
}

func TestForgeCall(t *testing.T) {
	sys := newForgeProduct(t, "system-token")
	c := forgeClient(hostclient.Options{})
	ctx := context.Background()
	var me struct{ AccountID, Path string }
	tenant := c.ForgeCall(forgeContext(sys.base()), false)
	if err := tenant.GetJSON(ctx, "/rest/api/3/myself", &me); err != nil {
		t.Fatal(err)
	}
	if me.Path != "/ex/jira/"+forgeCloudID+"/rest/api/3/myself" {
		t.Errorf("path %q", me.Path)
	}
	if tenant.BaseURL() != sys.base() || tenant.ClientKey() != "" || tenant.AccountID() != "" {
		t.Errorf("BaseURL %q, ClientKey %q, AccountID %q", tenant.BaseURL(), tenant.ClientKey(), tenant.AccountID())
	}
	// As the user, the user token goes out.
	usr := newForgeProduct(t, "user-token")
	if err := c.ForgeCall(forgeContext(usr.base()), true).GetJSON(ctx, "/rest/api/3/myself", nil); err != nil {
		t.Errorf("as user: %v", err)
	}
	// A call whose token Forge did not send fails clearly, unsent.
	fc := forgeContext(sys.base())
	fc.SetTokens("", "")
	before := len(sys.requests())
	err := c.ForgeCall(fc, false).GetJSON(ctx, "/rest/api/3/myself", nil)
	if !errors.Is(err, hostclient.ErrNoForgeToken) || tenon.ErrorCode(err) != tenon.EUNAVAILABLE {
		t.Errorf("no token: %v", err)
	}
	if err := c.ForgeCall(nil, false).GetJSON(ctx, "/rest/api/3/myself", nil); err == nil {
		t.Error("a nil Forge context was accepted")
	}
	fc.SetTokens("tok\r\nX-Injected: 1", "")
	if err := c.ForgeCall(fc, false).GetJSON(ctx, "/rest/api/3/myself", nil); err == nil {
		t.Error("a token that splits a header was sent")
	}
	if n := len(sys.requests()) - before; n != 0 {
		t.Errorf("%d requests without a usable token reached the product", n)
	}
}

// TestForgeHTTPClient: a client library gets the same checks and the
// bearer token through HTTPClient.
func TestForgeHTTPClient(t *testing.T) {
	p := newForgeProduct(t, "system-token")
	tenant := forgeClient(hostclient.Options{}).ForgeCall(forgeContext(p.base()), false)
	resp, err := tenant.HTTPClient().Get(tenant.BaseURL() + "/rest/api/3/myself")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d", resp.StatusCode)
	}
	if _, err := tenant.HTTPClient().Get(p.srv.URL + "/ex/jira/other-cloud/rest/api/3/myself"); tenon.ErrorCode(err) != tenon.EINVALID {
		t.Errorf("another cloud's path: %v", err)
	}
	if n := len(p.requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestForgeErrorsAndRetries(t *testing.T) {
	p := newForgeProduct(t, "system-token")
	c := forgeClient(hostclient.Options{})
	ctx := context.Background()
	tenant := c.ForgeCall(forgeContext(p.base()), false)

	// A GET is retried through the Resilience, as Connect calls are.
	p.failNext(http.StatusServiceUnavailable)
	if err := tenant.GetJSON(ctx, "/rest/api/3/myself", nil); err != nil {
		t.Fatalf("after one 503: %v", err)
	}
	if n := len(p.requests()); n != 2 {
		t.Errorf("%d requests, want 2 (one retry)", n)
	}
	// A POST is not.
	p.failNext(http.StatusServiceUnavailable)
	err := tenant.SendJSON(ctx, http.MethodPost, "/rest/api/3/issue", map[string]string{"a": "b"}, nil)
	var un *hostclient.UnavailableError
	if tenon.ErrorCode(err) != tenon.EUNAVAILABLE || !errors.As(err, &un) || un.Site != "forge:"+forgeCloudID {
		t.Errorf("POST after a 503: %v", err)
	}
	if n := len(p.requests()); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
	err = tenant.GetJSON(ctx, "/rest/other", nil)
	var ae *hostclient.APIError
	if tenon.ErrorCode(err) != tenon.ENOTFOUND || !errors.As(err, &ae) || ae.Status != 404 {
		t.Errorf("404: %v", err)
	}
	if strings.Contains(tenon.ErrorMessage(err), "no such resource") {
		t.Error("the product's body reached the caller's message")
	}
}

func TestForgeDoesNotFollowRedirectsElsewhere(t *testing.T) {
	var mu sync.Mutex
	var leaked, hits int
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		hits++
		if r.Header.Get("Authorization") != "" {
			leaked++
		}
	}))
	defer evil.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, evil.URL+"/steal", http.StatusFound)
	}))
	defer redirect.Close()
	tenant := forgeClient(hostclient.Options{}).ForgeCall(forgeContext(redirect.URL+"/ex/jira/"+forgeCloudID), false)
	resp, err := tenant.Do(context.Background(), http.MethodGet, "/rest/api/3/myself", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if resp.StatusCode != http.StatusFound || hits != 0 || leaked != 0 {
		t.Errorf("status %d; the other origin saw %d requests, %d with a token", resp.StatusCode, hits, leaked)
	}
}

func TestForgeHTTPRefusedByDefault(t *testing.T) {
	p := newForgeProduct(t, "system-token")
	c := hostclient.New(appKey, hostclient.Options{})
	if err := c.ForgeCall(forgeContext(p.base()), false).GetJSON(context.Background(), "/rest/api/3/myself", nil); err == nil {
		t.Error("an http apiBaseUrl was called without Forge.AllowHTTP")
	}
	if err := c.ForgeCall(forgeContext("https://u:p@api.atlassian.com/ex/jira/x"), false).GetJSON(context.Background(), "/rest/api/3/myself", nil); err == nil {
		t.Error("an apiBaseUrl with user info was accepted")
	}
	if n := len(p.requests()); n != 0 {
		t.Errorf("%d requests reached the product", n)
	}
}

func TestForgeAsAppUsesCachedToken(t *testing.T) {
	c := &testClock{t: testNow}
	kr, err := keyring.New(bytes.Repeat([]byte{7}, keyring.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(filepath.Join(t.TempDir(), "tenon.db"), sqlite.Options{SecretBox: kr, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	p := newForgeProduct(t, "cached-system-token")
	ctx := context.Background()
	client := forgeClient(hostclient.Options{Tokens: store, Forge: hostclient.ForgeOptions{Installations: store}, Now: c.Now})

	if _, err := forgeClient(hostclient.Options{}).ForgeAsApp(ctx, forgeInstallationID); err == nil {
		t.Error("ForgeAsApp without a store was accepted")
	}
	if _, err := client.ForgeAsApp(ctx, forgeInstallationID); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("unknown installation: %v", err)
	}
	in := &tenon.ForgeInstallation{InstallationID: forgeInstallationID, AppID: forgeAppID, CloudID: forgeCloudID, APIBaseURL: p.base()}
	if err := store.RecordForgeInstallation(ctx, in); err != nil {
		t.Fatal(err)
	}
	if _, err := client.ForgeAsApp(ctx, forgeInstallationID); !errors.Is(err, hostclient.ErrNoForgeToken) || tenon.ErrorCode(err) != tenon.EUNAVAILABLE {
		t.Errorf("no cached token: %v", err)
	}
	// A token about to expire is not handed out.
	key := tenon.ForgeSystemTokenKey(forgeInstallationID)
	if err := store.PutToken(ctx, key, "cached-system-token", c.Now().Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := client.ForgeAsApp(ctx, forgeInstallationID); !errors.Is(err, hostclient.ErrNoForgeToken) {
		t.Errorf("token about to expire: %v", err)
	}
	if err := store.PutToken(ctx, key, "cached-system-token", c.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	tenant, err := client.ForgeAsApp(ctx, forgeInstallationID)
	if err != nil {
		t.Fatal(err)
	}
	if err := tenant.GetJSON(ctx, "/rest/api/3/myself", nil); err != nil {
		t.Fatalf("ForgeAsApp call: %v", err)
	}
	// The product refuses the token: it is dropped from the cache, so
	// later work waits for a fresh one.
	p.setToken("rotated")
	if err := tenant.GetJSON(ctx, "/rest/api/3/myself", nil); tenon.ErrorCode(err) != tenon.EUNAUTHORIZED {
		t.Errorf("refused token: %v", err)
	}
	if _, _, err := store.Token(ctx, key, c.Now()); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("the refused token is still cached: %v", err)
	}
	if _, err := client.ForgeAsUser(ctx, forgeInstallationID, ""); tenon.ErrorCode(err) != tenon.EINVALID {
		t.Errorf("ForgeAsUser without an accountId: %v", err)
	}
	if _, err := client.ForgeAsUser(ctx, forgeInstallationID, "557058:someone"); !errors.Is(err, hostclient.ErrNoForgeToken) {
		t.Errorf("ForgeAsUser without a token: %v", err)
	}
	// With the user's token cached, calls act as that user.
	p.setToken("cached-user-token")
	if err := store.PutToken(ctx, tenon.ForgeUserTokenKey(forgeInstallationID, "557058:someone"), "cached-user-token", c.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	user, err := client.ForgeAsUser(ctx, forgeInstallationID, "557058:someone")
	if err != nil {
		t.Fatal(err)
	}
	if err := user.GetJSON(ctx, "/rest/api/3/myself", nil); err != nil || user.AccountID() != "557058:someone" {
		t.Errorf("ForgeAsUser call: %v (account %q)", err, user.AccountID())
	}
}
