package e2e_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/connectjwt"
	"github.com/tenon-dev/tenon/fakeatlassian"
	"github.com/tenon-dev/tenon/hostclient"
	"github.com/tenon-dev/tenon/qsh"
)

// TestFakeRefusesBadAppTokens: the fake Jira checks the app's tokens as
// Atlassian does. Each case signs the same REST call the panel makes and
// spoils one thing; only the correct token may pass. The correct qsh is
// computed by tenon's qsh package and checked by the fake's own,
// separately written canonical request, so the passing case is an
// interoperability check too.
func TestFakeRefusesBadAppTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	site := e.addSite("acme", fakeatlassian.ProductJira)
	app := e.install(site)

	sitePath := strings.TrimPrefix(site.BaseURL, e.fake.URL()) // "/s/acme"
	const (
		relPath = "/rest/api/3/issue/" + issueKey
		query   = "fields=summary"
	)
	target := site.BaseURL + relPath + "?" + query
	now := time.Now()
	claims := func(mod func(*connectjwt.Claims)) connectjwt.Claims {
		c := connectjwt.Claims{
			Issuer:    e.appKey,
			IssuedAt:  now.Unix(),
			ExpiresAt: now.Add(3 * time.Minute).Unix(),
			QSH:       qsh.Hash(http.MethodGet, relPath, query, ""),
		}
		if mod != nil {
			mod(&c)
		}
		return c
	}

	cases := []struct {
		name   string
		claims connectjwt.Claims
		secret string
		want   int
	}{
		{"correct token", claims(nil), app.SharedSecret, http.StatusOK},
		{"qsh over the full path, site base path not stripped", claims(func(c *connectjwt.Claims) {
			c.QSH = qsh.Hash(http.MethodGet, sitePath+relPath, query, "")
		}), app.SharedSecret, http.StatusUnauthorized},
		{"qsh of another issue", claims(func(c *connectjwt.Claims) {
			c.QSH = qsh.Hash(http.MethodGet, "/rest/api/3/issue/DEMO-2", query, "")
		}), app.SharedSecret, http.StatusUnauthorized},
		{"qsh of another method", claims(func(c *connectjwt.Claims) {
			c.QSH = qsh.Hash(http.MethodPost, relPath, query, "")
		}), app.SharedSecret, http.StatusUnauthorized},
		{"qsh without the query", claims(func(c *connectjwt.Claims) {
			c.QSH = qsh.Hash(http.MethodGet, relPath, "", "")
		}), app.SharedSecret, http.StatusUnauthorized},
		{"context qsh", claims(func(c *connectjwt.Claims) { c.QSH = qsh.ContextQSH }), app.SharedSecret, http.StatusUnauthorized},
		{"no qsh", claims(func(c *connectjwt.Claims) { c.QSH = "" }), app.SharedSecret, http.StatusUnauthorized},
		{"wrong secret", claims(nil), app.SharedSecret + "x", http.StatusUnauthorized},
		{"expired", claims(func(c *connectjwt.Claims) {
			c.IssuedAt, c.ExpiresAt = now.Add(-10*time.Minute).Unix(), now.Add(-5*time.Minute).Unix()
		}), app.SharedSecret, http.StatusUnauthorized},
		{"issuer is another app", claims(func(c *connectjwt.Claims) { c.Issuer = "someone-else" }), app.SharedSecret, http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := e.withT(t)
			tok, err := connectjwt.SignHS256(tc.claims, []byte(tc.secret))
			if err != nil {
				t.Fatal(err)
			}
			r := e.do(http.MethodGet, target, http.Header{"Authorization": {"JWT " + tok}, "Accept": {"application/json"}}, nil)
			if r.status != tc.want {
				t.Fatalf("GET %s: %s, want %d", target, r, tc.want)
			}
			if tc.want == http.StatusOK && !strings.Contains(string(r.body), `"key":"`+issueKey+`"`) {
				t.Fatalf("the accepted call did not return %s: %s", issueKey, r.body)
			}
		})
	}

	// The app's own client, with the request changed on the way after it
	// was signed (as a rewriting proxy would): the token no longer matches
	// the request, and the fake refuses it.
	t.Run("hostclient request rewritten after signing", func(t *testing.T) {
		e := e.withT(t)
		in := e.tenant(site)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		var v any
		err := newHostClient(e, rewritePath("/"+issueKey, "/DEMO-2")).AsApp(in).GetJSON(ctx, relPath+"?"+query, &v)
		var apiErr *hostclient.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized || !isCode(err, tenon.EUNAUTHORIZED) {
			t.Fatalf("want a 401 from the fake, got %v", err)
		}
		// Unchanged, the same client's call passes: the refusal above is
		// the rewrite's doing.
		if err := newHostClient(e, nil).AsApp(in).GetJSON(ctx, relPath+"?"+query, &v); err != nil {
			t.Fatalf("the unchanged call: %v", err)
		}
	})
}

// newHostClient returns the app's client for calls to the product, with rt
// (when set) between it and the network.
func newHostClient(e *env, rt http.RoundTripper) *hostclient.Client {
	hc := &http.Client{Timeout: 15 * time.Second}
	if rt != nil {
		hc.Transport = rt
	}
	return hostclient.New(e.appKey, hostclient.Options{HTTPClient: hc})
}

// rewritePath returns a transport that replaces old with new in the path
// of every request it sends, leaving the Authorization header alone.
func rewritePath(old, new string) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		u := *r.URL
		u.Path = strings.Replace(u.Path, old, new, 1)
		u.RawPath = ""
		r.URL = &u
		return http.DefaultTransport.RoundTrip(r)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
