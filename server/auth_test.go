package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/connectjwt"
	"github.com/tenon-dev/tenon/qsh"
	"github.com/tenon-dev/tenon/server"
)

func TestModuleRequestPrincipal(t *testing.T) {
	e := newEnv(t)
	e.install("client-a", "secret-a")
	pq := "/page?lic=active&loc=de-DE&tz=Europe%2FBerlin&xdm_e=" + url.QueryEscape(siteURL)
	tok := e.tenantToken("client-a", "secret-a", "GET", pq, func(c *connectjwt.Claims) {
		c.Context = json.RawMessage(`{"jira":{"issue":{"key":"ABC-1"}}}`)
	})
	r := e.get(pq, tok)
	if r.status != 200 || r.body != "ok" {
		t.Fatalf("status %d %s", r.status, r.body)
	}
	p := e.calls.last()
	now := e.clock.Now()
	switch {
	case p == nil:
		t.Fatal("no principal")
	case p.ClientKey() != "client-a" || p.Installation.SharedSecret != "secret-a" || p.Installation.BaseURL != siteURL:
		t.Fatalf("installation %+v", p.Installation.Redacted())
	case p.AccountID != "557058:user-1", p.Kind != tenon.TokenIframe:
		t.Fatalf("account %q kind %q", p.AccountID, p.Kind)
	case p.License != tenon.LicenseActive || !p.Licensed():
		t.Fatalf("license %q", p.License)
	case p.Locale != "de-DE" || p.Timezone != "Europe/Berlin":
		t.Fatalf("locale %q tz %q", p.Locale, p.Timezone)
	case string(p.Context) != `{"jira":{"issue":{"key":"ABC-1"}}}`:
		t.Fatalf("context %s", p.Context)
	case !p.IssuedAt.Equal(now.Truncate(time.Second)) || !p.ExpiresAt.Equal(now.Truncate(time.Second).Add(3*time.Minute)):
		t.Fatalf("times %v %v", p.IssuedAt, p.ExpiresAt)
	}
}

func TestPrincipalDataBoundToTenant(t *testing.T) {
	e := newEnv(t)
	e.install("client-a", "secret-a")
	e.install("client-b", "secret-b")
	if r := e.get("/data", e.tenantToken("client-b", "secret-b", "GET", "/data")); r.status != 200 {
		t.Fatalf("status %d %s", r.status, r.body)
	}
	ctx := context.Background()
	if v, err := e.store.GetValue(ctx, "client-b", "greeting"); err != nil || !strings.Contains(string(v), "557058:user-1") {
		t.Fatalf("client-b value %s %v", v, err)
	}
	if _, err := e.store.GetValue(ctx, "client-a", "greeting"); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Fatalf("value leaked to client-a: %v", err)
	}
}

// Each case is one attack on an authenticated route. Every one must be
// refused before the handler runs, and change nothing in the store.
func TestRequestRejections(t *testing.T) {
	e := newEnv(t)
	e.install("client-a", "secret-a")
	e.install("client-off", "secret-off")
	e.install("client-gone", "secret-gone")
	if r := e.lifecycle("disabled", lifecycleBody("client-off", ""), e.stateToken("client-off", "secret-off", "disabled")); r.status != 204 {
		t.Fatal(r.status)
	}
	if r := e.lifecycle("uninstalled", lifecycleBody("client-gone", ""), e.installToken("client-gone", "uninstalled")); r.status != 204 {
		t.Fatal(r.status)
	}

	now := e.clock.Now()
	good := func(path string, mod func(*connectjwt.Claims)) string {
		return e.tenantToken("client-a", "secret-a", "GET", path, mod)
	}
	pageClaims := connectjwt.Claims{Issuer: "client-a", IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Minute).Unix(),
		QSH: qsh.Hash("GET", "/app/page", "", "/app")}

	type req struct {
		name   string
		method string
		path   string // relative to the base path; the token, if any, is added as told
		query  string // token in the query
		header string // token in Authorization: JWT
		status int
		want   string // part of the message: refused for the intended reason
	}
	cases := []req{
		{name: "NoToken", path: "/page", status: 401, want: "no token"},
		{name: "AlgNone", path: "/page", query: unsignedToken(`{"alg":"none","typ":"JWT"}`, pageClaims, "c2ln"), status: 401, want: "HS256"},
		{name: "AlgNoneLowerCaseHS", path: "/page", query: unsignedToken(`{"alg":"hs256","typ":"JWT"}`, pageClaims, "c2ln"), status: 401, want: "HS256"},
		{name: "RS256OnModule", path: "/page", query: signRS256(t, pageClaims, kid, installKey()), status: 401, want: "HS256"},
		{name: "RS256OnAPI", path: "/api/items", header: signRS256(t, withQSH(pageClaims, qsh.ContextQSH), kid, installKey()), status: 401, want: "HS256"},
		{name: "WrongSecret", path: "/page", query: signHS256(t, pageClaims, "guess"), status: 401, want: "signature"},
		{name: "OtherTenantsSecret", path: "/page", query: signHS256(t, pageClaims, "secret-off"), status: 401, want: "signature"},
		{name: "Garbage", path: "/page", query: "abc.def.ghi", status: 401, want: "malformed"},
		{name: "WrongQSHOtherQuery", path: "/page?issue=2", query: good("/page?issue=1", nil), status: 401, want: "qsh mismatch"},
		{name: "WrongQSHOtherPath", path: "/page", query: good("/licensed", nil), status: 401, want: "qsh mismatch"},
		{name: "WrongQSHOtherMethod", path: "/page", query: e.tenantToken("client-a", "secret-a", "POST", "/page"), status: 401, want: "qsh mismatch"},
		{name: "ContextQSHOnModule", path: "/page", query: e.contextToken("client-a", "secret-a", ""), status: 401, want: "context token"},
		{name: "ContextQSHOnWebhook", method: "POST", path: "/hooks/issue?id=1", header: e.contextToken("client-a", "secret-a", ""), status: 401, want: "context token"},
		{name: "MissingQSHOnModule", path: "/page", query: good("/page", func(c *connectjwt.Claims) { c.QSH = "" }), status: 401, want: "no query string hash"},
		{name: "MissingQSHOnAPI", path: "/api/items", header: good("/api/items", func(c *connectjwt.Claims) { c.QSH = "" }), status: 401, want: "only context tokens"},
		{name: "IframeTokenOnAPI", path: "/api/items", header: good("/api/items", nil), status: 401, want: "only context tokens"},
		{name: "ExpiredBeyondLeeway", path: "/page", query: good("/page", func(c *connectjwt.Claims) { c.ExpiresAt = now.Add(-31 * time.Second).Unix() }), status: 401, want: "expired"},
		{name: "MissingExp", path: "/page", query: tokenWithoutExp(t, withQSH(pageClaims, qsh.Hash("GET", "/app/page", "", "/app")), "secret-a", nil), status: 401, want: "no expiry"},
		{name: "UnknownTenant", path: "/page", query: e.tenantToken("client-x", "secret-x", "GET", "/page"), status: 401, want: "not a site where"},
		{name: "NoIssuer", path: "/page", query: good("/page", func(c *connectjwt.Claims) { c.Issuer = "" }), status: 401, want: "no issuer"},
		{name: "DisabledTenant", path: "/page", query: e.tenantToken("client-off", "secret-off", "GET", "/page"), status: 403, want: "disabled"},
		{name: "UninstalledTenant", path: "/page", query: e.tenantToken("client-gone", "secret-gone", "GET", "/page"), status: 401, want: "not a site where"},
		{name: "UninstalledTenantAPI", path: "/api/items", header: e.contextToken("client-gone", "secret-gone", ""), status: 401, want: "not a site where"},
		{name: "TwoTokensQueryAndHeader", path: "/page", query: good("/page", nil), header: good("/page", nil), status: 401, want: "more than one token"},
		{name: "TwoTokensInQuery", path: "/page?jwt=" + good("/page", nil), query: good("/page", nil), status: 401, want: "more than one token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before, calls := e.snapshot(), e.calls.count()
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			u := tc.path
			if tc.query != "" {
				if strings.Contains(u, "?") {
					u += "&jwt=" + tc.query
				} else {
					u += "?jwt=" + tc.query
				}
			}
			r := e.request(method, u, tc.header, nil)
			e.expectRefused(r, tc.status, before)
			if !strings.Contains(r.body, tc.want) {
				t.Fatalf("body %s, want mention of %q", r.body, tc.want)
			}
			if e.calls.count() != calls {
				t.Fatal("the handler ran for a refused request")
			}
			if r.status == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
}

func withQSH(c connectjwt.Claims, h string) connectjwt.Claims {
	c.QSH = h
	return c
}

func TestRequestExpiryLeeway(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.Leeway = 30 * time.Second })
	e.install("client-a", "secret-a")
	tok := e.tenantToken("client-a", "secret-a", "GET", "/page") // exp = now + 3m
	e.clock.Advance(3*time.Minute + 20*time.Second)
	if r := e.get("/page", tok); r.status != 200 {
		t.Fatalf("within leeway: %d %s", r.status, r.body)
	}
	e.clock.Advance(15 * time.Second)
	if r := e.get("/page", tok); r.status != 401 {
		t.Fatalf("beyond leeway: %d %s", r.status, r.body)
	}
}

func TestTokenLocations(t *testing.T) {
	e := newEnv(t)
	e.install("client-a", "secret-a")

	t.Run("Header", func(t *testing.T) {
		if r := e.request("GET", "/page?x=1", e.tenantToken("client-a", "secret-a", "GET", "/page?x=1"), nil); r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("Form", func(t *testing.T) {
		form := url.Values{"jwt": {e.tenantToken("client-a", "secret-a", "POST", "/form?x=1")}, "field": {"v"}}
		r := e.request("POST", "/form?x=1", "", strings.NewReader(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
		if r.status != 200 || r.body != "field=v" {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("FormAndQuery", func(t *testing.T) {
		tok := e.tenantToken("client-a", "secret-a", "POST", "/form")
		form := url.Values{"jwt": {tok}}
		before, calls := e.snapshot(), e.calls.count()
		r := e.request("POST", "/form?jwt="+tok, "", strings.NewReader(form.Encode()), "Content-Type", "application/x-www-form-urlencoded")
		e.expectRefused(r, 401, before)
		if e.calls.count() != calls {
			t.Fatal("handler ran")
		}
	})
	t.Run("FormOnlyForFormPosts", func(t *testing.T) {
		// A jwt field in a JSON body is not a token.
		r := e.request("POST", "/form", "", strings.NewReader(`jwt=`+e.tenantToken("client-a", "secret-a", "POST", "/form")), "Content-Type", "text/plain")
		if r.status != 401 {
			t.Fatalf("%d %s", r.status, r.body)
		}
	})
	t.Run("Webhook", func(t *testing.T) {
		r := e.request("POST", "/hooks/issue?id=10001", e.tenantToken("client-a", "secret-a", "POST", "/hooks/issue?id=10001"),
			strings.NewReader(`{"webhookEvent":"jira:issue_created"}`), "Content-Type", "application/json")
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		if p := e.calls.last(); p.Kind != tenon.TokenWebhook {
			t.Fatalf("kind %s", p.Kind)
		}
	})
	t.Run("API", func(t *testing.T) {
		r := e.request("GET", "/api/items?lic=active", e.contextToken("client-a", "secret-a", `{"license":{"active":false}}`), nil)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		// The unsigned query must not set the license of a context token.
		if p := e.calls.last(); p.Kind != tenon.TokenContext || p.License != tenon.LicenseNone {
			t.Fatalf("kind %s license %q", p.Kind, p.License)
		}
	})
}

func TestBodyLimits(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.MaxBodyBytes = 1024 })
	e.install("client-a", "secret-a")
	big := bytes.Repeat([]byte("x"), 4096)

	t.Run("DeclaredLength", func(t *testing.T) {
		before, calls := e.snapshot(), e.calls.count()
		r := e.request("POST", "/upload", e.tenantToken("client-a", "secret-a", "POST", "/upload"), bytes.NewReader(big))
		e.expectRefused(r, 413, before)
		if e.calls.count() != calls {
			t.Fatal("handler ran")
		}
	})
	t.Run("Chunked", func(t *testing.T) {
		// No Content-Length: the limit applies while the handler reads.
		before := e.snapshot()
		body := struct{ *bytes.Reader }{bytes.NewReader(big)} // hides Len, so the client streams it
		r := e.request("POST", "/upload", e.tenantToken("client-a", "secret-a", "POST", "/upload"), body)
		e.expectRefused(r, 413, before)
	})
	t.Run("ChunkedForm", func(t *testing.T) {
		before, calls := e.snapshot(), e.calls.count()
		body := struct{ *strings.Reader }{strings.NewReader("field=" + string(big))}
		r := e.request("POST", "/form", "", body, "Content-Type", "application/x-www-form-urlencoded")
		e.expectRefused(r, 413, before)
		if e.calls.count() != calls {
			t.Fatal("handler ran")
		}
	})
	t.Run("Lifecycle", func(t *testing.T) {
		before := e.snapshot()
		body := struct{ *bytes.Reader }{bytes.NewReader(lifecycleBody("client-a", "s", func(m map[string]any) { m["pad"] = strings.Repeat("y", 80<<10) }))}
		req, _ := http.NewRequest("POST", e.url("/installed"), body)
		req.Header.Set("Authorization", "JWT "+e.installToken("client-a", "installed"))
		e.expectRefused(e.do(req), 413, before)
	})
}

// The license page loads all.js from the configured place only, and its
// CSP allows scripts from that origin alone.
func TestLicensePageUsesConfiguredAllJS(t *testing.T) {
	e := newEnv(t, func(c *server.Config) {
		c.AllowHTTP = true
		c.AllJSURL = "http://127.0.0.1:9/atlassian-connect/all.js"
	})
	e.install("client-a", "secret-a")
	if got := e.srv.AllJSURL(); got != "http://127.0.0.1:9/atlassian-connect/all.js" {
		t.Errorf("AllJSURL() = %q", got)
	}
	r := e.get("/licensed?lic=none", e.tenantToken("client-a", "secret-a", "GET", "/licensed?lic=none"))
	if r.status != 403 || !strings.Contains(r.body, `src="http://127.0.0.1:9/atlassian-connect/all.js"`) ||
		strings.Contains(r.body, "connect-cdn.atl-paas.net") {
		t.Fatalf("license page: %d %s", r.status, r.body)
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src http://127.0.0.1:9;") {
		t.Errorf("CSP %q", csp)
	}
}

func TestRequireLicense(t *testing.T) {
	e := newEnv(t)
	e.install("client-a", "secret-a")

	tok := e.tenantToken("client-a", "secret-a", "GET", "/licensed?lic=none")
	req, _ := http.NewRequest("GET", e.url("/licensed?lic=none&jwt="+tok), nil)
	req.Header.Set("Accept", "application/json") // an iframe page is HTML whatever the client asks
	r := e.do(req)
	if r.status != 403 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") ||
		!strings.Contains(r.body, "needs a license") || !strings.Contains(r.body, "https://connect-cdn.atl-paas.net/all.js") {
		t.Fatalf("unlicensed page: %d %s %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	if r := e.get("/licensed?lic=active", e.tenantToken("client-a", "secret-a", "GET", "/licensed?lic=active")); r.status != 200 {
		t.Fatalf("licensed: %d %s", r.status, r.body)
	}
	// lic is covered by the qsh: a token for lic=none does not open lic=active.
	if r := e.get("/licensed?lic=active", tok); r.status != 401 {
		t.Fatalf("tampered lic: %d %s", r.status, r.body)
	}

	// API routes answer JSON, and only the token's context counts.
	r = e.request("GET", "/api/licensed?lic=active", e.contextToken("client-a", "secret-a", `{"license":{"active":false}}`), nil)
	if r.status != 403 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") || !strings.Contains(r.body, `"forbidden"`) {
		t.Fatalf("unlicensed API: %d %s", r.status, r.body)
	}
	r = e.request("GET", "/api/licensed", e.contextToken("client-a", "secret-a", `{"license":{"active":true}}`), nil)
	if r.status != 200 {
		t.Fatalf("licensed API: %d %s", r.status, r.body)
	}
}

func TestTenantCache(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.TenantCacheTTL = time.Minute })
	e.install("client-a", "secret-a")
	tok := e.tenantToken("client-a", "secret-a", "GET", "/page")
	if r := e.get("/page", tok); r.status != 200 {
		t.Fatal(r.status)
	}
	// Another node uninstalls the tenant directly in the shared store.
	if _, err := e.store.SetState(context.Background(), "client-a", tenon.StateUninstalled); err != nil {
		t.Fatal(err)
	}
	if r := e.get("/page", tok); r.status != 200 {
		t.Fatalf("cached tenant: %d", r.status)
	}
	// A watcher event (or the TTL) ends the stale view.
	e.srv.InvalidateTenant("client-a")
	if r := e.get("/page", tok); r.status != 401 {
		t.Fatalf("after invalidation: %d", r.status)
	}

	// Unknown tenants are not cached: installing one works at once.
	tokB := e.tenantToken("client-b", "secret-b", "GET", "/page")
	if r := e.get("/page", tokB); r.status != 401 {
		t.Fatal(r.status)
	}
	e.install("client-b", "secret-b")
	if r := e.get("/page", tokB); r.status != 200 {
		t.Fatalf("new tenant after a negative lookup: %d", r.status)
	}

	// TTL expiry.
	if r := e.get("/page", tokB); r.status != 200 {
		t.Fatal(r.status)
	}
	if _, err := e.store.SetState(context.Background(), "client-b", tenon.StateDisabled); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(61 * time.Second)
	tokB = e.tenantToken("client-b", "secret-b", "GET", "/page")
	if r := e.get("/page", tokB); r.status != 403 {
		t.Fatalf("after TTL: %d", r.status)
	}
}

// A handler's Installation has the tenant's fields but not the raw
// installed body, which stays in the store, whole.
func TestPrincipalInstallationWithoutPayload(t *testing.T) {
	e := newEnv(t)
	e.install("client-a", "secret-a")
	var seen tenon.Installation
	e.srv.Module("GET /who", func(w http.ResponseWriter, r *http.Request) error {
		seen = *tenon.PrincipalFrom(r.Context()).Installation
		return nil
	})
	if r := e.get("/who", e.tenantToken("client-a", "secret-a", "GET", "/who")); r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if seen.ClientKey != "client-a" || seen.SharedSecret != "secret-a" || seen.BaseURL == "" {
		t.Errorf("handler saw %+v, want the tenant's fields", seen.Redacted())
	}
	if seen.Payload != nil {
		t.Errorf("handler saw a Payload of %d bytes, want none", len(seen.Payload))
	}
	stored, err := e.store.Installation(context.Background(), "client-a")
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(stored.Payload) || !bytes.Contains(stored.Payload, []byte(`"clientKey"`)) {
		t.Errorf("stored Payload = %q, want the installed body", stored.Payload)
	}
}

// A cached tenant must not keep the token it was first looked up with:
// the clientKey a request names is a slice of its decoded token, so the
// cache is keyed by the record's own string.
func TestTenantCacheKeepsNoToken(t *testing.T) {
	e := newEnv(t)
	e.install("client-a", "secret-a")
	e.install("client-b", "secret-b")
	e.srv.Module("GET /who", func(w http.ResponseWriter, r *http.Request) error { return nil })
	for _, c := range [][2]string{{"client-a", "secret-a"}, {"client-b", "secret-b"}, {"client-a", "secret-a"}} {
		if r := e.get("/who", e.tenantToken(c[0], c[1], "GET", "/who")); r.status != http.StatusOK {
			t.Fatalf("%s: status %d: %s", c[0], r.status, r.body)
		}
	}
	entries, own := server.CachedTenantKeys(e.srv)
	if entries != 2 || own != 2 {
		t.Errorf("cache holds %d tenants, %d keyed by the record's own string; want 2 and 2", entries, own)
	}
}
