package hostclient

import (
	"context"
	"net/http"
	"strings"

	"github.com/tenon-dev/tenon/connectjwt"
	"github.com/tenon-dev/tenon/qsh"
)

// tenantTransport signs requests for one tenant and hands them to the
// Client's Resilience. It is the Transport of Tenant.HTTPClient, so Do and
// any client library go through the same checks.
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
		auth, err := t.authorization(ctx, r.Method, fullPath, rawQuery)
		if err != nil {
			return fail(err)
		}
		r.Header.Set("Authorization", auth)
	}
	if r.Header.Get("User-Agent") == "" {
		r.Header.Set("User-Agent", t.c.userAgent)
	}
	resp, err := t.c.rt.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusUnauthorized && t.user != nil && !redirected {
		// The product no longer takes the cached token (revoked, or the
		// app was reinstalled): the next call fetches a new one.
		t.c.users.forget(ctx, t.user.key)
	}
	return resp, err
}

// checkRequest refuses a request that is not for this tenant: another
// scheme or host, a path outside the base path, dot segments, a GET with
// a body. It returns the path as it goes on the wire and the raw query,
// which the qsh covers.
func (t *Tenant) checkRequest(req *http.Request) (fullPath, rawQuery string, err error) {
	u := req.URL
	if u == nil || u.Opaque != "" || u.User != nil {
		return "", "", refused("tenant %q: refusing a request with an opaque URL or user info", t.clientKey)
	}
	if u.Scheme != t.origin.Scheme || !strings.EqualFold(u.Host, t.origin.Host) ||
		(req.Host != "" && !strings.EqualFold(req.Host, t.origin.Host)) {
		// The host is safe to name; the path and query may not be.
		return "", "", refused("tenant %q: refusing to send its credentials to %s://%s, which is not the tenant's origin",
			t.clientKey, u.Scheme, u.Host)
	}
	if !validMethod(req.Method) {
		return "", "", refused("%q is not an HTTP method", req.Method)
	}
	if (req.Method == http.MethodGet || req.Method == http.MethodHead) && req.Body != nil && req.Body != http.NoBody {
		return "", "", refused("%s: a %s request takes no body", req.Method, req.Method)
	}
	fullPath = u.EscapedPath()
	rel, ok := strings.CutPrefix(fullPath, t.basePath)
	if !ok || (rel != "" && rel[0] != '/') {
		return "", "", refused("tenant %q: refusing a path outside the tenant's base path %q", t.clientKey, t.basePath)
	}
	if rel == "" {
		rel = "/"
	}
	target := rel
	if u.RawQuery != "" {
		target += "?" + u.RawQuery
	}
	if _, _, err := splitTarget(target); err != nil {
		return "", "", &refusedError{msg: err.Error()}
	}
	return fullPath, u.RawQuery, nil
}

// authorization returns the Authorization header of one request.
func (t *Tenant) authorization(ctx context.Context, method, fullPath, rawQuery string) (string, error) {
	if t.user != nil {
		token, err := t.c.users.token(ctx, t)
		if err != nil {
			return "", err
		}
		return "Bearer " + token, nil
	}
	now := t.c.now()
	token, err := connectjwt.SignHS256(connectjwt.Claims{
		Issuer:    t.c.appKey,
		IssuedAt:  now.Unix(),
		ExpiresAt: now.Add(TokenLifetime).Unix(),
		QSH:       qsh.Hash(method, fullPath, rawQuery, t.basePath),
	}, t.secret)
	if err != nil {
		return "", refused("signing %s for tenant %q: %v", method, t.clientKey, err)
	}
	return "JWT " + token, nil
}
