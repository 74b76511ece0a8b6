package fakeatlassian_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tenon-dev/tenon/fakeatlassian"
)

// remoteCall is one request a Forge remote received.
type remoteCall struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte
}

// forgeRemote is a stand-in Forge remote backend that records calls and
// answers with queued statuses (then 200 {"ok":true}).
type forgeRemote struct {
	srv     *httptest.Server
	mu      sync.Mutex
	calls   []remoteCall
	answers []int
}

func newForgeRemote(t *testing.T) *forgeRemote {
	fr := &forgeRemote{}
	fr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fr.mu.Lock()
		fr.calls = append(fr.calls, remoteCall{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: body})
		status := http.StatusOK
		if len(fr.answers) > 0 {
			status, fr.answers = fr.answers[0], fr.answers[1:]
		}
		fr.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(fr.srv.Close)
	return fr
}

func (fr *forgeRemote) received() []remoteCall {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	return append([]remoteCall(nil), fr.calls...)
}

// verifyFIT checks a FIT the way a Forge remote must, with its own code:
// RS256 only, key by kid from the fake's JWKS, iss and aud.
func verifyFIT(t *testing.T, f *fakeatlassian.Fake, token, appID string) jwt.MapClaims {
	t.Helper()
	resp, err := http.Get(f.ForgeJWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct{ Kty, Kid, Use, Alg, N, E string } `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	keys := map[string]*rsa.PublicKey{}
	for _, k := range set.Keys {
		n, _ := base64.RawURLEncoding.DecodeString(k.N)
		e, _ := base64.RawURLEncoding.DecodeString(k.E)
		if k.Kty != "RSA" || k.Alg != "RS256" || k.Use != "sig" {
			t.Errorf("JWKS key %s: kty %s alg %s use %s", k.Kid, k.Kty, k.Alg, k.Use)
		}
		keys[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	claims := jwt.MapClaims{}
	_, err = jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer("forge/invocation-token"), jwt.WithAudience(appID),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
	).ParseWithClaims(token, claims, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		if k := keys[kid]; k != nil {
			return k, nil
		}
		return nil, errors.New("unknown kid")
	})
	if err != nil {
		t.Fatalf("the FIT does not verify against the fake's JWKS: %v", err)
	}
	return claims
}

func claimPath(c map[string]any, path ...string) any {
	var v any = c
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func TestForgeInstallations(t *testing.T) {
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", fakeatlassian.ProductJira)
	if _, err := f.InstallForge(site, fakeatlassian.ForgeInstallOptions{}); !errors.Is(err, fakeatlassian.ErrInvalid) {
		t.Errorf("install without a remote: %v", err)
	}
	if _, err := f.InstallForge(site, fakeatlassian.ForgeInstallOptions{RemoteBaseURL: "https://r.example", Environment: "TEST"}); !errors.Is(err, fakeatlassian.ErrInvalid) {
		t.Errorf("unknown environment: %v", err)
	}
	first, err := f.InstallForge(site, fakeatlassian.ForgeInstallOptions{RemoteBaseURL: "https://remote.example/app/"})
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case !strings.HasPrefix(first.InstallationID, "ari:cloud:ecosystem::installation/"):
		t.Errorf("installation id %q", first.InstallationID)
	case first.AppID != f.ForgeAppID() || first.CloudID != site.CloudID || first.EnvironmentType != fakeatlassian.ForgeProduction:
		t.Errorf("installation %+v", first)
	case first.APIBaseURL != f.URL()+"/ex/jira/"+site.CloudID || first.RemoteBaseURL != "https://remote.example/app":
		t.Errorf("URLs %q %q", first.APIBaseURL, first.RemoteBaseURL)
	}
	// An upgrade keeps the installation id; a reinstall does not.
	again, _ := f.InstallForge(site, fakeatlassian.ForgeInstallOptions{RemoteBaseURL: "https://remote.example/v2"})
	if again.InstallationID != first.InstallationID || again.RemoteBaseURL != "https://remote.example/v2" {
		t.Errorf("upgrade: %+v", again)
	}
	if err := f.UninstallForge(site, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ForgeInstallationOf(site, ""); !errors.Is(err, fakeatlassian.ErrNotFound) {
		t.Errorf("uninstalled app: %v", err)
	}
	second, _ := f.InstallForge(site, fakeatlassian.ForgeInstallOptions{RemoteBaseURL: "https://remote.example"})
	if second.InstallationID == first.InstallationID {
		t.Error("a reinstall kept the installation id")
	}
	list, err := f.ForgeInstallations(site)
	if err != nil || len(list) != 2 {
		t.Fatalf("installations %v, %v", list, err)
	}
	installed := 0
	for _, in := range list {
		if in.Installed {
			installed++
		}
	}
	if installed != 1 {
		t.Errorf("%d live installations, want 1", installed)
	}
}

func TestForgeInvokeRemote(t *testing.T) {
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", fakeatlassian.ProductJira)
	remote := newForgeRemote(t)
	inst, err := f.InstallForge(site, fakeatlassian.ForgeInstallOptions{RemoteBaseURL: remote.srv.URL + "/forge"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.InvokeRemote(context.Background(), site, fakeatlassian.ForgeInvocation{
		Method: http.MethodPost, Path: "/checklists/DEMO-1/items?x=1", Body: json.RawMessage(`{"text":"hi"}`),
		IssueKey: "DEMO-1", ModuleKey: "checklist-panel", Header: http.Header{"X-Custom": {"yes"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || string(resp.Body) != `{"ok":true}` {
		t.Errorf("answer %d %s", resp.Status, resp.Body)
	}
	calls := remote.received()
	if len(calls) != 1 {
		t.Fatalf("%d calls", len(calls))
	}
	c := calls[0]
	if c.Method != "POST" || c.Path != "/forge/checklists/DEMO-1/items" || c.Query != "x=1" || string(c.Body) != `{"text":"hi"}` {
		t.Errorf("call %s %s?%s %s", c.Method, c.Path, c.Query, c.Body)
	}
	if c.Header.Get("X-Custom") != "yes" || c.Header.Get("X-B3-Traceid") == "" || c.Header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", c.Header)
	}
	fit, ok := strings.CutPrefix(c.Header.Get("Authorization"), "Bearer ")
	if !ok {
		t.Fatal("no bearer FIT")
	}
	claims := verifyFIT(t, f, fit, inst.AppID)
	exp, _ := claims.GetExpirationTime()
	iat, _ := claims.GetIssuedAt()
	switch {
	case exp.Sub(iat.Time) != 25*time.Second:
		t.Errorf("FIT lifetime %v", exp.Sub(iat.Time))
	case claimPath(claims, "app", "installationId") != inst.InstallationID:
		t.Errorf("installationId %v", claimPath(claims, "app", "installationId"))
	case claimPath(claims, "app", "apiBaseUrl") != inst.APIBaseURL:
		t.Errorf("apiBaseUrl %v", claimPath(claims, "app", "apiBaseUrl"))
	case claimPath(claims, "context", "cloudId") != site.CloudID || claimPath(claims, "context", "extension", "issue", "key") != "DEMO-1":
		t.Errorf("context %v", claims["context"])
	case claims["principal"] != site.DefaultAccountID || claims["jti"] == "":
		t.Errorf("principal %v jti %v", claims["principal"], claims["jti"])
	case claimPath(claims, "app", "module", "key") != "checklist-panel" || claims["app"].(map[string]any)["license"] != nil:
		t.Errorf("app %v", claims["app"])
	}
	system, user := c.Header.Get("X-Forge-Oauth-System"), c.Header.Get("X-Forge-Oauth-User")
	if system == "" || user == "" || system == user {
		t.Fatalf("OAuth tokens: system %q user %q", system, user)
	}
	// The call is recorded, tokens not.
	var found bool
	for _, call := range f.Calls() {
		if call.Kind == fakeatlassian.KindForge && call.Event == "invoke" && call.Status == 200 {
			found = true
		}
		if strings.Contains(call.URL, fit) {
			t.Error("a FIT reached the call record")
		}
	}
	if !found {
		t.Error("the invocation is not in the call record")
	}
	// Without tokens, as an endpoint that asks for none.
	if _, err := f.InvokeRemote(context.Background(), site, fakeatlassian.ForgeInvocation{Path: "/x", NoSystemToken: true, NoUserToken: true}); err != nil {
		t.Fatal(err)
	}
	last := remote.received()[1]
	if last.Header.Get("X-Forge-Oauth-System") != "" || last.Header.Get("X-Forge-Oauth-User") != "" || last.Method != "GET" {
		t.Errorf("tokens sent when asked not to: %v", last.Header)
	}
	if _, err := f.InvokeRemote(context.Background(), site, fakeatlassian.ForgeInvocation{Path: "/x", IssueKey: "NOPE-1"}); !errors.Is(err, fakeatlassian.ErrNotFound) {
		t.Errorf("unknown issue: %v", err)
	}
	if _, err := f.InvokeRemote(context.Background(), site, fakeatlassian.ForgeInvocation{Path: "x"}); !errors.Is(err, fakeatlassian.ErrInvalid) {
		t.Errorf("relative path: %v", err)
	}
}

func TestForgeRESTAcceptsForgeTokens(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	f := newFake(t, fakeatlassian.Options{Now: clock})
	site := addSite(t, f, "acme", fakeatlassian.ProductJira)
	other := addSite(t, f, "other", fakeatlassian.ProductJira)
	if _, err := f.InstallForge(site, fakeatlassian.ForgeInstallOptions{RemoteBaseURL: "https://remote.example"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.InstallForge(other, fakeatlassian.ForgeInstallOptions{RemoteBaseURL: "https://remote.example"}); err != nil {
		t.Fatal(err)
	}
	bob := site.Users[1].AccountID
	system, user, err := f.ForgeTokens(site, "", bob)
	if err != nil {
		t.Fatal(err)
	}
	get := func(s *fakeatlassian.Site, path, token string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, f.URL()+"/ex/jira/"+s.CloudID+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if st, me := get(site, "/rest/api/3/myself", user); st != 200 || me["accountId"] != bob {
		t.Errorf("as the user: %d %v", st, me)
	}
	if st, me := get(site, "/rest/api/3/myself", system); st != 200 || me["accountId"] == bob || me["accountId"] == "" {
		t.Errorf("as the app: %d %v", st, me)
	}
	if st, issue := get(site, "/rest/api/3/issue/DEMO-1?fields=summary", system); st != 200 || issue["key"] != "DEMO-1" {
		t.Errorf("issue: %d %v", st, issue)
	}
	refused := []struct {
		name  string
		site  *fakeatlassian.Site
		path  string
		token string
	}{
		{"no token", site, "/rest/api/3/myself", ""},
		{"made-up token", site, "/rest/api/3/myself", "eyJhbGciOiJIUzI1NiJ9.e30.c2ln"},
		{"another site's token", other, "/rest/api/3/myself", user},
	}
	for _, r := range refused {
		if st, _ := get(r.site, r.path, r.token); st != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", r.name, st)
		}
	}
	if st, _ := get(site, "/wrong/api", system); st != http.StatusNotFound {
		t.Errorf("not under /rest: %d", st)
	}
	// Knobs act on this API too, so clients' retries can be tested.
	f.FailNext(1, http.StatusServiceUnavailable)
	if st, _ := get(site, "/rest/api/3/myself", system); st != http.StatusServiceUnavailable {
		t.Errorf("knob: %d", st)
	}
	// User tokens live an hour, system tokens two.
	mu.Lock()
	now = now.Add(61 * time.Minute)
	mu.Unlock()
	if st, _ := get(site, "/rest/api/3/myself", user); st != http.StatusUnauthorized {
		t.Errorf("expired user token: %d", st)
	}
	if st, _ := get(site, "/rest/api/3/myself", system); st != 200 {
		t.Errorf("system token after an hour: %d", st)
	}
	// Uninstalling revokes every token.
	if err := f.UninstallForge(site, ""); err != nil {
		t.Fatal(err)
	}
	if st, _ := get(site, "/rest/api/3/myself", system); st != http.StatusUnauthorized {
		t.Errorf("token of an uninstalled app: %d", st)
	}
}

func TestForgeEventRetries(t *testing.T) {
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", fakeatlassian.ProductJira)
	remote := newForgeRemote(t)
	remote.answers = []int{500, 401}
	inst, _ := f.InstallForge(site, fakeatlassian.ForgeInstallOptions{RemoteBaseURL: remote.srv.URL})
	resp, err := f.SendForgeEvent(context.Background(), site, fakeatlassian.ForgeEventOptions{
		Path: "/events/issue", EventType: "avi:jira:deleted:issue",
		Payload: map[string]any{"issue": map[string]any{"key": "DEMO-1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 500 || resp.Attempts != 1 {
		t.Errorf("first answer %d (attempt %d)", resp.Status, resp.Attempts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.WaitWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	calls := remote.received()
	if len(calls) != 3 {
		t.Fatalf("%d deliveries, want 3 (two failures, then accepted)", len(calls))
	}
	jtis := map[string]bool{}
	for i, c := range calls {
		fit := strings.TrimPrefix(c.Header.Get("Authorization"), "Bearer ")
		claims := verifyFIT(t, f, fit, inst.AppID)
		jtis[claims["jti"].(string)] = true
		if claims["principal"] != nil || claims["context"] != nil {
			t.Errorf("event FIT with a principal or context: %v", claims)
		}
		if c.Header.Get("X-Forge-Oauth-System") == "" || c.Header.Get("X-Forge-Oauth-User") != "" {
			t.Errorf("delivery %d tokens: %v", i, c.Header)
		}
		var body struct {
			Payload struct {
				EventType    string         `json:"eventType"`
				Issue        map[string]any `json:"issue"`
				Context      map[string]any `json:"context"`
				RetryContext *struct {
					RetryCount  int    `json:"retryCount"`
					RetryReason string `json:"retryReason"`
				} `json:"retryContext"`
			} `json:"payload"`
		}
		if err := json.Unmarshal(c.Body, &body); err != nil {
			t.Fatal(err)
		}
		p := body.Payload
		if p.EventType != "avi:jira:deleted:issue" || p.Issue["key"] != "DEMO-1" || p.Context["cloudId"] != site.CloudID {
			t.Errorf("delivery %d payload %s", i, c.Body)
		}
		switch {
		case i == 0 && p.RetryContext != nil:
			t.Errorf("first delivery has a retryContext")
		case i == 1 && (p.RetryContext == nil || p.RetryContext.RetryCount != 1 || p.RetryContext.RetryReason != "INVALID_REMOTE_INVOCATION_ERROR"):
			t.Errorf("second delivery retryContext %+v", p.RetryContext)
		case i == 2 && (p.RetryContext == nil || p.RetryContext.RetryCount != 2 || p.RetryContext.RetryReason != "INVALID_FORGE_INVOCATION_TOKEN"):
			t.Errorf("third delivery retryContext %+v", p.RetryContext)
		}
	}
	if len(jtis) != 3 {
		t.Errorf("redeliveries reused a token: %d distinct jti", len(jtis))
	}
}

func TestForgeTrigger(t *testing.T) {
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", fakeatlassian.ProductJira)
	remote := newForgeRemote(t)
	inst, _ := f.InstallForge(site, fakeatlassian.ForgeInstallOptions{RemoteBaseURL: remote.srv.URL, Environment: fakeatlassian.ForgeDevelopment})
	resp, err := f.RunForgeTrigger(context.Background(), site, fakeatlassian.ForgeTriggerOptions{Path: "/triggers/hourly", ModuleKey: "hourly"})
	if err != nil || resp.Status != 200 {
		t.Fatalf("trigger: %v %v", resp, err)
	}
	c := remote.received()[0]
	claims := verifyFIT(t, f, strings.TrimPrefix(c.Header.Get("Authorization"), "Bearer "), inst.AppID)
	if claimPath(claims, "app", "module", "key") != "hourly" || claimPath(claims, "app", "environment", "type") != "DEVELOPMENT" {
		t.Errorf("trigger FIT app %v", claims["app"])
	}
	if !bytes.Contains(c.Body, []byte(`"moduleKey":"hourly"`)) || bytes.Contains(c.Body, []byte("eventType")) {
		t.Errorf("trigger body %s", c.Body)
	}
	// Nothing is delivered for an app that is not installed.
	if _, err := f.RunForgeTrigger(context.Background(), site, fakeatlassian.ForgeTriggerOptions{AppID: "ari:cloud:ecosystem::app/other", Path: "/x"}); !errors.Is(err, fakeatlassian.ErrNotFound) {
		t.Errorf("trigger of an app not installed: %v", err)
	}
}

func TestForgeKeyRotation(t *testing.T) {
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", fakeatlassian.ProductJira)
	f.InstallForge(site, fakeatlassian.ForgeInstallOptions{RemoteBaseURL: "https://remote.example"})
	old, err := f.ForgeFIT(site, fakeatlassian.FITOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kid := f.RotateForgeKey()
	fresh, _ := f.ForgeFIT(site, fakeatlassian.FITOptions{NoPrincipal: true, NoContext: true})
	tok, _, _ := jwt.NewParser().ParseUnverified(fresh, jwt.MapClaims{})
	if tok.Header["kid"] != kid {
		t.Errorf("the new key does not sign: kid %v", tok.Header["kid"])
	}
	// Both verify: the old key stays published.
	verifyFIT(t, f, old, f.ForgeAppID())
	c := verifyFIT(t, f, fresh, f.ForgeAppID())
	if c["principal"] != nil || c["context"] != nil {
		t.Errorf("claims %v", c)
	}
}

func TestForgeControlAPI(t *testing.T) {
	f := newFake(t, fakeatlassian.Options{})
	addSite(t, f, "acme", fakeatlassian.ProductConfluence)
	remote := newForgeRemote(t)
	post := func(path, body string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Post(f.URL()+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	resp, err := http.Get(f.URL() + "/_fake/forge")
	if err != nil {
		t.Fatal(err)
	}
	var info map[string]string
	json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if info["appId"] != f.ForgeAppID() || info["jwksUrl"] != f.ForgeJWKSURL() {
		t.Errorf("info %v", info)
	}
	st, inst := post("/_fake/sites/acme/forge", `{"remoteBaseUrl":"`+remote.srv.URL+`","license":true}`)
	if st != http.StatusCreated || inst["apiBaseUrl"] == nil {
		t.Fatalf("install: %d %v", st, inst)
	}
	st, out := post("/_fake/sites/acme/forge/invoke", `{"method":"PUT","path":"/pages/1","body":{"a":1}}`)
	if st != 200 || out["status"] != float64(200) || claimPath(out, "body", "ok") != true {
		t.Errorf("invoke: %d %v", st, out)
	}
	fit := strings.TrimPrefix(remote.received()[0].Header.Get("Authorization"), "Bearer ")
	claims := verifyFIT(t, f, fit, f.ForgeAppID())
	if claimPath(claims, "app", "license", "isActive") != true || claimPath(claims, "app", "module", "type") != "confluence:contentBylineItem" {
		t.Errorf("licensed Confluence FIT: %v", claims["app"])
	}
	st, out = post("/_fake/sites/acme/forge/events", `{"path":"/e","eventType":"avi:confluence:created:page","payload":{"content":{"id":"1"}}}`)
	if st != 200 || out["status"] != float64(200) {
		t.Errorf("event: %d %v", st, out)
	}
	st, out = post("/_fake/sites/acme/forge/triggers", `{"path":"/t"}`)
	if st != 200 || out["status"] != float64(200) {
		t.Errorf("trigger: %d %v", st, out)
	}
	st, out = post("/_fake/sites/acme/forge/fit", `{}`)
	if st != 200 || out["token"] == "" || out["systemToken"] == "" || out["userToken"] == "" {
		t.Errorf("fit: %d %v", st, out)
	}
	st, _ = post("/_fake/sites/acme/forge/invoke", `{"path":"relative"}`)
	if st != http.StatusBadRequest {
		t.Errorf("bad invoke: %d", st)
	}
	st, _ = post("/_fake/sites/nope/forge/invoke", `{"path":"/x"}`)
	if st != http.StatusNotFound {
		t.Errorf("unknown site: %d", st)
	}
	req, _ := http.NewRequest(http.MethodDelete, f.URL()+"/_fake/sites/acme/forge", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("uninstall: %v %v", resp, err)
	}
	resp.Body.Close()
	if st, _ := post("/_fake/sites/acme/forge/invoke", `{"path":"/x"}`); st != http.StatusNotFound {
		t.Errorf("invoke after uninstall: %d", st)
	}
}
