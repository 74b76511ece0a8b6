package hostclient

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/tenon-dev/tenon/connectjwt"
	"github.com/tenon-dev/tenon/qsh"
)

// tenantTransport authorizes requests for one tenant and hands them to the
// Client's Resilience. It is the Transport of Tenant.HTTPClient, so Do and
// any client library, Connect and Forge, go through the same checks.
type tenantTransport struct{ t *Tenant }

// RoundTrip implements http.RoundTripper.
func (tt *tenantTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t := tt.t
	fail := func(err error) (*http.Response, error) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	if t.err != nil {
		return fail(t.err)
	}
	fullPath, rawQuery, err := t.checkRequest(req)
	if err != nil {
		return fail(err)
	}
	ctx := req.Context()
	if _, ok := ctx.Value(targetKey{}).(Target); !ok {
		ctx = WithTarget(ctx, Target{Site: t.site, Product: t.product})
	}
	r := req.Clone(ctx)
	r.Header.Del("Authorization")
	// A redirect the HTTP client follows (req.Response is the 3xx) is
	// never signed: the credential was for the first request alone.
	redirected := req.Response != nil
	if !redirected {
		auth, err := t.sign.authorization(ctx, r.Method, fullPath, rawQuery)
		if err != nil {
			return fail(err)
		}
		r.Header.Set("Authorization", auth)
	}
	if r.Header.Get("User-Agent") == "" {
		r.Header.Set("User-Agent", t.c.userAgent)
	}
	resp, err := t.c.rt.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusUnauthorized && !redirected {
		// The product no longer takes the token (revoked, or the app was
		// reinstalled): a cached one is dropped, so the next call gets a
		// new one.
		t.sign.refused(ctx)
	}
	return resp, err
}

// checkRequest refuses, with tenon.EINVALID, a request that is not for
// this tenant: another scheme or host, a path outside the base path, a
// path checkTarget refuses, a GET with a body. It returns the path as it
// goes on the wire and the raw query, which the qsh covers.
func (t *Tenant) checkRequest(req *http.Request) (fullPath, rawQuery string, err error) {
	u := req.URL
	if u == nil || u.Opaque != "" || u.User != nil {
		return "", "", refusal("the URL is opaque or has user info", "a request for "+t.label())
	}
	if u.Scheme != t.origin.Scheme || !strings.EqualFold(u.Host, t.origin.Host) ||
		(req.Host != "" && !strings.EqualFold(req.Host, t.origin.Host)) {
		// The host is safe to name; the path and query may not be.
		return "", "", refusal("it is not for the site's own origin",
			fmt.Sprintf("to send the credentials of %s to %s://%s", t.label(), u.Scheme, u.Host))
	}
	if !validMethod(req.Method) {
		return "", "", refusal("the method is not an HTTP method", fmt.Sprintf("method %q", req.Method))
	}
	if (req.Method == http.MethodGet || req.Method == http.MethodHead) && req.Body != nil && req.Body != http.NoBody {
		return "", "", refusal("a "+req.Method+" request takes no body", req.Method+" "+u.EscapedPath())
	}
	fullPath = u.EscapedPath()
	rel, ok := strings.CutPrefix(fullPath, t.basePath)
	if !ok || (rel != "" && rel[0] != '/') {
		return "", "", refusal("the path is outside the base path "+strconv.Quote(t.basePath), fmt.Sprintf("path %q for %s", fullPath, t.label()))
	}
	if rel == "" {
		rel = "/"
	}
	target := rel
	if u.RawQuery != "" {
		target += "?" + u.RawQuery
	}
	if _, _, err := checkTarget(target); err != nil {
		return "", "", err
	}
	return fullPath, u.RawQuery, nil
}

// connectJWT signs as the Connect app: an HS256 JWT with the shared
// secret whose qsh covers the one request.
type connectJWT struct{ t *Tenant }

func (connectJWT) refused(context.Context) {}

func (s connectJWT) authorization(_ context.Context, method, fullPath, rawQuery string) (string, error) {
	t := s.t
	now := t.c.now()
	token, err := connectjwt.SignHS256(connectjwt.Claims{
		Issuer:    t.c.appKey,
		IssuedAt:  now.Unix(),
		ExpiresAt: now.Add(TokenLifetime).Unix(),
		QSH:       qsh.Hash(method, fullPath, rawQuery, t.basePath),
	}, t.secret)
	if err != nil {
		return "", refused("signing %s for %s: %v", method, t.label(), err)
	}
	return "JWT " + token, nil
}
