package fakeatlassian_test

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tenon-dev/tenon/fakeatlassian"
)

// verifyFrameToken checks an iframe or context token as an app would.
func verifyFrameToken(t *testing.T, token, secret string) jwt.MapClaims {
	t.Helper()
	claims := jwt.MapClaims{}
	_, err := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired()).
		ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return []byte(secret), nil })
	if err != nil {
		t.Fatalf("verify token: %v", err)
	}
	return claims
}

func TestSignedModuleURL(t *testing.T) {
	t.Parallel()
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", "")
	ta := newTestApp(t, f, "frames")
	app := ta.install(site)

	src, err := f.SignedModuleURL(site, "frames", "issue-panel", fakeatlassian.FrameOptions{IssueKey: "DEMO-2", Locale: "de-DE"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	if u.Path != "/app/panel" {
		t.Errorf("path = %s", u.Path)
	}
	q := u.Query()
	want := map[string]string{
		"issueKey": "DEMO-2", "projectId": "10000", "lic": "active", "xdm_e": f.URL(), "cp": "/s/acme",
		"loc": "de-DE", "tz": "UTC", "user_id": "", "user_key": "", "xdm_c": "channel-frames__issue-panel",
	}
	for k, v := range want {
		if !q.Has(k) || q.Get(k) != v {
			t.Errorf("param %s = %q (present %v), want %q", k, q.Get(k), q.Has(k), v)
		}
	}
	if q.Get("cv") == "" {
		t.Error("cv missing")
	}
	claims := verifyFrameToken(t, q.Get("jwt"), app.SharedSecret)
	if claims["iss"] != site.ClientKey || claims["sub"] != site.DefaultAccountID {
		t.Errorf("iss/sub = %v/%v", claims["iss"], claims["sub"])
	}
	if wantQSH := fakeatlassian.QSHOfURL("GET", src, app.BaseURL); claims["qsh"] != wantQSH {
		t.Errorf("qsh = %v, want %s", claims["qsh"], wantQSH)
	}
	exp, _ := claims.GetExpirationTime()
	iat, _ := claims.GetIssuedAt()
	if d := exp.Sub(iat.Time); d != 3*time.Minute {
		t.Errorf("lifetime = %v, want 3m", d)
	}
	issue := claims["context"].(map[string]any)["jira"].(map[string]any)["issue"].(map[string]any)
	if issue["key"] != "DEMO-2" {
		t.Errorf("context = %v", claims["context"])
	}
	// The app can load the URL.
	if r := do(t, "GET", src, "", nil); r.Status != http.StatusOK {
		t.Errorf("app answered %d", r.Status)
	}

	if _, err := f.SignedModuleURL(site, "frames", "no-such-module", fakeatlassian.FrameOptions{}); err == nil {
		t.Error("unknown module gave a URL")
	}

	tok, err := f.ContextToken(site, "frames", fakeatlassian.FrameOptions{AccountID: site.Users[1].AccountID, IssueKey: "DEMO-1"})
	if err != nil {
		t.Fatal(err)
	}
	ctxClaims := verifyFrameToken(t, tok, app.SharedSecret)
	if ctxClaims["qsh"] != "context-qsh" || ctxClaims["sub"] != site.Users[1].AccountID {
		t.Errorf("context token claims = %v", ctxClaims)
	}
}

// A URL signed ahead of time (a load test's pool) asks for a longer
// token; the qsh and everything else stay as the product signs them.
func TestSignedModuleURLTokenLifetime(t *testing.T) {
	t.Parallel()
	clk := newClock()
	f := newFake(t, fakeatlassian.Options{Now: clk.Now})
	site := addSite(t, f, "acme", "")
	ta := newTestApp(t, f, "frames")
	app := ta.install(site)
	for _, tc := range []struct {
		ask, want time.Duration
	}{{0, 3 * time.Minute}, {-time.Minute, 3 * time.Minute}, {90 * time.Minute, 90 * time.Minute}} {
		src, err := f.SignedModuleURL(site, "frames", "issue-panel", fakeatlassian.FrameOptions{IssueKey: "DEMO-1", TokenLifetime: tc.ask})
		if err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		claims := verifyFrameToken(t, u.Query().Get("jwt"), app.SharedSecret)
		exp, _ := claims.GetExpirationTime()
		iat, _ := claims.GetIssuedAt()
		if iat.Unix() != clk.Now().Unix() || exp.Sub(iat.Time) != tc.want {
			t.Errorf("asked %v: iat %v, lifetime %v, want %v from now", tc.ask, iat, exp.Sub(iat.Time), tc.want)
		}
		if wantQSH := fakeatlassian.QSHOfURL("GET", src, app.BaseURL); claims["qsh"] != wantQSH {
			t.Errorf("asked %v: qsh = %v, want %s", tc.ask, claims["qsh"], wantQSH)
		}
	}
}

var (
	iframeRE   = regexp.MustCompile(`<iframe id="(frame-[0-9a-f]+)" name="[^"]*" src="([^"]+)"`)
	hostDataRE = regexp.MustCompile(`(?s)<script type="application/json" id="tenon-host-data">(.*?)</script>`)
)

type hostPage struct {
	frameID, src string
	session      string
}

func loadPage(t *testing.T, pageURL string) hostPage {
	t.Helper()
	r := do(t, "GET", pageURL, "", nil)
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("page %s: %d %s", pageURL, r.Status, r.Body)
	}
	m := iframeRE.FindStringSubmatch(string(r.Body))
	if m == nil {
		t.Fatalf("no iframe on %s:\n%s", pageURL, r.Body)
	}
	d := hostDataRE.FindStringSubmatch(string(r.Body))
	if d == nil {
		t.Fatalf("no host data on %s", pageURL)
	}
	var data struct {
		Session string `json:"session"`
		Frames  []struct {
			ID, Origin string
		} `json:"frames"`
	}
	if err := json.Unmarshal([]byte(d[1]), &data); err != nil {
		t.Fatalf("host data %s: %v", d[1], err)
	}
	if len(data.Frames) == 0 || data.Frames[0].ID != m[1] {
		t.Fatalf("host data frames %+v, iframe %s", data.Frames, m[1])
	}
	if !strings.Contains(string(r.Body), `src="/_static/host.js"`) {
		t.Error("page does not load host.js")
	}
	return hostPage{frameID: m[1], src: html.UnescapeString(m[2]), session: data.Session}
}

func TestProductPagesAndHost(t *testing.T) {
	t.Parallel()
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", "")
	ta := newTestApp(t, f, "pages")
	app := ta.install(site)
	bob := site.Users[1].AccountID

	home := do(t, "GET", f.URL()+"/", "", nil)
	if home.Status != http.StatusOK || !strings.Contains(string(home.Body), site.BaseURL) {
		t.Errorf("home: %d", home.Status)
	}
	if r := do(t, "GET", site.BaseURL+"/", "", nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), "DEMO-1") {
		t.Errorf("site page: %d", r.Status)
	}

	p := loadPage(t, f.IssuePageURL(site, "DEMO-1")+"?as="+url.QueryEscape(bob)+"&loc=de-DE")
	u, _ := url.Parse(p.src)
	if u.Path != "/app/panel" || u.Query().Get("issueKey") != "DEMO-1" || u.Query().Get("loc") != "de-DE" {
		t.Errorf("iframe src = %s", p.src)
	}
	if c := verifyFrameToken(t, u.Query().Get("jwt"), app.SharedSecret); c["sub"] != bob {
		t.Errorf("iframe sub = %v, want bob", c["sub"])
	}

	host := func(path, origin string, body any) response {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", f.URL()+"/_host/"+p.session+path, strings.NewReader(string(b)))
		req.Header.Set("Content-Type", "application/json")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out response
		out.Status = resp.StatusCode
		out.Body, _ = readAll(resp)
		return out
	}

	tok := host("/token", f.URL(), map[string]any{"frame": p.frameID})
	if tok.Status != http.StatusOK {
		t.Fatalf("host token: %d %s", tok.Status, tok.Body)
	}
	c := verifyFrameToken(t, tok.json(t)["token"].(string), app.SharedSecret)
	if c["qsh"] != "context-qsh" || c["sub"] != bob || c["iss"] != site.ClientKey {
		t.Errorf("context token = %v", c)
	}

	req := host("/request", f.URL(), map[string]any{"frame": p.frameID, "url": "/rest/api/3/myself"})
	if req.Status != http.StatusOK {
		t.Fatalf("AP.request: %d %s", req.Status, req.Body)
	}
	rr := req.json(t)
	if rr["status"] != float64(200) || !strings.Contains(rr["responseText"].(string), bob) {
		t.Errorf("AP.request result = %v", rr)
	}
	put := host("/request", "", map[string]any{"frame": p.frameID, "url": "/rest/api/3/issue/DEMO-1", "type": "PUT",
		"data": `{"fields":{"summary":"from the browser"}}`, "contentType": "application/json"})
	if put.json(t)["status"] != float64(204) {
		t.Errorf("AP.request PUT = %s", put.Body)
	}
	if is, _ := f.GetIssue(site, "DEMO-1"); is.Summary != "from the browser" {
		t.Errorf("summary = %q", is.Summary)
	}

	if r := host("/token", "http://evil.example", map[string]any{"frame": p.frameID}); r.Status != http.StatusForbidden {
		t.Errorf("foreign origin: %d", r.Status)
	}
	if r := host("/token", "", map[string]any{"frame": "frame-unknown"}); r.Status != http.StatusNotFound {
		t.Errorf("unknown frame: %d", r.Status)
	}
	if r := host("/request", "", map[string]any{"frame": p.frameID, "url": "https://elsewhere.example/rest/x"}); r.Status != http.StatusBadRequest {
		t.Errorf("absolute AP.request url: %d", r.Status)
	}
	if r := do(t, "POST", f.URL()+"/_host/nope/token", "", map[string]any{"frame": p.frameID}); r.Status != http.StatusUnauthorized {
		t.Errorf("unknown session: %d", r.Status)
	}

	mp := loadPage(t, f.ModulePageURL(site, "pages", "main-page"))
	if mu, _ := url.Parse(mp.src); mu.Path != "/app/page" {
		t.Errorf("general page iframe = %s", mp.src)
	}
	if r := do(t, "GET", f.ModulePageURL(site, "pages", "nope"), "", nil); r.Status != http.StatusNotFound {
		t.Errorf("unknown module page: %d", r.Status)
	}
	if r := do(t, "GET", f.IssuePageURL(site, "NOPE-1"), "", nil); r.Status != http.StatusNotFound {
		t.Errorf("unknown issue page: %d", r.Status)
	}

	js := do(t, "GET", f.URL()+"/atlassian-connect/all.js", "", nil)
	if js.Status != http.StatusOK || !strings.Contains(string(js.Body), "getToken") ||
		!strings.HasPrefix(js.Header.Get("Content-Type"), "application/javascript") {
		t.Errorf("all.js: %d %s", js.Status, js.Header.Get("Content-Type"))
	}
}

// TestPageTheme: ?theme= picks the colour mode of a product page, light by
// default; the page's html element names it and the host data hands it to
// the app frames. A theme the product does not have is refused with 400
// and a page saying which ones it has.
func TestPageTheme(t *testing.T) {
	t.Parallel()
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", "")
	newTestApp(t, f, "themes").install(site)

	for _, tc := range []struct{ query, want string }{
		{"", "light"}, {"?theme=light", "light"}, {"?theme=dark", "dark"},
	} {
		r := do(t, "GET", f.IssuePageURL(site, "DEMO-1")+tc.query, "", nil)
		if r.Status != http.StatusOK {
			t.Fatalf("issue page%s: %d %s", tc.query, r.Status, r.Body)
		}
		body := string(r.Body)
		if !strings.Contains(body, `<html lang="en" data-color-mode="`+tc.want+`" data-theme="dark:dark light:light spacing:spacing">`) {
			t.Errorf("issue page%s: html element does not name the %s theme", tc.query, tc.want)
		}
		d := hostDataRE.FindStringSubmatch(body)
		if d == nil {
			t.Fatalf("issue page%s: no host data", tc.query)
		}
		var data struct {
			Theme map[string]string `json:"theme"`
		}
		if err := json.Unmarshal([]byte(d[1]), &data); err != nil {
			t.Fatal(err)
		}
		if data.Theme["colorMode"] != tc.want || data.Theme["dark"] != "dark" || data.Theme["light"] != "light" {
			t.Errorf("issue page%s: host data theme = %v, want colorMode %s", tc.query, data.Theme, tc.want)
		}
		other := map[string]string{"light": "dark", "dark": "light"}[tc.want]
		if !strings.Contains(body, "theme="+other+`">`) {
			t.Errorf("issue page%s: no link to the %s theme", tc.query, other)
		}
	}
	if r := do(t, "GET", f.URL()+"/?theme=dark", "", nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `data-color-mode="dark"`) {
		t.Errorf("home page in the dark theme: %d", r.Status)
	}

	for _, pageURL := range []string{
		f.IssuePageURL(site, "DEMO-1") + "?theme=purple",
		site.BaseURL + "/?theme=Dark",
		f.URL() + "/?theme=%3Cb%3E",
	} {
		r := do(t, "GET", pageURL, "", nil)
		if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "use theme=light or theme=dark") {
			t.Errorf("%s: %d %s, want 400 naming the themes", pageURL, r.Status, r.Body)
		}
		if strings.Contains(string(r.Body), "<b>") || strings.Contains(string(r.Body), "tenon-host-data") {
			t.Errorf("%s: the refusal shows the raw parameter or opens a host session", pageURL)
		}
	}
}

// BenchmarkSignedModuleURL is what a load generator that signs each
// module URL when it sends it spends per request (docs/LOAD_TESTING.md).
func BenchmarkSignedModuleURL(b *testing.B) {
	var base string
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/atlassian-connect.json" {
			w.WriteHeader(http.StatusNoContent) // lifecycle callbacks
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"key": "bench", "name": "Bench", "baseUrl": base, "authentication": map[string]any{"type": "jwt"},
			"lifecycle":     map[string]any{"installed": "/installed", "enabled": "/enabled"},
			"apiMigrations": map[string]any{"signed-install": true, "context-qsh": true},
			"modules": map[string]any{"webPanels": []any{map[string]any{"key": "issue-panel", "name": map[string]any{"value": "Panel"},
				"url": "/panel?issueKey={issue.key}&projectKey={project.key}", "location": "atl.jira.view.issue.right.context"}}},
		})
	}))
	defer app.Close()
	base = app.URL
	f := fakeatlassian.New(fakeatlassian.Options{})
	if err := f.Start("127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	site, err := f.AddSite(fakeatlassian.SiteOptions{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.Install(context.Background(), site, app.URL+"/atlassian-connect.json"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.SignedModuleURL(site, "bench", "issue-panel", fakeatlassian.FrameOptions{IssueKey: "DEMO-1"}); err != nil {
			b.Fatal(err)
		}
	}
}
