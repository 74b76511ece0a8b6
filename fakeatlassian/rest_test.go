package fakeatlassian_test

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tenon-dev/tenon/fakeatlassian"
)

func TestRESTRefusesBadJWT(t *testing.T) {
	t.Parallel()
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", "")
	app := newTestApp(t, f, "jwtcheck").install(site)
	u := site.BaseURL + "/rest/api/3/issue/DEMO-1?fields=summary"

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	good := signREST(t, app, site, "GET", u, nil)
	cases := []struct {
		name, auth, wantMsg string
	}{
		{"bad signature", "JWT " + good[:len(good)-4] + "AAAA", "signature"},
		{"wrong secret", "JWT " + mustSign(t, jwt.SigningMethodHS256, []byte("not-the-secret-not-the-secret-12"), restClaims(app, "GET", u, site)), "signature"},
		{"wrong qsh", "JWT " + signREST(t, app, site, "GET", u, func(c jwt.MapClaims) {
			c["qsh"] = fakeatlassian.QSHOfURL("GET", site.BaseURL+"/rest/api/3/myself", site.BaseURL)
		}), "canonical request"},
		{"qsh over other method", "JWT " + signREST(t, app, site, "POST", u, nil), "qsh"},
		{"missing qsh", "JWT " + signREST(t, app, site, "GET", u, func(c jwt.MapClaims) { delete(c, "qsh") }), "no qsh"},
		{"context qsh", "JWT " + signREST(t, app, site, "GET", u, func(c jwt.MapClaims) { c["qsh"] = "context-qsh" }), "context"},
		{"expired", "JWT " + signREST(t, app, site, "GET", u, func(c jwt.MapClaims) {
			c["iat"] = time.Now().Add(-10 * time.Minute).Unix()
			c["exp"] = time.Now().Add(-5 * time.Minute).Unix()
		}), "expired"},
		{"no exp", "JWT " + signREST(t, app, site, "GET", u, func(c jwt.MapClaims) { delete(c, "exp") }), "exp"},
		{"unknown app", "JWT " + signREST(t, app, site, "GET", u, func(c jwt.MapClaims) { c["iss"] = "someone-else" }), "no app"},
		{"alg none", "JWT " + mustSign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, restClaims(app, "GET", u, site)), "signature or algorithm"},
		{"RS256", "JWT " + mustSign(t, jwt.SigningMethodRS256, rsaKey, restClaims(app, "GET", u, site)), "signature or algorithm"},
		{"garbage", "JWT not.a.token", "malformed"},
		{"no credentials", "", "authenticated"},
		{"basic auth", "Basic dXNlcjpwYXNz", "not supported"},
		{"unknown bearer", "Bearer abc", "unknown"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := do(t, "GET", u, c.auth, nil)
			if r.Status != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401: %s", r.Status, r.Body)
			}
			msgs, _ := r.json(t)["errorMessages"].([]any)
			if len(msgs) != 1 || !strings.Contains(fmt.Sprint(msgs[0]), c.wantMsg) {
				t.Errorf("errorMessages = %v, want one containing %q", msgs, c.wantMsg)
			}
		})
	}
	t.Run("good", func(t *testing.T) {
		if r := do(t, "GET", u, "JWT "+good, nil); r.Status != http.StatusOK {
			t.Fatalf("status %d: %s", r.Status, r.Body)
		}
	})
	t.Run("jwt query parameter", func(t *testing.T) {
		q := u + "&jwt=" + url.QueryEscape(good)
		if r := do(t, "GET", q, "", nil); r.Status != http.StatusOK {
			t.Fatalf("status %d: %s", r.Status, r.Body)
		}
		if r := do(t, "GET", q, "JWT "+good, nil); r.Status != http.StatusUnauthorized {
			t.Fatalf("two tokens: status %d, want 401", r.Status)
		}
	})
	// Failed calls are recorded with their reason, and no token leaks
	// into the record.
	for _, c := range f.Calls() {
		if strings.Contains(c.URL, good) {
			t.Errorf("call record holds a token: %s", c.URL)
		}
	}
}

func restClaims(app fakeatlassian.App, method, u string, site *fakeatlassian.Site) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"iss": app.Key, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
		"qsh": fakeatlassian.QSHOfURL(method, u, site.BaseURL)}
}

func mustSign(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRESTIssuesAsApp(t *testing.T) {
	t.Parallel()
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", "")
	app := newTestApp(t, f, "issues").install(site)

	me := asApp(t, app, site, "GET", "/rest/api/3/myself", nil).json(t)
	if me["accountId"] != app.AccountID || me["accountType"] != "app" {
		t.Errorf("myself = %v, want the app user", me)
	}

	r := asApp(t, app, site, "POST", "/rest/api/3/issue", map[string]any{"fields": map[string]any{
		"project": map[string]any{"key": "DEMO"}, "summary": "Made by the app",
		"description": map[string]any{"type": "doc", "version": 1, "content": []any{map[string]any{"type": "paragraph", "content": []any{map[string]any{"type": "text", "text": "Hello ADF"}}}}},
		"issuetype":   map[string]any{"name": "Bug"}, "labels": []string{"x"},
	}})
	if r.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	created := r.json(t)
	key := created["key"].(string)
	if key != "DEMO-3" || !strings.HasPrefix(created["self"].(string), site.BaseURL+"/rest/api/3/issue/") {
		t.Errorf("created = %v", created)
	}

	got := asApp(t, app, site, "GET", "/rest/api/3/issue/"+key, nil).json(t)
	fields := got["fields"].(map[string]any)
	if fields["summary"] != "Made by the app" || fields["status"].(map[string]any)["name"] != "To Do" ||
		fields["project"].(map[string]any)["key"] != "DEMO" || fields["issuetype"].(map[string]any)["name"] != "Bug" {
		t.Errorf("issue fields = %v", fields)
	}
	if _, isDoc := fields["description"].(map[string]any); !isDoc {
		t.Errorf("v3 description is not a document: %v", fields["description"])
	}
	v2 := asApp(t, app, site, "GET", "/rest/api/2/issue/"+key, nil).json(t)
	if d := v2["fields"].(map[string]any)["description"]; d != "Hello ADF" {
		t.Errorf("v2 description = %v", d)
	}

	if r := asApp(t, app, site, "PUT", "/rest/api/3/issue/"+key, map[string]any{"fields": map[string]any{"summary": "Renamed"}}); r.Status != http.StatusNoContent {
		t.Fatalf("edit: %d %s", r.Status, r.Body)
	}
	if r := asApp(t, app, site, "PUT", "/rest/api/3/issue/"+key, map[string]any{"fields": map[string]any{"summary": ""}}); r.Status != http.StatusBadRequest {
		t.Errorf("empty summary: %d", r.Status)
	}
	if r := asApp(t, app, site, "POST", "/rest/api/3/issue/"+key+"/transitions", map[string]any{"transition": map[string]any{"id": "31"}}); r.Status != http.StatusNoContent {
		t.Fatalf("transition: %d %s", r.Status, r.Body)
	}
	is, _ := f.GetIssue(site, key)
	if is.Summary != "Renamed" || is.Status != "Done" {
		t.Errorf("after edit: %+v", is)
	}

	bad := asApp(t, app, site, "POST", "/rest/api/3/issue", map[string]any{"fields": map[string]any{"project": map[string]any{"key": "NOPE"}}})
	errs, _ := bad.json(t)["errors"].(map[string]any)
	if bad.Status != http.StatusBadRequest || errs["summary"] == nil || errs["project"] == nil {
		t.Errorf("invalid create: %d %s", bad.Status, bad.Body)
	}

	if r := asApp(t, app, site, "DELETE", "/rest/api/3/issue/"+key, nil); r.Status != http.StatusNoContent {
		t.Fatalf("delete: %d", r.Status)
	}
	if r := asApp(t, app, site, "GET", "/rest/api/3/issue/"+key, nil); r.Status != http.StatusNotFound {
		t.Errorf("deleted issue: %d", r.Status)
	}
	if r := asApp(t, app, site, "GET", "/rest/api/3/nothing-here", nil); r.Status != http.StatusNotFound {
		t.Errorf("unknown resource: %d", r.Status)
	}
	if r := asApp(t, app, site, "GET", "/rest/api/3/project/DEMO", nil); r.Status != http.StatusOK || r.json(t)["key"] != "DEMO" {
		t.Errorf("project: %d %s", r.Status, r.Body)
	}
	var projects []map[string]any
	r = asApp(t, app, site, "GET", "/rest/api/3/project", nil)
	if err := jsonUnmarshal(r.Body, &projects); err != nil || len(projects) != 2 {
		t.Errorf("projects: %s", r.Body)
	}
}

func TestRESTSearch(t *testing.T) {
	t.Parallel()
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", "")
	app := newTestApp(t, f, "search").install(site)

	keys := func(r response) string {
		t.Helper()
		if r.Status != http.StatusOK {
			t.Fatalf("search: %d %s", r.Status, r.Body)
		}
		var out []string
		for _, is := range r.json(t)["issues"].([]any) {
			m := is.(map[string]any)
			if k, ok := m["key"].(string); ok {
				out = append(out, k)
			} else {
				out = append(out, m["id"].(string))
			}
		}
		return strings.Join(out, ",")
	}
	q := func(jql string) string { return url.QueryEscape(jql) }
	if got := keys(asApp(t, app, site, "GET", "/rest/api/3/search?jql="+q("project = DEMO ORDER BY key ASC"), nil)); got != "DEMO-1,DEMO-2" {
		t.Errorf("project = DEMO: %s", got)
	}
	if got := keys(asApp(t, app, site, "GET", "/rest/api/3/search?jql="+q(`key in (DEMO-2, "OPS-1") order by key desc`), nil)); got != "OPS-1,DEMO-2" {
		t.Errorf("key in: %s", got)
	}
	if got := keys(asApp(t, app, site, "POST", "/rest/api/3/search/jql", map[string]any{"jql": `summary ~ "app panel"`, "fields": []string{"summary"}})); got != "DEMO-2" {
		t.Errorf("summary ~: %s", got)
	}
	// The enhanced search pages with nextPageToken.
	first := asApp(t, app, site, "GET", "/rest/api/3/search/jql?maxResults=2&fields=key&jql="+q("order by key asc"), nil).json(t)
	tok, _ := first["nextPageToken"].(string)
	if first["isLast"] != false || tok == "" {
		t.Fatalf("first page: %v", first)
	}
	second := asApp(t, app, site, "GET", "/rest/api/3/search/jql?maxResults=2&fields=key&jql="+q("order by key asc")+"&nextPageToken="+tok, nil).json(t)
	if second["isLast"] != true || len(second["issues"].([]any)) != 1 {
		t.Errorf("second page: %v", second)
	}
	bad := asApp(t, app, site, "GET", "/rest/api/3/search?jql="+q("project = DEMO OR project = OPS"), nil)
	if bad.Status != http.StatusBadRequest || !strings.Contains(string(bad.Body), "Error in the JQL Query") {
		t.Errorf("bad JQL: %d %s", bad.Status, bad.Body)
	}
}

func TestRESTPropertiesAndLicense(t *testing.T) {
	t.Parallel()
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", "")
	ta := newTestApp(t, f, "props")
	app := ta.install(site)

	p := "/rest/api/3/issue/DEMO-1/properties/my-prop"
	if r := asApp(t, app, site, "GET", p, nil); r.Status != http.StatusNotFound {
		t.Errorf("missing property: %d", r.Status)
	}
	if r := asApp(t, app, site, "PUT", p, map[string]any{"n": 1}); r.Status != http.StatusCreated {
		t.Errorf("create property: %d %s", r.Status, r.Body)
	}
	if r := asApp(t, app, site, "PUT", p, map[string]any{"n": 2}); r.Status != http.StatusOK {
		t.Errorf("update property: %d", r.Status)
	}
	got := asApp(t, app, site, "GET", p, nil).json(t)
	if got["key"] != "my-prop" || got["value"].(map[string]any)["n"] != float64(2) {
		t.Errorf("property = %v", got)
	}
	if r := asApp(t, app, site, "PUT", p, "{not json"); r.Status != http.StatusBadRequest {
		t.Errorf("invalid JSON property: %d", r.Status)
	}

	ap := "/rest/atlassian-connect/1/addons/props/properties/settings"
	if r := asApp(t, app, site, "PUT", ap, map[string]any{"on": true}); r.Status != http.StatusCreated {
		t.Errorf("app property: %d %s", r.Status, r.Body)
	}
	if r := asApp(t, app, site, "GET", ap, nil); r.Status != http.StatusOK || r.json(t)["value"].(map[string]any)["on"] != true {
		t.Errorf("get app property: %d %s", r.Status, r.Body)
	}
	if r := asApp(t, app, site, "GET", "/rest/atlassian-connect/1/addons/other-app/properties/settings", nil); r.Status != http.StatusForbidden {
		t.Errorf("other app's property: %d", r.Status)
	}

	lic := asApp(t, app, site, "GET", "/rest/atlassian-connect/1/addons/props", nil).json(t)
	if lic["key"] != "props" || lic["state"] != "ENABLED" || lic["license"].(map[string]any)["active"] != true {
		t.Errorf("license = %v", lic)
	}
	if err := f.SetLicense(site, "props", false); err != nil {
		t.Fatal(err)
	}
	lic = asApp(t, app, site, "GET", "/rest/atlassian-connect/1/addons/props", nil).json(t)
	if lic["license"].(map[string]any)["active"] != false {
		t.Errorf("license after knob = %v", lic)
	}
}

func TestRESTScopes(t *testing.T) {
	t.Parallel()
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", "")
	ta := newTestApp(t, f, "readonly")
	ta.setDescriptor("scopes", []string{"READ"})
	app := ta.install(site)
	if r := asApp(t, app, site, "GET", "/rest/api/3/issue/DEMO-1", nil); r.Status != http.StatusOK {
		t.Errorf("read: %d", r.Status)
	}
	if r := asApp(t, app, site, "DELETE", "/rest/api/3/issue/DEMO-1", nil); r.Status != http.StatusForbidden {
		t.Errorf("delete without scope: %d", r.Status)
	}
	if r := asApp(t, app, site, "PUT", "/rest/api/3/issue/DEMO-1", map[string]any{"fields": map[string]any{"summary": "x"}}); r.Status != http.StatusForbidden {
		t.Errorf("write without scope: %d", r.Status)
	}
}

func TestRESTConfluenceWikiBasePath(t *testing.T) {
	t.Parallel()
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "docs", fakeatlassian.ProductConfluence)
	if !strings.HasSuffix(site.BaseURL, "/s/docs/wiki") {
		t.Fatalf("base URL = %s", site.BaseURL)
	}
	ta := newTestApp(t, f, "wiki-app")
	ta.setDescriptor("modules", map[string]any{"generalPages": []any{map[string]any{"key": "main-page", "url": "/page"}}})
	app := ta.install(site)
	if p := ta.lifecycleCalls()[0].Payload; p["baseUrl"] != site.BaseURL || p["productType"] != "confluence" {
		t.Errorf("payload baseUrl %v productType %v", p["baseUrl"], p["productType"])
	}

	r := asApp(t, app, site, "GET", "/rest/api/content/65537?expand=body.storage", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("content: %d %s", r.Status, r.Body)
	}
	c := r.json(t)
	if c["title"] != "Welcome to the fake Confluence" || c["body"] == nil {
		t.Errorf("content = %v", c)
	}
	// The qsh path is relative to /wiki: a token hashed over the full
	// path (with /s/docs/wiki) is refused.
	full := site.BaseURL + "/rest/api/content/65537"
	wrong := signREST(t, app, site, "GET", full, func(c jwt.MapClaims) {
		c["qsh"] = fakeatlassian.QSH("GET", "/s/docs/wiki/rest/api/content/65537", "", "")
	})
	if r := do(t, "GET", full, "JWT "+wrong, nil); r.Status != http.StatusUnauthorized {
		t.Errorf("qsh over the full path: %d", r.Status)
	} else if m := r.json(t); m["statusCode"] != float64(401) {
		t.Errorf("Confluence error shape: %v", m)
	}
	if r := asApp(t, app, site, "GET", "/rest/api/content/1", nil); r.Status != http.StatusNotFound {
		t.Errorf("missing content: %d", r.Status)
	}
	if r := asApp(t, app, site, "GET", "/rest/api/user/current", nil); r.Status != http.StatusOK || r.json(t)["accountId"] != app.AccountID {
		t.Errorf("current user: %d %s", r.Status, r.Body)
	}
	// As a user: the assertion's tnt is the /wiki base URL.
	status, tok := tokenRequest(t, f, grant(assertion(t, f, app, site, site.DefaultAccountID, nil), "READ"))
	if status != http.StatusOK {
		t.Fatalf("token for Confluence: %d %v", status, tok)
	}
	if r := do(t, "GET", site.BaseURL+"/rest/api/user/current", "Bearer "+tok["access_token"].(string), nil); r.Status != http.StatusOK || r.json(t)["accountId"] != site.DefaultAccountID {
		t.Errorf("current user as user: %d %s", r.Status, r.Body)
	}
	// Jira APIs do not exist on a Confluence site.
	if r := asApp(t, app, site, "GET", "/rest/api/3/myself", nil); r.Status != http.StatusNotFound {
		t.Errorf("Jira API on Confluence: %d", r.Status)
	}
}

func TestRESTPathWithAmpersand(t *testing.T) {
	t.Parallel()
	// A raw '&' in the path is hashed as %26: a signer that forgets it is
	// refused, one that follows PROTOCOL §4 is accepted (404: no such
	// issue, but authenticated).
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", "")
	app := newTestApp(t, f, "amp").install(site)
	u := site.BaseURL + "/rest/api/3/issue/A&B"
	if r := do(t, "GET", u, "JWT "+signREST(t, app, site, "GET", u, nil), nil); r.Status != http.StatusNotFound {
		t.Errorf("escaped signer: %d %s", r.Status, r.Body)
	}
	naive := signREST(t, app, site, "GET", u, func(c jwt.MapClaims) {
		c["qsh"] = sha256Hex("GET&/rest/api/3/issue/A&B&")
	})
	if r := do(t, "GET", u, "JWT "+naive, nil); r.Status != http.StatusUnauthorized {
		t.Errorf("naive signer: %d", r.Status)
	}
}
