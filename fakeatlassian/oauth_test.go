package fakeatlassian_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tenon-dev/tenon/fakeatlassian"
)

func assertion(t *testing.T, f *fakeatlassian.Fake, app fakeatlassian.App, site *fakeatlassian.Site, account string, mutate func(jwt.MapClaims)) string {
	t.Helper()
	now := time.Now()
	c := jwt.MapClaims{
		"iss": "urn:atlassian:connect:clientid:" + app.OAuthClientID,
		"sub": "urn:atlassian:connect:useraccountid:" + account,
		"tnt": site.BaseURL,
		"aud": f.AuthServerURL(),
		"iat": now.Unix(),
		"exp": now.Add(60 * time.Second).Unix(),
	}
	if mutate != nil {
		mutate(c)
	}
	return mustSign(t, jwt.SigningMethodHS256, []byte(app.SharedSecret), c)
}

func tokenRequest(t *testing.T, f *fakeatlassian.Fake, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(f.AuthServerURL()+"/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := response{Status: resp.StatusCode, Body: b}
	return resp.StatusCode, r.json(t)
}

func grant(a string, scope string) url.Values {
	v := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {a}}
	if scope != "" {
		v.Set("scope", scope)
	}
	return v
}

func TestOAuthJWTBearer(t *testing.T) {
	t.Parallel()
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", "")
	other := addSite(t, f, "other", "")
	ta := newTestApp(t, f, "impersonator")
	app := ta.install(site)
	user := site.Users[1].AccountID

	status, tok := tokenRequest(t, f, grant(assertion(t, f, app, site, user, nil), ""))
	if status != http.StatusOK || tok["token_type"] != "Bearer" || tok["expires_in"].(float64) <= 0 {
		t.Fatalf("token: %d %v", status, tok)
	}
	bearer := "Bearer " + tok["access_token"].(string)

	me := do(t, "GET", site.BaseURL+"/rest/api/3/myself", bearer, nil)
	if me.Status != http.StatusOK || me.json(t)["accountId"] != user {
		t.Fatalf("myself as user: %d %s", me.Status, me.Body)
	}
	created := do(t, "POST", site.BaseURL+"/rest/api/3/issue", bearer, map[string]any{"fields": map[string]any{
		"project": map[string]any{"key": "DEMO"}, "summary": "by a user"}})
	if created.Status != http.StatusCreated {
		t.Fatalf("create as user: %d %s", created.Status, created.Body)
	}
	is, _ := f.GetIssue(site, created.json(t)["key"].(string))
	if is.Reporter != user {
		t.Errorf("reporter = %s, want %s", is.Reporter, user)
	}
	if r := do(t, "GET", other.BaseURL+"/rest/api/3/myself", bearer, nil); r.Status != http.StatusUnauthorized {
		t.Errorf("token on another site: %d", r.Status)
	}

	// A narrower scope is honoured.
	_, ro := tokenRequest(t, f, grant(assertion(t, f, app, site, user, nil), "READ"))
	roBearer := "Bearer " + ro["access_token"].(string)
	if r := do(t, "DELETE", site.BaseURL+"/rest/api/3/issue/DEMO-1", roBearer, nil); r.Status != http.StatusForbidden {
		t.Errorf("READ token deleting: %d", r.Status)
	}

	cases := []struct {
		name   string
		form   url.Values
		status int
		code   string
	}{
		{"wrong grant type", url.Values{"grant_type": {"client_credentials"}}, 400, "unsupported_grant_type"},
		{"no assertion", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}}, 400, "invalid_request"},
		{"wrong aud", grant(assertion(t, f, app, site, user, func(c jwt.MapClaims) { c["aud"] = "https://elsewhere" }), ""), 400, "invalid_grant"},
		{"wrong tnt", grant(assertion(t, f, app, site, user, func(c jwt.MapClaims) { c["tnt"] = other.BaseURL }), ""), 400, "invalid_grant"},
		{"too long", grant(assertion(t, f, app, site, user, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(time.Hour).Unix() }), ""), 400, "invalid_grant"},
		{"expired", grant(assertion(t, f, app, site, user, func(c jwt.MapClaims) {
			c["iat"] = time.Now().Add(-5 * time.Minute).Unix()
			c["exp"] = time.Now().Add(-4 * time.Minute).Unix()
		}), ""), 400, "invalid_grant"},
		{"no iat", grant(assertion(t, f, app, site, user, func(c jwt.MapClaims) { delete(c, "iat") }), ""), 400, "invalid_grant"},
		{"bad sub", grant(assertion(t, f, app, site, user, func(c jwt.MapClaims) { c["sub"] = user }), ""), 400, "invalid_grant"},
		{"unknown user", grant(assertion(t, f, app, site, "nobody", nil), ""), 400, "invalid_grant"},
		{"unknown client", grant(assertion(t, f, app, site, user, func(c jwt.MapClaims) { c["iss"] = "urn:atlassian:connect:clientid:nope" }), ""), 400, "invalid_grant"},
		{"wrong secret", grant(mustSign(t, jwt.SigningMethodHS256, []byte("wrong-secret-wrong-secret-wrong!"), jwt.MapClaims{
			"iss": "urn:atlassian:connect:clientid:" + app.OAuthClientID, "sub": "urn:atlassian:connect:useraccountid:" + user,
			"tnt": site.BaseURL, "aud": f.AuthServerURL(), "iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix()}), ""), 400, "invalid_grant"},
		{"scope beyond the app", grant(assertion(t, f, app, site, user, nil), "ADMIN"), 400, "invalid_scope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := tokenRequest(t, f, c.form)
			if status != c.status || body["error"] != c.code {
				t.Errorf("got %d %v, want %d %s", status, body, c.status, c.code)
			}
		})
	}

	// Uninstalling revokes the app's tokens.
	if err := f.Uninstall(context.Background(), site, "impersonator"); err != nil {
		t.Fatal(err)
	}
	if r := do(t, "GET", site.BaseURL+"/rest/api/3/myself", bearer, nil); r.Status != http.StatusUnauthorized {
		t.Errorf("token after uninstall: %d", r.Status)
	}
}

func TestOAuthNeedsActAsUser(t *testing.T) {
	t.Parallel()
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", "")
	ta := newTestApp(t, f, "plain")
	ta.setDescriptor("scopes", []string{"READ"})
	app := ta.install(site)
	status, body := tokenRequest(t, f, grant(assertion(t, f, app, site, site.DefaultAccountID, nil), ""))
	if status != http.StatusUnauthorized || body["error"] != "unauthorized_client" || !strings.Contains(body["error_description"].(string), "ACT_AS_USER") {
		t.Errorf("got %d %v", status, body)
	}
}

func TestOAuthTokenExpires(t *testing.T) {
	t.Parallel()
	clock := newClock()
	f := newFake(t, fakeatlassian.Options{Now: clock.Now})
	site := addSite(t, f, "acme", "")
	app := newTestApp(t, f, "clock").install(site)
	_, tok := tokenRequest(t, f, grant(assertion(t, f, app, site, site.DefaultAccountID, nil), ""))
	bearer := "Bearer " + tok["access_token"].(string)
	if r := do(t, "GET", site.BaseURL+"/rest/api/3/myself", bearer, nil); r.Status != http.StatusOK {
		t.Fatalf("fresh token: %d", r.Status)
	}
	clock.Advance(time.Duration(tok["expires_in"].(float64))*time.Second + time.Second)
	r := do(t, "GET", site.BaseURL+"/rest/api/3/myself", bearer, nil)
	if r.Status != http.StatusUnauthorized || !strings.Contains(string(r.Body), "expired") {
		t.Errorf("expired token: %d %s", r.Status, r.Body)
	}
}
