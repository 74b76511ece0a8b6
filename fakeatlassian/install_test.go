package fakeatlassian_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/fakeatlassian"
)

func TestInstallSendsSignedLifecycle(t *testing.T) {
	t.Parallel()
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", fakeatlassian.ProductJira)
	app := newTestApp(t, f, "com.example.test")
	got := app.install(site)

	if got.State != fakeatlassian.AppEnabled {
		t.Errorf("state = %s, want enabled", got.State)
	}
	if len(got.SharedSecret) < 32 {
		t.Errorf("shared secret has %d characters, want >= 32", len(got.SharedSecret))
	}
	calls := app.lifecycleCalls()
	if len(calls) != 2 || calls[0].Event != "installed" || calls[1].Event != "enabled" {
		t.Fatalf("lifecycle calls = %+v, want installed then enabled", calls)
	}
	for _, c := range calls {
		if c.Err != nil {
			t.Errorf("%s: %v", c.Event, c.Err)
		}
	}
	inst := calls[0]
	if inst.Header["alg"] != "RS256" || inst.Header["kid"] == "" {
		t.Errorf("installed header = %v, want RS256 with kid", inst.Header)
	}
	if calls[1].Header["alg"] != "HS256" {
		t.Errorf("enabled alg = %v, want HS256", calls[1].Header["alg"])
	}
	p := inst.Payload
	want := map[string]any{
		"key": "com.example.test", "clientKey": site.ClientKey, "sharedSecret": got.SharedSecret,
		"baseUrl": site.BaseURL, "displayUrl": site.BaseURL, "productType": "jira", "eventType": "installed",
		"oauthClientId": got.OAuthClientID, "cloudId": site.CloudID,
	}
	for k, v := range want {
		if p[k] != v {
			t.Errorf("payload %s = %v, want %v", k, p[k], v)
		}
	}
	for _, k := range []string{"description", "serverVersion", "pluginsVersion", "serviceEntitlementNumber"} {
		if s, _ := p[k].(string); s == "" {
			t.Errorf("payload %s is empty", k)
		}
	}
	if calls[1].Payload["sharedSecret"] != nil {
		t.Errorf("enabled payload carries the shared secret")
	}
	if aud, _ := inst.Claims.GetAudience(); len(aud) != 1 || aud[0] != app.baseURL() {
		t.Errorf("aud = %v, want [%s]", aud, app.baseURL())
	}
	if inst.Claims["iss"] != site.ClientKey {
		t.Errorf("iss = %v", inst.Claims["iss"])
	}
	if want := fakeatlassian.QSH("POST", "/installed", "", ""); inst.Claims["qsh"] != want {
		t.Errorf("qsh = %v, want hash of POST&/installed&", inst.Claims["qsh"])
	}
}

func TestKeyServerRotation(t *testing.T) {
	t.Parallel()
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", "")
	app := newTestApp(t, f, "rot")
	app.install(site)
	first := app.kidsSeen()[0]

	second := f.RotateInstallKey()
	if second == first {
		t.Fatal("rotation kept the kid")
	}
	if _, err := f.Reinstall(context.Background(), site, "rot"); err != nil {
		t.Fatalf("reinstall: %v", err)
	}
	if kids := app.kidsSeen(); kids[len(kids)-1] != second {
		t.Errorf("reinstall signed with kid %s, want the new %s", kids[len(kids)-1], second)
	}
	for _, kid := range []string{first, second} {
		if _, err := fetchInstallKey(f.KeyServerURL(), kid); err != nil {
			t.Errorf("kid %s: %v", kid, err)
		}
	}
	if r := do(t, "GET", f.KeyServerURL()+"/no-such-kid", "", nil); r.Status != http.StatusNotFound {
		t.Errorf("unknown kid answered %d, want 404", r.Status)
	}
}

func TestReinstallChangesSecret(t *testing.T) {
	t.Parallel()
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", "")
	app := newTestApp(t, f, "re")
	before := app.install(site)
	after, err := f.Reinstall(context.Background(), site, "re")
	if err != nil {
		t.Fatal(err)
	}
	if after.SharedSecret == before.SharedSecret {
		t.Fatal("reinstall kept the shared secret")
	}
	if app.secret(site.ClientKey) != after.SharedSecret {
		t.Error("the app did not receive the new secret")
	}
	// The old secret no longer works against the REST API.
	old := asApp(t, before, site, "GET", "/rest/api/3/myself", nil)
	if old.Status != http.StatusUnauthorized {
		t.Errorf("old secret answered %d, want 401", old.Status)
	}
	if r := asApp(t, after, site, "GET", "/rest/api/3/myself", nil); r.Status != http.StatusOK {
		t.Errorf("new secret answered %d: %s", r.Status, r.Body)
	}
	// An upgrade (Install again) keeps the secret.
	up := app.install(site)
	if up.SharedSecret != after.SharedSecret {
		t.Error("upgrade changed the secret")
	}
}

func TestDisableEnableUninstall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", "")
	app := newTestApp(t, f, "life")
	installed := app.install(site)

	if err := f.Disable(ctx, site, "life"); err != nil {
		t.Fatal(err)
	}
	if r := asApp(t, installed, site, "GET", "/rest/api/3/myself", nil); r.Status != http.StatusUnauthorized {
		t.Errorf("disabled app answered %d, want 401", r.Status)
	}
	if err := f.Enable(ctx, site, "life"); err != nil {
		t.Fatal(err)
	}
	if r := asApp(t, installed, site, "GET", "/rest/api/3/myself", nil); r.Status != http.StatusOK {
		t.Errorf("enabled app answered %d", r.Status)
	}
	if err := f.Uninstall(ctx, site, "life"); err != nil {
		t.Fatal(err)
	}
	var events []string
	for _, c := range app.lifecycleCalls() {
		if c.Err != nil {
			t.Errorf("%s: %v", c.Event, c.Err)
		}
		events = append(events, c.Event)
	}
	if got := strings.Join(events, ","); got != "installed,enabled,disabled,enabled,disabled,uninstalled" {
		t.Errorf("events = %s", got)
	}
	last := app.lifecycleCalls()[len(events)-1]
	if last.Header["alg"] != "RS256" {
		t.Errorf("uninstalled alg = %v, want RS256", last.Header["alg"])
	}
	a, _ := f.App(site, "life")
	if a.State != fakeatlassian.AppUninstalled {
		t.Errorf("state = %s", a.State)
	}
	if r := asApp(t, installed, site, "GET", "/rest/api/3/myself", nil); r.Status != http.StatusUnauthorized {
		t.Errorf("uninstalled app answered %d, want 401", r.Status)
	}
	if err := f.Enable(ctx, site, "life"); !errors.Is(err, fakeatlassian.ErrConflict) {
		t.Errorf("enable after uninstall: %v, want ErrConflict", err)
	}
	// Installing again after uninstall issues a new secret.
	again := app.install(site)
	if again.SharedSecret == installed.SharedSecret || again.State != fakeatlassian.AppEnabled {
		t.Errorf("reinstall after uninstall: state %s, secret changed %v", again.State, again.SharedSecret != installed.SharedSecret)
	}
}

func TestInstallRefusedByApp(t *testing.T) {
	t.Parallel()
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", "")
	app := newTestApp(t, f, "refuse")
	app.failEvent("installed", http.StatusForbidden)
	_, err := f.Install(context.Background(), site, app.descriptorURL())
	var le *fakeatlassian.LifecycleError
	if !errors.As(err, &le) || le.Status != http.StatusForbidden || le.Event != "installed" || !strings.Contains(le.Body, "the app says no") {
		t.Fatalf("err = %v, want a LifecycleError 403 with the body", err)
	}
	if _, err := f.App(site, "refuse"); !errors.Is(err, fakeatlassian.ErrNotFound) {
		t.Errorf("a refused install left an app behind: %v", err)
	}
}

func TestDescriptorValidation(t *testing.T) {
	t.Parallel()
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", "")
	app := newTestApp(t, f, "bad")
	app.setDescriptor("key", "")
	app.setDescriptor("baseUrl", "ftp://nope")
	app.setDescriptor("authentication", map[string]any{"type": "none"})
	app.setDescriptor("lifecycle", map[string]any{"enabled": "https://elsewhere.example/enabled"})
	app.setDescriptor("scopes", []string{"READ", "SUPERPOWER"})
	app.setDescriptor("modules", map[string]any{
		"generalPages": []any{
			map[string]any{"key": "Bad_Key", "url": "/a"},
			map[string]any{"key": "dup", "url": "//evil.example/x"},
		},
		"webPanels": []any{map[string]any{"key": "dup", "url": "/b", "location": "atl.jira.view.issue.right.context"}},
		"webhooks":  []any{map[string]any{"event": "", "url": "http://abs.example/hook"}},
	})
	_, err := f.Install(context.Background(), site, app.descriptorURL())
	var de *fakeatlassian.DescriptorError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want DescriptorError", err)
	}
	all := strings.Join(de.Problems, "\n")
	for _, want := range []string{
		"key is required", "baseUrl", "authentication.type", "lifecycle.installed is required",
		"lifecycle.enabled", `scope "SUPERPOWER"`, `"Bad_Key"`, `"//evil.example/x"`, `key "dup" is already used`,
		"event is required", `"http://abs.example/hook"`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("problems lack %q:\n%s", want, all)
		}
	}
	if len(app.lifecycleCalls()) != 0 {
		t.Error("an invalid descriptor was installed")
	}

	// A missing descriptor is reported with its status.
	_, err = f.Install(context.Background(), site, app.srv.URL+"/missing.json")
	if !errors.As(err, &de) || !strings.Contains(de.Problems[0], "404") {
		t.Errorf("missing descriptor: %v", err)
	}
}

// Installs into different sites run at the same time, as on real sites
// (a load test installs many tenants with several in flight); each site
// still gets installed before enabled.
func TestInstallsOfDifferentSitesOverlap(t *testing.T) {
	t.Parallel()
	f := newFake(t, fakeatlassian.Options{})
	app := newTestApp(t, f, "com.example.parallel")
	const n = 4
	// Every `installed` waits until all n are in flight; serialised
	// installs would never get there and fall back after the wait.
	var mu sync.Mutex
	inFlight, most := 0, 0
	all := make(chan struct{})
	app.beforeLifecycle = func(event string) {
		if event != "installed" {
			return
		}
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		if inFlight == n {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
		case <-time.After(5 * time.Second):
		}
		mu.Lock()
		inFlight--
		mu.Unlock()
	}
	sites := make([]*fakeatlassian.Site, n)
	for i := range sites {
		sites[i] = addSite(t, f, fmt.Sprintf("site-%d", i), fakeatlassian.ProductJira)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, s := range sites {
		wg.Go(func() { _, errs[i] = f.Install(context.Background(), s, app.descriptorURL()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("install %d: %v", i, err)
		}
	}
	if most != n {
		t.Errorf("at most %d installs were in flight at once, want %d", most, n)
	}
	seen := map[string][]string{}
	for _, c := range app.lifecycleCalls() {
		if c.Err != nil {
			t.Errorf("%s: %v", c.Event, c.Err)
		}
		ck, _ := c.Payload["clientKey"].(string)
		seen[ck] = append(seen[ck], c.Event)
	}
	for _, s := range sites {
		if got := strings.Join(seen[s.ClientKey], ","); got != "installed,enabled" {
			t.Errorf("site %s got %s, want installed,enabled", s.Name, got)
		}
	}
}
