package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/connectjwt"
	"github.com/tenon-dev/tenon/qsh"
)

// authenticate verifies the Connect JWT of a request to an app route and
// passes the request on with its Principal in the context. Nothing of the
// request reaches the app handler unless every check passed.
func (s *Server) authenticate(rt *route) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, iss, err := s.verifyRequest(r, rt)
			if err != nil {
				s.refuse(w, r, rt, iss, err)
				return
			}
			noteClientKey(r.Context(), p.ClientKey())
			if rt.requireLicense && !p.Licensed() {
				s.log.InfoContext(r.Context(), "request refused", "route", r.Pattern, "kind", rt.kind.String(),
					"client_key", p.ClientKey(), "reason", "no active license")
				s.writeLicenseRequired(w, rt.kind == kindModule)
				return
			}
			next.ServeHTTP(w, r.WithContext(tenon.WithPrincipal(r.Context(), p)))
		})
	}
}

// refuse logs and answers a request that failed authentication. The log
// names the route, the claimed issuer and the reason; never the token.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, rt *route, iss string, err error) {
	code := tenon.ErrorCode(err)
	attrs := []any{"route", r.Pattern, "kind", rt.kind.String(), "iss", clip(iss), "reason", tenon.ErrorMessage(err)}
	if statusOf(code) >= 500 {
		s.log.ErrorContext(r.Context(), "request refused", append(attrs, "err", err)...)
	} else {
		s.log.InfoContext(r.Context(), "request refused", attrs...)
	}
	WriteError(w, r, err)
}

// verifyRequest runs the checks of an app route in an order that costs
// an attacker the most and the server the least: the cheap structural
// checks first, the store only for a well-formed HS256 token, and the
// request hash last. It returns the unverified issuer for logging.
func (s *Server) verifyRequest(r *http.Request, rt *route) (*tenon.Principal, string, error) {
	q := scanQuery(r.URL.RawQuery)
	raw, err := findToken(r, &q)
	if err != nil {
		return nil, "", err
	}
	tok, err := connectjwt.Parse(raw)
	if err != nil {
		return nil, "", errUnauthorized("The token is malformed.")
	}
	c := &tok.Claims
	iss := c.Issuer
	if tok.Alg != "HS256" {
		return nil, iss, errUnauthorized("This route accepts only HS256 tokens signed with the site's shared secret.")
	}
	if iss == "" {
		return nil, iss, errUnauthorized("The token has no issuer (iss).")
	}

	t, err := s.tenants.get(r.Context(), iss)
	if err != nil {
		if tenon.ErrorCode(err) == tenon.ENOTFOUND {
			return nil, iss, errUnauthorized(msgUnknownTenant)
		}
		return nil, iss, tenon.WrapError(tenon.EUNAVAILABLE, "The app cannot check the site right now; try again.", err)
	}
	// An uninstalled tenant is answered like an unknown one, before its
	// old secret is even tried.
	if t.inst.State == tenon.StateUninstalled {
		return nil, iss, errUnauthorized(msgUnknownTenant)
	}
	if err := s.verifier.VerifyHS256Key(tok, t.key); err != nil {
		return nil, iss, verifyError(err)
	}
	// Only a caller holding the secret learns that the app is disabled.
	if t.inst.State != tenon.StateEnabled {
		return nil, iss, errForbidden("The app is disabled on this site.")
	}

	switch rt.kind {
	case kindAPI:
		if c.QSH != qsh.ContextQSH {
			return nil, iss, errUnauthorized(`This route accepts only context tokens (qsh "context-qsh") from AP.context.getToken.`)
		}
	default:
		if err := checkRequestQSH(c.QSH, r, s.basePath); err != nil {
			return nil, iss, err
		}
	}

	// Each request gets its own copy, so a handler that changes its
	// Installation cannot affect the cached one other requests share.
	inst := *t.inst
	p := s.principal(&inst)
	p.AccountID = c.Subject
	p.Kind = rt.kind.tokenKind()
	p.Context = c.Context
	p.IssuedAt = time.Unix(c.IssuedAt, 0)
	p.ExpiresAt = time.Unix(c.ExpiresAt, 0)
	if rt.kind == kindAPI {
		// The query of a context-token request is not signed: trust only
		// what the token says.
		p.License = contextLicense(c.Context)
	} else {
		p.License = queryValue(q.lic)
		p.Locale = queryValue(q.loc)
		p.Timezone = queryValue(q.tz)
	}
	return p, iss, nil
}

const msgUnknownTenant = "The token's issuer is not a site where the app is installed."

// checkRequestQSH requires claim to be the hash of r. A context-qsh token
// is refused by name, since it is the token a page's browser code holds
// and must not be replayable against iframe, webhook or lifecycle routes.
func checkRequestQSH(claim string, r *http.Request, basePath string) error {
	switch claim {
	case "":
		return errUnauthorized("The token has no query string hash (qsh).")
	case qsh.ContextQSH:
		return errUnauthorized(`A context token (qsh "context-qsh") is not accepted on this route.`)
	}
	if !qsh.MatchesRequest(claim, r, basePath) {
		return errUnauthorized("The token was not issued for this request (qsh mismatch).")
	}
	return nil
}

// verifyError maps a connectjwt verification error to what the caller
// sees. Only key-server trouble is the server's fault (503, retry).
func verifyError(err error) error {
	switch {
	case errors.Is(err, connectjwt.ErrKeyUnavailable), errors.Is(err, context.DeadlineExceeded):
		return tenon.WrapError(tenon.EUNAVAILABLE, "The signing key could not be fetched from the key server; try again.", err)
	case errors.Is(err, connectjwt.ErrExpired):
		return errUnauthorized("The token has expired.")
	case errors.Is(err, connectjwt.ErrIssuedInFuture):
		return errUnauthorized("The token was issued in the future; check the clocks.")
	case errors.Is(err, connectjwt.ErrNotYetValid):
		return errUnauthorized("The token is not valid yet (nbf); check the clocks.")
	case errors.Is(err, connectjwt.ErrMissingExpiry):
		return errUnauthorized("The token has no expiry (exp).")
	case errors.Is(err, connectjwt.ErrAlgorithm):
		return errUnauthorized("The token's algorithm is not accepted on this route.")
	case errors.Is(err, connectjwt.ErrKeyNotFound):
		return errUnauthorized("The token's signing key (kid) is unknown to the key server.")
	case errors.Is(err, connectjwt.ErrSignature):
		return errUnauthorized("The token's signature is not valid.")
	case errors.Is(err, connectjwt.ErrMalformed):
		return errUnauthorized("The token is malformed.")
	}
	return tenon.WrapError(tenon.EUNAUTHORIZED, "The token could not be verified.", err)
}

// queryInfo holds the raw (still encoded) values of the query parameters
// the server reads. Scanning the raw query once, instead of parsing it
// into a map, keeps the hot path free of allocations and reads the same
// pairs the qsh covers.
type queryInfo struct {
	jwt, lic, loc, tz string
	jwts              int
}

func scanQuery(raw string) queryInfo {
	var q queryInfo
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(pair, "=")
		if strings.ContainsAny(k, "%+") {
			dk, err := url.QueryUnescape(k)
			if err != nil {
				continue
			}
			k = dk
		}
		switch k {
		case "jwt":
			q.jwts++
			q.jwt = v
		case "lic":
			q.lic = v
		case "loc":
			q.loc = v
		case "tz":
			q.tz = v
		}
	}
	return q
}

// queryValue decodes a raw query value; a malformed one counts as absent.
func queryValue(v string) string {
	if !strings.ContainsAny(v, "%+") {
		return v
	}
	d, err := url.QueryUnescape(v)
	if err != nil {
		return ""
	}
	return d
}

// findToken returns the one token of a request. A token may come in the
// query, in a form body (POST iframes) or in the Authorization header;
// more than one is refused, since two tokens invite checking one and
// trusting the other.
func findToken(r *http.Request, q *queryInfo) (string, error) {
	n := q.jwts
	tok := queryValue(q.jwt)
	for _, h := range r.Header["Authorization"] {
		if v, ok := cutScheme(h, "JWT"); ok {
			n++
			tok = v
		}
	}
	if r.Method == http.MethodPost && isFormPost(r) {
		vals, err := readForm(r)
		if err != nil {
			return "", err
		}
		if v := vals["jwt"]; len(v) > 0 {
			n += len(v)
			tok = v[0]
		}
	}
	switch {
	case n == 0:
		return "", errUnauthorized("The request carries no token: send a Connect JWT in the jwt parameter or an Authorization: JWT header.")
	case n > 1:
		return "", errUnauthorized("The request carries more than one token: send the token once.")
	}
	return tok, nil
}

// cutScheme returns the credentials of an Authorization header value
// using scheme, compared case-insensitively.
func cutScheme(h, scheme string) (string, bool) {
	if len(h) <= len(scheme) || h[len(scheme)] != ' ' || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	return strings.TrimSpace(h[len(scheme)+1:]), true
}

func isFormPost(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/x-www-form-urlencoded"
}

// readForm reads a form body (already capped by limitBody) and puts it
// back, parsed into r.PostForm and readable again as r.Body, so the
// handler sees the request as sent.
func readForm(r *http.Request) (url.Values, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if err := normalize(err); tenon.ErrorCode(err) == tenon.ETOOLARGE {
			return nil, err
		}
		return nil, tenon.WrapError(tenon.EINVALID, "The request body could not be read.", err)
	}
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, errInvalid("The form body is malformed.")
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.PostForm = vals
	return vals, nil
}

// contextLicense reads license.active from a context token's context
// claim: "active", "none", or "" when the claim says nothing.
func contextLicense(raw json.RawMessage) string {
	if !bytes.Contains(raw, []byte(`"license"`)) {
		return ""
	}
	var c struct {
		License *struct {
			Active *bool `json:"active"`
		} `json:"license"`
	}
	if json.Unmarshal(raw, &c) != nil || c.License == nil || c.License.Active == nil {
		return ""
	}
	if *c.License.Active {
		return tenon.LicenseActive
	}
	return tenon.LicenseNone
}

// clip shortens an untrusted value before it is logged.
func clip(s string) string {
	const max = 128
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
