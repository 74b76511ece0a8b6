package e2e_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/fakeatlassian"
)

// TestLifecycle walks one tenant through the whole life of an app: signed
// install, the panel page read from Jira as the app, browser API calls as
// the user, a webhook, and the uninstall after which nothing of the site
// is accepted any more. The app lives under a base path, so every qsh on
// both sides has a path to strip: the app's on requests to the app, the
// site's on requests to Jira.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{basePath: "/apps/checklist"})
	site := e.addSite("acme", fakeatlassian.ProductJira)

	// Install: the fake fetches the descriptor and sends the RS256-signed
	// `installed` and then `enabled`; the app must accept both, or
	// Install fails.
	app := e.install(site)
	if app.State != fakeatlassian.AppEnabled {
		t.Fatalf("app state on the site after install: %q, want %q", app.State, fakeatlassian.AppEnabled)
	}
	wantLifecycle(t, e.lifecycleCalls(site), "installed", "enabled")
	in := e.tenant(site)
	switch {
	case in.State != tenon.StateEnabled:
		t.Errorf("stored state: %q, want %q", in.State, tenon.StateEnabled)
	case in.BaseURL != site.BaseURL:
		t.Errorf("stored base URL: %q, want the site's %q", in.BaseURL, site.BaseURL)
	case in.ProductType != fakeatlassian.ProductJira:
		t.Errorf("stored product: %q, want jira", in.ProductType)
	case in.SharedSecret != app.SharedSecret:
		t.Errorf("the stored shared secret is not the one the fake sent in `installed`")
	case in.AppKey != e.appKey:
		t.Errorf("stored app key: %q, want %q", in.AppKey, e.appKey)
	}

	// The panel, loaded as the product's iframe would load it. The issue
	// summary can only come from the app's signed REST call to the fake
	// Jira, which checks the qsh relative to the site's base path.
	issue, err := e.fake.GetIssue(site, issueKey)
	if err != nil {
		t.Fatal(err)
	}
	e.fake.ResetCalls()
	r := e.page(e.panelURL(site, issueKey))
	if r.status != http.StatusOK {
		t.Fatalf("panel: %s", r)
	}
	body := string(r.body)
	if !strings.Contains(body, `id="checklist"`) || !strings.Contains(body, issue.Summary) {
		t.Fatalf("the panel does not show the checklist with the issue summary %q read from Jira:\n%s", issue.Summary, body)
	}
	rest := e.calls(func(c fakeatlassian.Call) bool {
		return c.Kind == fakeatlassian.KindREST && c.Direction == fakeatlassian.DirectionIn
	})
	wantPath := strings.TrimPrefix(site.BaseURL, e.fake.URL()) + "/rest/api/3/issue/" + issueKey
	if len(rest) != 1 || rest[0].Status != http.StatusOK || rest[0].Auth != "jwt" || rest[0].App != e.appKey ||
		rest[0].Method != http.MethodGet || !strings.HasPrefix(rest[0].URL, wantPath) {
		t.Fatalf("the fake should have answered one GET %s as the app with a JWT and 200; its REST record: %+v", wantPath, rest)
	}

	// The browser API, as the user, with the panel's context token.
	tok := e.contextToken(site, issueKey)
	if c := e.checklist(e.api(http.MethodGet, tok, issueKey, "", nil), http.StatusOK); len(c.Items) != 0 {
		t.Fatalf("a new issue's checklist has items: %v", itemTexts(c))
	}
	first := e.checklist(e.api(http.MethodPost, tok, issueKey, "/items", map[string]string{"text": "Verify the signed install"}), http.StatusCreated)
	if len(first.Items) != 1 || first.Items[0].CreatedBy != site.DefaultAccountID {
		t.Fatalf("after the first add: %+v; want one item created by the token's user %s", first.Items, site.DefaultAccountID)
	}
	e.checklist(e.api(http.MethodPost, tok, issueKey, "/items", map[string]string{"text": "Ship it"}), http.StatusCreated)
	e.checklist(e.api(http.MethodPatch, tok, issueKey, "/items/"+first.Items[0].ID, map[string]bool{"done": true}), http.StatusOK)
	got := e.checklist(e.api(http.MethodGet, tok, issueKey, "", nil), http.StatusOK)
	if !slices.Equal(itemTexts(got), []string{"Verify the signed install", "Ship it"}) || !got.Items[0].Done || got.Items[1].Done {
		t.Fatalf("checklist read back: %+v", got.Items)
	}
	if n := storedValues(t, e, site, "Ship it"); n != 1 {
		t.Fatalf("the store holds %d values with the new item for the site, want 1", n)
	}
	// A token Jira issued inside another issue's view cannot reach this
	// checklist (the app's issue rule).
	if r := e.api(http.MethodGet, e.contextToken(site, "DEMO-2"), issueKey, "", nil); r.status != http.StatusForbidden {
		t.Fatalf("GET %s's checklist with a token of DEMO-2: %s, want 403", issueKey, r)
	}

	// The webhook: deleting the issue in Jira fires jira:issue_deleted,
	// and the app drops the issue's checklist.
	e.fake.ResetCalls()
	if err := e.fake.DeleteIssue(site, issueKey); err != nil {
		t.Fatal(err)
	}
	e.waitWebhooks()
	hooks := e.calls(func(c fakeatlassian.Call) bool {
		return c.Kind == fakeatlassian.KindWebhook && c.Event == "jira:issue_deleted"
	})
	if len(hooks) != 1 || hooks[0].Status != http.StatusNoContent || hooks[0].App != e.appKey || !strings.Contains(hooks[0].URL, "issueKey="+issueKey) {
		t.Fatalf("want one jira:issue_deleted delivery for %s answered 204; got %+v", issueKey, hooks)
	}
	// The app stored the event before answering and processes it on its
	// job runner: wait, within a bound, for that to happen.
	for deadline := time.Now().Add(15 * time.Second); storedValues(t, e, site, "Ship it") != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("the queued webhook was not processed within 15s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c := e.checklist(e.api(http.MethodGet, tok, issueKey, "", nil), http.StatusOK); len(c.Items) != 0 {
		t.Fatalf("the checklist of the deleted issue still has items: %v", itemTexts(c))
	}
	if n := storedValues(t, e, site, "Ship it"); n != 0 {
		t.Fatalf("the store still holds the deleted issue's checklist")
	}

	// Uninstall: afterwards the site's tokens are refused, even those
	// issued while the app was installed and not yet expired.
	other := "DEMO-2"
	signedPanel := e.panelURL(site, other)
	otherTok := e.contextToken(site, other)
	if r := e.page(signedPanel); r.status != http.StatusOK {
		t.Fatalf("panel of %s before the uninstall: %s", other, r)
	}
	if r := e.api(http.MethodGet, otherTok, other, "", nil); r.status != http.StatusOK {
		t.Fatalf("API before the uninstall: %s", r)
	}
	e.fake.ResetCalls()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := e.fake.Uninstall(ctx, site, e.appKey); err != nil {
		t.Fatalf("uninstall: %v", err)
	}
	wantLifecycle(t, e.lifecycleCalls(site), "disabled", "uninstalled")
	if r := e.api(http.MethodGet, otherTok, other, "", nil); r.status != http.StatusUnauthorized {
		t.Errorf("API with a token of the uninstalled site: %s, want 401", r)
	}
	if r := e.page(signedPanel); r.status != http.StatusUnauthorized {
		t.Errorf("panel signed before the uninstall: %s, want 401", r)
	}
	if in := e.tenant(site); in.State != tenon.StateUninstalled || in.UninstalledAt.IsZero() {
		t.Errorf("stored tenant after the uninstall: state %q, uninstalled at %v; want %q with a time", in.State, in.UninstalledAt, tenon.StateUninstalled)
	}
}

// TestReinstall checks that every install of a site brings a new shared
// secret and that tokens signed with the old one stop working at once,
// while the site's data stays.
func TestReinstall(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	site := e.addSite("acme", fakeatlassian.ProductJira)
	first := e.install(site)

	oldTok := e.contextToken(site, issueKey)
	oldPanel := e.panelURL(site, issueKey)
	e.checklist(e.api(http.MethodPost, oldTok, issueKey, "/items", map[string]string{"text": "Survives a reinstall"}), http.StatusCreated)

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	second, err := e.fake.Reinstall(ctx, site, e.appKey)
	if err != nil {
		t.Fatalf("reinstall: %v", err)
	}
	if second.SharedSecret == "" || second.SharedSecret == first.SharedSecret {
		t.Fatalf("the reinstall did not change the shared secret")
	}
	if in := e.tenant(site); in.SharedSecret != second.SharedSecret || in.State != tenon.StateEnabled {
		t.Fatalf("stored tenant after the reinstall: state %q, secret updated %t", in.State, in.SharedSecret == second.SharedSecret)
	}
	if r := e.api(http.MethodGet, oldTok, issueKey, "", nil); r.status != http.StatusUnauthorized {
		t.Errorf("API with a token signed with the old secret: %s, want 401", r)
	}
	if r := e.page(oldPanel); r.status != http.StatusUnauthorized {
		t.Errorf("panel signed with the old secret: %s, want 401", r)
	}
	got := e.checklist(e.api(http.MethodGet, e.contextToken(site, issueKey), issueKey, "", nil), http.StatusOK)
	if !slices.Equal(itemTexts(got), []string{"Survives a reinstall"}) {
		t.Errorf("checklist after the reinstall: %v", itemTexts(got))
	}

	// A site that uninstalled and comes back gets a new secret too; the
	// tokens of its earlier life stay refused.
	beforeTok := e.contextToken(site, issueKey)
	if err := e.fake.Uninstall(ctx, site, e.appKey); err != nil {
		t.Fatalf("uninstall: %v", err)
	}
	third, err := e.fake.Reinstall(ctx, site, e.appKey)
	if err != nil {
		t.Fatalf("reinstall after the uninstall: %v", err)
	}
	if third.SharedSecret == second.SharedSecret {
		t.Fatalf("the reinstall after an uninstall kept the old shared secret")
	}
	if in := e.tenant(site); in.State != tenon.StateEnabled || in.SharedSecret != third.SharedSecret {
		t.Fatalf("stored tenant after the reinstall: state %q, secret updated %t", in.State, in.SharedSecret == third.SharedSecret)
	}
	if r := e.api(http.MethodGet, beforeTok, issueKey, "", nil); r.status != http.StatusUnauthorized {
		t.Errorf("API with a token from before the uninstall: %s, want 401", r)
	}
	if r := e.api(http.MethodGet, e.contextToken(site, issueKey), issueKey, "", nil); r.status != http.StatusOK {
		t.Errorf("API with a token of the new install: %s, want 200", r)
	}
}

// TestDisabledAppIsRefused: while an administrator has the app disabled,
// its pages and API refuse the site's tokens; enabling it again restores
// them.
func TestDisabledAppIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	site := e.addSite("acme", fakeatlassian.ProductJira)
	e.install(site)

	panel := e.panelURL(site, issueKey)
	tok := e.contextToken(site, issueKey)
	if r := e.page(panel); r.status != http.StatusOK {
		t.Fatalf("panel while enabled: %s", r)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	e.fake.ResetCalls()
	if err := e.fake.Disable(ctx, site, e.appKey); err != nil {
		t.Fatalf("disable: %v", err)
	}
	wantLifecycle(t, e.lifecycleCalls(site), "disabled")
	if in := e.tenant(site); in.State != tenon.StateDisabled {
		t.Fatalf("stored state after disable: %q", in.State)
	}
	if r := e.page(panel); r.status != http.StatusForbidden {
		t.Errorf("panel of the disabled app: %s, want 403", r)
	}
	if r := e.api(http.MethodGet, tok, issueKey, "", nil); r.status != http.StatusForbidden {
		t.Errorf("API of the disabled app: %s, want 403", r)
	}
	if r := e.api(http.MethodPost, tok, issueKey, "/items", map[string]string{"text": "not while disabled"}); r.status != http.StatusForbidden {
		t.Errorf("a change through the API of the disabled app: %s, want 403", r)
	}

	if err := e.fake.Enable(ctx, site, e.appKey); err != nil {
		t.Fatalf("enable: %v", err)
	}
	if r := e.page(panel); r.status != http.StatusOK {
		t.Errorf("panel after enabling again: %s, want 200", r)
	}
	got := e.checklist(e.api(http.MethodGet, tok, issueKey, "", nil), http.StatusOK)
	if len(got.Items) != 0 {
		t.Errorf("a change made while disabled was stored: %v", itemTexts(got))
	}
}

// TestUnlicensedPanel: with the license knob off, the product signs
// lic=none into the iframe URL and the panel answers with the page that
// asks for a license instead of the checklist.
func TestUnlicensedPanel(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	site := e.addSite("acme", fakeatlassian.ProductJira)
	if app := e.install(site); app.License != "active" {
		t.Fatalf("license after install of an app with enableLicensing: %q, want active", app.License)
	}
	if r := e.page(e.panelURL(site, issueKey)); r.status != http.StatusOK || !strings.Contains(string(r.body), `id="checklist"`) {
		t.Fatalf("licensed panel: %s", r)
	}

	if err := e.fake.SetLicense(site, e.appKey, false); err != nil {
		t.Fatal(err)
	}
	u := e.panelURL(site, issueKey)
	if !strings.Contains(u, "lic=none") {
		t.Fatalf("the unlicensed iframe URL does not carry lic=none: %s", u)
	}
	r := e.page(u)
	body := string(r.body)
	if r.status != http.StatusForbidden || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") ||
		!strings.Contains(body, "needs a license") || strings.Contains(body, `id="checklist"`) {
		t.Fatalf("unlicensed panel: want the 403 license page in HTML, got %d %s:\n%s", r.status, r.header.Get("Content-Type"), body)
	}
	// The browser API learns the license from the signed context, so an
	// unlicensed user cannot edit through it either.
	unlicensed := e.contextToken(site, issueKey)
	if r := e.api(http.MethodPost, unlicensed, issueKey, "/items", map[string]string{"text": "no license"}); r.status != http.StatusForbidden {
		t.Fatalf("API with an unlicensed context token: %s, want 403", r)
	}

	if err := e.fake.SetLicense(site, e.appKey, true); err != nil {
		t.Fatal(err)
	}
	if r := e.page(e.panelURL(site, issueKey)); r.status != http.StatusOK {
		t.Fatalf("panel after the license came back: %s", r)
	}
	e.checklist(e.api(http.MethodPost, e.contextToken(site, issueKey), issueKey, "/items", map[string]string{"text": "licensed again"}), http.StatusCreated)
}

// TestConfluenceInstall: a Confluence site's base URL ends in /wiki. The
// app stores it as sent, and its calls to Confluence, signed relative to
// that path, are accepted.
func TestConfluenceInstall(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	site := e.addSite("wiki-acme", fakeatlassian.ProductConfluence)
	if !strings.HasSuffix(site.BaseURL, "/wiki") {
		t.Fatalf("Confluence site base URL %q does not end in /wiki", site.BaseURL)
	}
	app := e.install(site)
	wantLifecycle(t, e.lifecycleCalls(site), "installed", "enabled")
	in := e.tenant(site)
	if in.State != tenon.StateEnabled || in.BaseURL != site.BaseURL || in.ProductType != fakeatlassian.ProductConfluence || in.SharedSecret != app.SharedSecret {
		t.Fatalf("stored tenant: state %q, base URL %q, product %q, secret matches %t; want enabled, %q, confluence, true",
			in.State, in.BaseURL, in.ProductType, in.SharedSecret == app.SharedSecret, site.BaseURL)
	}

	// The app's host client, as a handler would use it: a path relative
	// to the tenant's base URL, signed with a qsh that leaves /wiki out.
	var page struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := newHostClient(e, nil).AsApp(in).GetJSON(ctx, "/rest/api/content/65537", &page); err != nil {
		t.Fatalf("GET a Confluence page as the app: %v", err)
	}
	if page.ID != "65537" || page.Title == "" {
		t.Fatalf("Confluence page: %+v", page)
	}
	rest := e.calls(func(c fakeatlassian.Call) bool {
		return c.Kind == fakeatlassian.KindREST && c.Site == site.Name && c.Auth == "jwt"
	})
	if len(rest) != 1 || rest[0].Status != http.StatusOK || !strings.HasPrefix(rest[0].URL, "/s/"+site.Name+"/wiki/rest/api/content/65537") {
		t.Fatalf("want one signed REST call to /wiki/rest/api/content/65537 answered 200, got %+v", rest)
	}
}

// wantLifecycle checks that the callbacks sent were exactly events, in
// order, and that the app accepted each with a 2xx.
func wantLifecycle(t *testing.T, got []string, events ...string) {
	t.Helper()
	var names []string
	for _, g := range got {
		event, status, _ := strings.Cut(g, " ")
		names = append(names, event)
		if !strings.HasPrefix(status, "2") {
			t.Errorf("the app answered %s", g)
		}
	}
	if !slices.Equal(names, events) {
		t.Errorf("lifecycle callbacks: %v, want %v", got, events)
	}
}

// storedValues counts the site's stored app values that contain text.
func storedValues(t *testing.T, e *env, site *fakeatlassian.Site, text string) int {
	t.Helper()
	kvs, err := e.backend.Store.ListValues(context.Background(), site.ClientKey, "", "", 0)
	if err != nil {
		t.Fatalf("list stored values: %v", err)
	}
	n := 0
	for _, kv := range kvs {
		if strings.Contains(string(kv.Value), text) {
			n++
		}
	}
	return n
}
