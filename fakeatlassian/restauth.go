package fakeatlassian

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// caller is who a REST request acts as, once authenticated.
type caller struct {
	appKey    string
	accountID string   // the user acted as; the app's own user for app JWTs
	scopes    []string // what the request may do
	auth      string   // "jwt", "bearer" or "session"
}

// authenticateREST checks the credentials of a request to site s and
// returns the caller, or the reason it is refused (answered with 401).
// rawPath is the path as sent, used for the qsh.
func (f *Fake) authenticateREST(r *http.Request, s *siteState, rawPath string) (*caller, string) {
	header := r.Header.Get("Authorization")
	queryToken, hasQueryToken := rawQueryParam(r.URL.RawQuery, "jwt")
	if header != "" && hasQueryToken {
		return nil, "two tokens were sent (Authorization header and jwt parameter); send one"
	}
	if hasQueryToken {
		return f.verifyAppJWT(s, queryToken, r.Method, rawPath, r.URL.RawQuery)
	}
	scheme, token, _ := strings.Cut(header, " ")
	token = strings.TrimSpace(token)
	switch {
	case header == "":
		return nil, "Client must be authenticated to access this resource."
	case strings.EqualFold(scheme, "JWT"):
		return f.verifyAppJWT(s, token, r.Method, rawPath, r.URL.RawQuery)
	case strings.EqualFold(scheme, "Bearer"):
		return f.verifyBearer(s, token)
	}
	return nil, fmt.Sprintf("the Authorization scheme %q is not supported (JWT or Bearer)", scheme)
}

// verifyAppJWT checks a Connect JWT an app signed for a request to the
// product: HS256 with the app's shared secret on this site, iss = app key,
// exp present and not past, and a qsh equal to the hash of this request.
func (f *Fake) verifyAppJWT(s *siteState, token, method, rawPath, rawQuery string) (*caller, string) {
	claims := jwt.MapClaims{}
	var refusal string
	var c caller
	_, err := f.hsParser().ParseWithClaims(token, claims, func(*jwt.Token) (any, error) {
		iss := claimString(claims, "iss")
		f.mu.Lock()
		defer f.mu.Unlock()
		a := s.apps[iss]
		switch {
		case iss == "":
			refusal = "the JWT has no iss claim (the app key)"
		case a == nil:
			refusal = fmt.Sprintf("no app %q is installed on this site", iss)
		case a.state == AppUninstalled:
			refusal = fmt.Sprintf("the app %q is uninstalled", iss)
		case a.state != AppEnabled:
			refusal = fmt.Sprintf("the app %q is disabled", iss)
		}
		if refusal != "" {
			return nil, fmt.Errorf("%s", refusal)
		}
		c = caller{appKey: iss, accountID: a.accountID, scopes: slices.Clone(a.desc.Scopes), auth: "jwt"}
		return []byte(a.sharedSecret), nil
	})
	if err != nil {
		if refusal != "" {
			return nil, refusal
		}
		return nil, describeJWTError(err)
	}
	qsh := claimString(claims, "qsh")
	switch {
	case qsh == "":
		return nil, "the JWT has no qsh claim"
	case qsh == contextQSH:
		return nil, "a context token (qsh=context-qsh) cannot call the REST API"
	}
	if want := qshOf(method, rawPath, s.basePath, rawQuery); subtle.ConstantTimeCompare([]byte(qsh), []byte(want)) != 1 {
		return nil, fmt.Sprintf("the qsh claim does not match this request; the canonical request is %q",
			canonicalRequest(method, rawPath, s.basePath, rawQuery))
	}
	return &c, ""
}

// verifyBearer checks an access token from the OAuth endpoint.
func (f *Fake) verifyBearer(s *siteState, token string) (*caller, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.grants[token]
	switch {
	case g == nil:
		return nil, "the access token is unknown or revoked"
	case !f.now().Before(g.expires):
		return nil, "the access token has expired"
	case g.site != s.info.Name:
		return nil, "the access token belongs to another site"
	}
	if a := s.apps[g.appKey]; a == nil || a.state != AppEnabled {
		return nil, fmt.Sprintf("the app %q is not enabled", g.appKey)
	}
	return &caller{appKey: g.appKey, accountID: g.accountID, scopes: slices.Clone(g.scopes), auth: "bearer"}, ""
}

// rawQueryParam finds a parameter in a raw query without url.ParseQuery,
// which would drop pairs it cannot parse.
func rawQueryParam(rawQuery, name string) (string, bool) {
	for _, pair := range strings.Split(rawQuery, "&") {
		k, v, _ := strings.Cut(pair, "=")
		if decodeQueryComponent(k) == name {
			return decodeQueryComponent(v), true
		}
	}
	return "", false
}

// requiredScope is the scope a REST method needs.
func requiredScope(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return "READ"
	case http.MethodDelete:
		return "DELETE"
	}
	return "WRITE"
}
