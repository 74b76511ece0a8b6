package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/connectjwt"
	"github.com/tenon-dev/tenon/server"
)

func TestDescriptorSpliceByteExact(t *testing.T) {
	// Odd whitespace, escapes, non-ASCII text, key order, and "baseUrl"
	// keys below the top level: only the top-level value may change.
	const original = "{\n\t\"name\" : \"Caf\\u00e9 \u2615 \u00fcber\",\r\n  \"key\":\"com.example.tenon-test\",\n" +
		"  \"modules\": {\"x\": {\"baseUrl\": \"https://nested.example\"}},\n" +
		"  \"baseUrl\"  :\t\"https:\\/\\/old.example\\/\" ,\n" +
		"  \"authentication\": {\"type\": \"jwt\"}, \"lifecycle\": {\"installed\": \"/installed\"},\n" +
		"  \"apiMigrations\": {\"signed-install\": true}, \"z\": [1, 2.50, 1e3]\n}\n"
	const want = "{\n\t\"name\" : \"Caf\\u00e9 \u2615 \u00fcber\",\r\n  \"key\":\"com.example.tenon-test\",\n" +
		"  \"modules\": {\"x\": {\"baseUrl\": \"https://nested.example\"}},\n" +
		"  \"baseUrl\"  :\t\"https://app.example.test/app&x\" ,\n" +
		"  \"authentication\": {\"type\": \"jwt\"}, \"lifecycle\": {\"installed\": \"/installed\"},\n" +
		"  \"apiMigrations\": {\"signed-install\": true}, \"z\": [1, 2.50, 1e3]\n}\n"

	e := newEnv(t, func(c *server.Config) {
		c.Descriptor = []byte(original)
		c.BaseURL = "https://app.example.test/app&x"
	})
	// The base path here is "/app&x"; fetch through the handler directly.
	req := httptest.NewRequest("GET", "https://app.example.test/app&x/atlassian-connect.json", nil)
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("status %d %s", rec.Code, rec.Body)
	}
	if got := rec.Body.String(); got != want {
		t.Fatalf("descriptor not byte-exact:\ngot  %q\nwant %q", got, want)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}
}

func TestDescriptorServedUnderBasePath(t *testing.T) {
	e := newEnv(t)
	r := e.request("GET", "/atlassian-connect.json", "", nil)
	if r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	want := strings.Replace(testDescriptor, `"https://placeholder.example"`, `"`+appBaseURL+`"`, 1)
	if r.body != want {
		t.Fatalf("got %s", r.body)
	}
	// Not at the root when the base URL has a path.
	resp, err := http.Get(e.ts.URL + "/atlassian-connect.json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("root descriptor: %d", resp.StatusCode)
	}
}

func TestRootBasePath(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.BaseURL = "https://app.example.test/" })
	req := httptest.NewRequest("GET", "/atlassian-connect.json", nil)
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"baseUrl": "https://app.example.test"`) {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}

func TestNewValidation(t *testing.T) {
	store := newEnv(t).store
	keys := mustKeySource(t, "http://127.0.0.1:1", time.Second)
	base := func() server.Config {
		return server.Config{
			Descriptor: []byte(testDescriptor), BaseURL: appBaseURL, Store: store, InstallKeys: keys,
			AllowedHosts: []string{"*.atlassian.net"},
		}
	}
	desc := func(mod func(map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal([]byte(testDescriptor), &m); err != nil {
			t.Fatal(err)
		}
		mod(m)
		b, _ := json.Marshal(m)
		return b
	}
	cases := []struct {
		name string
		mod  func(*server.Config)
		want string
	}{
		{"NoStore", func(c *server.Config) { c.Store = nil }, "Store"},
		{"NoKeys", func(c *server.Config) { c.InstallKeys = nil }, "InstallKeys"},
		{"NoDescriptor", func(c *server.Config) { c.Descriptor = nil }, "Descriptor"},
		{"NoBaseURL", func(c *server.Config) { c.BaseURL = "" }, "BaseURL"},
		{"HTTPBaseURL", func(c *server.Config) { c.BaseURL = "http://app.example.test" }, "https"},
		{"RelativeBaseURL", func(c *server.Config) { c.BaseURL = "https:///x" }, "host"},
		{"QueryBaseURL", func(c *server.Config) { c.BaseURL = "https://app.example.test/?a=b" }, "query"},
		{"NoHosts", func(c *server.Config) { c.AllowedHosts = nil }, "AllowedHosts"},
		{"ScriptAllJS", func(c *server.Config) { c.AllJSURL = "javascript:alert(1)" }, "AllJSURL"},
		{"HTTPAllJS", func(c *server.Config) { c.AllJSURL = "http://cdn.example.test/all.js" }, "AllJSURL"},
		{"RelativeAllJS", func(c *server.Config) { c.AllJSURL = "/all.js" }, "AllJSURL"},
		{"StarHost", func(c *server.Config) { c.AllowedHosts = []string{"*"} }, "any host"},
		{"PartialWildcard", func(c *server.Config) { c.AllowedHosts = []string{"a*.atlassian.net"} }, "whole label"},
		{"HostWithScheme", func(c *server.Config) { c.AllowedHosts = []string{"https://x.atlassian.net"} }, "AllowedHosts"},
		{"LeewayTooLarge", func(c *server.Config) { c.Leeway = time.Minute }, "Leeway"},
		{"BadAudience", func(c *server.Config) { c.ExtraAudiences = []string{"not a url"} }, "ExtraAudiences"},
		{"DescriptorNotJSON", func(c *server.Config) { c.Descriptor = []byte("{") }, "JSON"},
		{"DescriptorNoKey", func(c *server.Config) { c.Descriptor = desc(func(m map[string]any) { delete(m, "key") }) }, `"key"`},
		{"DescriptorNoJWT", func(c *server.Config) {
			c.Descriptor = desc(func(m map[string]any) { m["authentication"] = map[string]any{"type": "none"} })
		}, "jwt"},
		{"DescriptorNoInstalled", func(c *server.Config) {
			c.Descriptor = desc(func(m map[string]any) { m["lifecycle"] = map[string]any{"uninstalled": "/u"} })
		}, "lifecycle.installed"},
		{"DescriptorNoSignedInstall", func(c *server.Config) {
			c.Descriptor = desc(func(m map[string]any) { m["apiMigrations"] = map[string]any{"signed-install": false} })
		}, "signed-install"},
		{"DescriptorNoBaseURL", func(c *server.Config) { c.Descriptor = desc(func(m map[string]any) { delete(m, "baseUrl") }) }, `"baseUrl"`},
		{"DescriptorTwoBaseURLs", func(c *server.Config) {
			c.Descriptor = []byte(strings.Replace(testDescriptor, `"baseUrl"`, `"baseUrl": "https://a.example", "baseUrl"`, 1))
		}, "twice"},
		{"DescriptorRelativeLifecycle", func(c *server.Config) {
			c.Descriptor = desc(func(m map[string]any) { m["lifecycle"] = map[string]any{"installed": "installed"} })
		}, "starting with '/'"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base()
			tc.mod(&cfg)
			_, err := server.New(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want mention of %q", err, tc.want)
			}
		})
	}
	if _, err := server.New(base()); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
}

func TestErrorFormatByAccept(t *testing.T) {
	e := newEnv(t)
	e.install("client-a", "secret-a")
	for _, tc := range []struct {
		accept, wantType string
	}{
		{"", "application/json"},
		{"*/*", "application/json"},
		{"application/json", "application/json"},
		{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/html"},
		{"application/json, text/html", "application/json"},
	} {
		req, _ := http.NewRequest("GET", e.url("/missing?jwt="+e.tenantToken("client-a", "secret-a", "GET", "/missing")), nil)
		if tc.accept != "" {
			req.Header.Set("Accept", tc.accept)
		}
		r := e.do(req)
		if r.status != 404 || !strings.HasPrefix(r.header.Get("Content-Type"), tc.wantType) || !strings.Contains(r.body, "No such issue.") {
			t.Fatalf("Accept %q: %d %s %s", tc.accept, r.status, r.header.Get("Content-Type"), r.body)
		}
		if tc.wantType == "application/json" {
			var doc struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal([]byte(r.body), &doc); err != nil || doc.Error.Code != "not_found" || doc.Error.Message != "No such issue." {
				t.Fatalf("JSON error %s: %v", r.body, err)
			}
		}
	}
}

func TestWriteErrorStatuses(t *testing.T) {
	for code, status := range map[string]int{
		tenon.EINVALID: 400, tenon.EUNAUTHORIZED: 401, tenon.EFORBIDDEN: 403, tenon.ENOTFOUND: 404,
		tenon.ECONFLICT: 409, tenon.ETOOLARGE: 413, tenon.EUNAVAILABLE: 503, tenon.EINTERNAL: 500,
	} {
		rec := httptest.NewRecorder()
		server.WriteError(rec, httptest.NewRequest("GET", "/", nil), tenon.Errorf(code, "msg"))
		if rec.Code != status {
			t.Errorf("%s: %d, want %d", code, rec.Code, status)
		}
	}
	// Errors that are not tenon errors never show their text.
	rec := httptest.NewRecorder()
	server.WriteError(rec, httptest.NewRequest("GET", "/", nil), errors.New("password=hunter2"))
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "hunter2") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	// Nor do wrapped causes of tenon errors; HTML escapes the message.
	rec = httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Accept", "text/html")
	server.WriteError(rec, req, tenon.WrapError(tenon.EINVALID, "<b>bad</b>", errors.New("cause-secret")))
	if body := rec.Body.String(); rec.Code != 400 || strings.Contains(body, "cause-secret") || strings.Contains(body, "<b>") {
		t.Fatalf("%d %s", rec.Code, body)
	}
}

func TestHandlerErrorsAndPanics(t *testing.T) {
	e := newEnv(t)
	e.install("client-a", "secret-a")
	r := e.get("/fail", e.tenantToken("client-a", "secret-a", "GET", "/fail"))
	if r.status != 500 || strings.Contains(r.body, "fire") || strings.Contains(r.body, "do-not-show") {
		t.Fatalf("internal error: %d %s", r.status, r.body)
	}
	if !strings.Contains(e.logs.String(), "database on fire") {
		t.Fatal("internal error not logged")
	}
	r = e.get("/panic", e.tenantToken("client-a", "secret-a", "GET", "/panic"))
	if r.status != 500 || strings.Contains(r.body, "boom") {
		t.Fatalf("panic: %d %s", r.status, r.body)
	}
	if !strings.Contains(e.logs.String(), "handler panicked") {
		t.Fatal("panic not logged")
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	e := newEnv(t)
	r := e.request("GET", "/nope", "", nil)
	if r.status != 404 || !strings.Contains(r.body, `"not_found"`) {
		t.Fatalf("404: %d %s", r.status, r.body)
	}
	r = e.request("DELETE", "/page", "", nil)
	if r.status != 405 || !strings.Contains(r.header.Get("Allow"), "GET") || !strings.Contains(r.body, `"error"`) {
		t.Fatalf("405: %d %v %s", r.status, r.header, r.body)
	}
	r = e.request("GET", "/installed", "", nil)
	if r.status != 405 {
		t.Fatalf("GET on lifecycle: %d", r.status)
	}
	r = e.request("GET", "/health", "", nil)
	if r.status != 200 || r.body != "healthy" {
		t.Fatalf("public: %d %s", r.status, r.body)
	}
}

// A whole session, refusals included, must not put a shared secret or a
// token into the logs.
func TestLogsHaveNoSecretsOrTokens(t *testing.T) {
	e := newEnv(t)
	const secret = "s3cr3t-shared-value-0123456789abcdef"
	var tokens []string
	install := e.installToken("client-a", "installed")
	tokens = append(tokens, install)
	if r := e.lifecycle("installed", lifecycleBody("client-a", secret), install); r.status != 204 {
		t.Fatal(r.status)
	}
	// Refused installs, including one carrying another secret.
	bad := signHS256(t, e.lifecycleClaims("client-a", "installed"), secret)
	tokens = append(tokens, bad)
	e.lifecycle("installed", lifecycleBody("client-a", secret+"-2"), bad)
	wrongAud := e.lifecycleClaims("client-a", "installed")
	wrongAud.Audience = connectjwt.Audience{"https://evil.example"}
	tok := signRS256(t, wrongAud, kid, installKey())
	tokens = append(tokens, tok)
	e.lifecycle("installed", lifecycleBody("client-a", secret+"-3"), tok)

	good := e.tenantToken("client-a", secret, "GET", "/page")
	wrong := e.tenantToken("client-a", secret, "GET", "/other")
	expired := e.tenantToken("client-a", secret, "GET", "/page", func(c *connectjwt.Claims) { c.ExpiresAt = 1 })
	forged := e.tenantToken("client-a", "guess", "GET", "/page")
	tokens = append(tokens, good, wrong, expired, forged)
	e.get("/page", good)
	e.get("/page", wrong)
	e.get("/page", expired)
	e.get("/page", forged)
	e.request("GET", "/page?jwt="+good, good, nil)
	e.get("/fail", e.tenantToken("client-a", secret, "GET", "/fail"))
	e.lifecycle("disabled", lifecycleBody("client-a", secret), e.stateToken("client-a", "guess", "disabled"))

	logs := e.logs.String()
	if !strings.Contains(logs, "request refused") || !strings.Contains(logs, "client-a") {
		t.Fatalf("expected refusal logs with the client key:\n%s", logs)
	}
	if strings.Contains(logs, secret) {
		t.Fatalf("a shared secret is in the logs:\n%s", logs)
	}
	for _, tok := range tokens {
		// The signature part alone is enough to tell a token leaked.
		sig := tok[strings.LastIndexByte(tok, '.')+1:]
		if strings.Contains(logs, sig) || strings.Contains(logs, tok[:strings.IndexByte(tok, '.')+20]) {
			t.Fatalf("a token is in the logs:\n%s", logs)
		}
	}
}

func TestEnvironments(t *testing.T) {
	for _, s := range []string{"production", "PROD", " staging ", "dev"} {
		if _, err := server.ParseEnvironment(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	if _, err := server.ParseEnvironment("qa"); err == nil {
		t.Error("unknown environment accepted")
	}
	p := server.Production.Defaults()
	if p.KeyServerURL == "" || len(p.KeyServerFallbacks) == 0 || p.AllowHTTP || len(p.AllowedHosts) != 1 || p.AllowedHosts[0] != "*.atlassian.net" {
		t.Errorf("production %+v", p)
	}
	for _, u := range append([]string{p.KeyServerURL}, p.KeyServerFallbacks...) {
		if !strings.HasPrefix(u, "https://") {
			t.Errorf("production key server %q", u)
		}
	}
	if s := server.Staging.Defaults(); s.AllowHTTP || s.AllowedHosts[0] != "*.jira-dev.com" || !strings.HasPrefix(s.KeyServerURL, "https://") {
		t.Errorf("staging %+v", s)
	}
	if d := server.Development.Defaults(); !d.AllowHTTP || d.KeyServerURL != "" {
		t.Errorf("development %+v", d)
	}
}

func TestAllowHTTPForDevelopment(t *testing.T) {
	e := newEnv(t, func(c *server.Config) {
		c.AllowHTTP = true
		c.AllowedHosts = server.Development.Defaults().AllowedHosts
	})
	body := lifecycleBody("client-dev", "secret-dev", func(m map[string]any) { m["baseUrl"] = "http://localhost:2990/jira" })
	if r := e.lifecycle("installed", body, e.installToken("client-dev", "installed")); r.status != 204 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	before := e.snapshot()
	body = lifecycleBody("client-x", "secret-x", func(m map[string]any) { m["baseUrl"] = "http://evil.example" })
	e.expectRefused(e.lifecycle("installed", body, e.installToken("client-x", "installed")), 403, before)
}

func TestExtraAudiences(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.ExtraAudiences = []string{"https://old.example.test/app"} })
	c := e.lifecycleClaims("client-a", "installed")
	c.Audience = connectjwt.Audience{"https://old.example.test/app/"}
	if r := e.lifecycle("installed", lifecycleBody("client-a", "s"), signRS256(t, c, kid, installKey())); r.status != 204 {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

func TestWatchWithoutWatcherReturns(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.srv.Watch(ctx); err != nil || ctx.Err() != nil {
		t.Fatalf("Watch on a store without watcher: %v (ctx %v)", err, ctx.Err())
	}
}

func TestNewHTTPServer(t *testing.T) {
	e := newEnv(t)
	hs := e.srv.NewHTTPServer("127.0.0.1:0")
	if hs.ReadHeaderTimeout == 0 || hs.ReadTimeout == 0 || hs.WriteTimeout == 0 || hs.IdleTimeout == 0 ||
		hs.MaxHeaderBytes == 0 || hs.ErrorLog == nil || hs.Handler != e.srv {
		t.Fatalf("%+v", hs)
	}
}

func TestPatternsArePrefixed(t *testing.T) {
	e := newEnv(t)
	defer func() {
		if recover() == nil {
			t.Fatal("a host pattern was accepted")
		}
	}()
	e.srv.Public("example.com/x", http.NotFoundHandler())
}
