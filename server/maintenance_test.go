package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/server"
	"github.com/tenon-dev/tenon/sqlite"
)

const (
	secretA = "secret-a-0123456789abcdef0123456789abcdef"
	secretB = "secret-b-0123456789abcdef0123456789abcdef"
)

// putSetting stores v as the JSON of a setting, as `tenon maintenance` and
// `tenon notice` do.
func (e *env) putSetting(name string, v any) {
	e.t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.PutSetting(context.Background(), name, raw); err != nil {
		e.t.Fatal(err)
	}
}

func noSettingsCache(c *server.Config) { c.SettingsCacheTTL = -1 }

func TestMaintenanceModulePageShowsNotice(t *testing.T) {
	e := newEnv(t, noSettingsCache)
	e.install("client-a", secretA)
	until := e.clock.Now().Add(30 * time.Minute)
	e.putSetting(tenon.SettingMaintenance, tenon.Maintenance{Message: `Upgrading <the> "database"`, Until: until})

	before := e.calls.count()
	req, _ := http.NewRequest("GET", e.url("/page?jwt="+e.tenantToken("client-a", secretA, "GET", "/page")), nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	r := e.do(req)
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503: %s", r.status, r.body)
	}
	if got := r.header.Get("Retry-After"); got != "1800" {
		t.Errorf("Retry-After %q, want 1800 (the seconds until the window ends)", got)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type %q, want a page for the iframe", ct)
	}
	for _, want := range []string{
		"Down for maintenance",
		`Upgrading &lt;the&gt; &#34;database&#34;`, // the operator's text, escaped
		`<script src="` + server.DefaultAllJSURL + `"`,
		`datetime="` + until.Format(time.RFC3339) + `"`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("page lacks %q:\n%s", want, r.body)
		}
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", r.header.Get("Cache-Control"))
	}
	if e.calls.count() != before {
		t.Error("the app handler ran during maintenance")
	}
}

func TestMaintenanceAPIAnswers503WithRetryAfter(t *testing.T) {
	e := newEnv(t, noSettingsCache)
	e.install("client-a", secretA)
	e.putSetting(tenon.SettingMaintenance, tenon.Maintenance{})

	tests := []struct {
		name  string
		token string
	}{
		{"with a valid context token", e.contextToken("client-a", secretA, "")},
		// The gate comes before authentication: nothing of the tenant is
		// read, and the answer says only what every user may know.
		{"without a token", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.request("GET", "/api/items", tc.token, nil)
			if r.status != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503: %s", r.status, r.body)
			}
			if got := r.header.Get("Retry-After"); got != "120" {
				t.Errorf("Retry-After %q, want the default 120 for a window without an end", got)
			}
			var body struct {
				Error struct{ Code, Message, Until string }
			}
			if err := json.Unmarshal([]byte(r.body), &body); err != nil {
				t.Fatalf("body %q: %v", r.body, err)
			}
			if body.Error.Code != "maintenance" || !strings.Contains(body.Error.Message, "maintenance") || body.Error.Until != "" {
				t.Errorf("body %+v", body.Error)
			}
		})
	}
}

// What the product sends during maintenance is processed: installs,
// webhooks; public routes and the descriptor are served too.
func TestMaintenanceKeepsLifecycleAndWebhooks(t *testing.T) {
	e := newEnv(t, noSettingsCache)
	e.putSetting(tenon.SettingMaintenance, tenon.Maintenance{Message: "Back soon"})

	e.install("client-a", secretA) // fails the test unless 204
	if in := e.installation("client-a"); in.State != tenon.StateEnabled {
		t.Fatalf("installed during maintenance: state %s", in.State)
	}
	before := e.calls.count()
	path := "/hooks/issue?id=10001"
	r := e.request("POST", path, e.tenantToken("client-a", secretA, "POST", path), strings.NewReader(`{}`))
	if r.status != http.StatusOK || e.calls.count() != before+1 {
		t.Fatalf("webhook during maintenance: %d %s", r.status, r.body)
	}
	for _, p := range []string{"/health", "/atlassian-connect.json"} {
		if r := e.get(p, ""); r.status != http.StatusOK {
			t.Errorf("%s during maintenance: %d", p, r.status)
		}
	}
	disabled := e.lifecycle("disabled", lifecycleBody("client-a", secretA), e.tenantToken("client-a", secretA, "POST", "/disabled"))
	if disabled.status/100 != 2 {
		t.Errorf("disabled callback during maintenance: %d %s", disabled.status, disabled.body)
	}
}

func TestMaintenanceWindowEnds(t *testing.T) {
	e := newEnv(t) // default cache TTL
	e.install("client-a", secretA)
	page := func() int {
		t.Helper()
		return e.get("/page", e.tenantToken("client-a", secretA, "GET", "/page")).status
	}
	if got := page(); got != http.StatusOK {
		t.Fatalf("before maintenance: %d", got)
	}

	e.putSetting(tenon.SettingMaintenance, tenon.Maintenance{Until: e.clock.Now().Add(time.Hour)})
	if got := page(); got != http.StatusOK {
		t.Errorf("within the cache TTL of the last read the old settings apply; got %d", got)
	}
	e.clock.Advance(server.DefaultSettingsCacheTTL)
	if got := page(); got != http.StatusServiceUnavailable {
		t.Fatalf("after the cache TTL: %d, want 503", got)
	}
	if m, ok := e.srv.Maintenance(context.Background()); !ok || m.Until.IsZero() {
		t.Errorf("Maintenance() = %+v, %v", m, ok)
	}

	e.clock.Advance(time.Hour) // the window's end
	if got := page(); got != http.StatusOK {
		t.Fatalf("after the window's end: %d, want 200", got)
	}

	// Switched on again and off by the operator; InvalidateSettings (what
	// a store watch calls) makes both visible at once.
	e.putSetting(tenon.SettingMaintenance, tenon.Maintenance{})
	e.srv.InvalidateSettings()
	if got := page(); got != http.StatusServiceUnavailable {
		t.Fatalf("after invalidation: %d, want 503", got)
	}
	if err := e.store.DeleteSetting(context.Background(), tenon.SettingMaintenance); err != nil {
		t.Fatal(err)
	}
	e.srv.InvalidateSettings()
	if got := page(); got != http.StatusOK {
		t.Fatalf("after switching off: %d, want 200", got)
	}
}

// flakySettings is a store whose settings reads fail on demand.
type flakySettings struct {
	*sqlite.Store
	fail atomic.Bool
}

func (f *flakySettings) ListSettings(ctx context.Context, prefix string) ([]tenon.KeyValue, error) {
	if f.fail.Load() {
		return nil, errors.New("database unreachable")
	}
	return f.Store.ListSettings(ctx, prefix)
}

// A store that cannot be read keeps the last known settings in force: a
// maintenance window does not end because the database is being worked on.
func TestMaintenanceSurvivesStoreErrors(t *testing.T) {
	var flaky *flakySettings
	e := newEnv(t, func(c *server.Config) {
		flaky = &flakySettings{Store: c.Store.(*sqlite.Store)}
		c.Store = flaky
	})
	e.putSetting(tenon.SettingMaintenance, tenon.Maintenance{Message: "Migrating"})
	if r := e.request("GET", "/api/items", "", nil); r.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d", r.status)
	}
	flaky.fail.Store(true)
	e.clock.Advance(time.Minute)
	r := e.request("GET", "/api/items", "", nil)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "Migrating") {
		t.Fatalf("with the store unreadable: %d %s", r.status, r.body)
	}
	if !strings.Contains(e.logs.String(), "keeping the last known ones") {
		t.Errorf("the failed read was not logged:\n%s", e.logs.String())
	}
	if strings.Contains(r.body, "unreachable") {
		t.Errorf("the store's error reached the caller: %s", r.body)
	}
}

func TestMaintenanceIgnoresDamagedSetting(t *testing.T) {
	e := newEnv(t, noSettingsCache)
	e.install("client-a", secretA)
	if err := e.store.PutSetting(context.Background(), tenon.SettingMaintenance, json.RawMessage(`{"until":"tomorrow"}`)); err != nil {
		t.Fatal(err)
	}
	if r := e.get("/page", e.tenantToken("client-a", secretA, "GET", "/page")); r.status != http.StatusOK {
		t.Fatalf("a damaged setting switched maintenance on: %d", r.status)
	}
	if !strings.Contains(e.logs.String(), "maintenance setting is not valid") {
		t.Errorf("not logged:\n%s", e.logs.String())
	}
}

func TestNotices(t *testing.T) {
	e := newEnv(t, noSettingsCache)
	e.install("client-a", secretA)
	e.install("client-b", secretB)
	e.srv.API("GET /api/notices", func(w http.ResponseWriter, r *http.Request) error {
		return json.NewEncoder(w).Encode(server.Notices(r))
	})
	notices := func(clientKey, secret string) []tenon.Notice {
		t.Helper()
		r := e.request("GET", "/api/notices", e.contextToken(clientKey, secret, ""), nil)
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		var got []tenon.Notice
		if err := json.Unmarshal([]byte(r.body), &got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := notices("client-a", secretA); len(got) != 0 {
		t.Fatalf("notices without any set: %+v", got)
	}

	now := e.clock.Now()
	e.putSetting(tenon.SettingNotice, tenon.Notice{Message: "Version 1 of the API ends on 1 June.", Until: now.Add(60 * 24 * time.Hour)})
	e.putSetting(tenon.TenantNoticeSetting("client-a"), tenon.Notice{Message: "Your data moves to the EU region on Sunday."})
	e.putSetting(tenon.TenantNoticeSetting("client-b"), tenon.Notice{Message: "expired", Until: now.Add(-time.Second)})

	a := notices("client-a", secretA)
	if len(a) != 2 || a[0].Message != "Your data moves to the EU region on Sunday." || a[1].Message != "Version 1 of the API ends on 1 June." {
		t.Errorf("client-a sees %+v, want its own notice, then the global one", a)
	}
	b := notices("client-b", secretB)
	if len(b) != 1 || b[0].Message != "Version 1 of the API ends on 1 June." {
		t.Errorf("client-b sees %+v, want only the global notice (its own expired)", b)
	}

	e.clock.Advance(61 * 24 * time.Hour)
	if got := notices("client-a", secretA); len(got) != 1 || got[0].Message != "Your data moves to the EU region on Sunday." {
		t.Errorf("after the global notice's end client-a sees %+v, want only its own", got)
	}
	if got := notices("client-b", secretB); len(got) != 0 {
		t.Errorf("after the global notice's end client-b sees %+v, want none", got)
	}
}

// Outside Module and API handlers there are no notices.
func TestNoticesOutsideAppRoutes(t *testing.T) {
	req, _ := http.NewRequest("GET", "/", nil)
	if got := server.Notices(req); got != nil {
		t.Errorf("Notices of a bare request = %+v", got)
	}
}
