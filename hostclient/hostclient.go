// Package hostclient makes the calls an app backend sends to the product
// (Jira, Confluence, ...) of one of its tenants, Connect or Forge, and
// protects them against slow, restarting and rate-limiting sites. A call
// is signed one of four ways:
//
//   - Connect, as the app (AsApp): an HS256 Connect JWT whose qsh binds it
//     to the one request it travels with;
//   - Connect, as a user (AsUser): an OAuth 2.0 bearer token from the
//     JWT-bearer grant, for apps with the ACT_AS_USER scope;
//   - Forge, with the system or user token Forge sent with a request
//     (ForgeCall), or the one cached from an earlier request (ForgeAsApp,
//     ForgeAsUser), as a bearer token on the installation's apiBaseUrl.
//
// Everything else is one request path, whichever the signing: the same
// checks of what a request names, the same Resilience, redirect policy,
// response limit and errors.
//
// A Client is made once per process. AsApp, AsUser and the Forge methods
// bind it to one tenant; the Tenant's GetJSON, SendJSON and Do take paths
// relative to the tenant's base URL, and its HTTPClient is an *http.Client
// that signs every request, for Go client libraries of the Jira and
// Confluence APIs.
//
// # Only the tenant's own origin
//
// A Tenant signs nothing but requests to its base URL's origin (the
// Connect tenant's baseUrl, the Forge installation's apiBaseUrl), under its
// base path (e.g. /wiki, /ex/jira/<cloudId>); anything else is refused
// before a token exists, with tenon.EINVALID. Paths given to Do are checked
// by the same rule, whatever builds them: a path with a scheme or host of
// its own ("//evil.example", "https://..."), dot segments (raw or
// percent-encoded, any case: "..", "%2e%2E", ".%2e"), encoded slashes
// ("%2F"), backslashes (raw or "%5C") or control characters (raw or
// "%00" to "%1F", "%7F") is never sent. Redirects never carry a
// credential: one that stays on the origin is followed without it, one
// that leaves the origin or changes the scheme is not followed at all and
// comes back to the caller as the 3xx response it is.
//
// # Resilience
//
// Every request goes through a Resilience (see its documentation):
// deadlines that fit inside the caller's, retries of idempotent calls with
// back-off and jitter that honour Retry-After, a retry budget, a circuit
// breaker and a concurrency limit per tenant site. The type is exported for
// the clients of other APIs to reuse, such as calls to api.atlassian.com
// whose sites share one host (see WithTarget).
//
// # Errors
//
// Failures carry a tenon code for the handler to pass on (EUNAVAILABLE,
// EUNAUTHORIZED, ENOTFOUND, ...) and typed causes to act on with
// errors.As / errors.Is: *RateLimitedError (ErrRateLimited, with the time
// the site allows calls again), *UnavailableError (ErrUnavailable,
// ErrBreakerOpen), *APIError (any non-2xx answer; ErrUnauthorized for a
// 401) and *TokenError (the authorization server refused a user token;
// ErrUnauthorized).
package hostclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tenon-dev/tenon"
)

// Defaults of Options.
const (
	// DefaultTimeout bounds one call, retries, redirects and reading the
	// body included, when Options.HTTPClient has no timeout of its own. A
	// caller's context with an earlier deadline ends the call earlier.
	DefaultTimeout = 30 * time.Second
	// DefaultMaxResponseBytes bounds a response body. Jira search results
	// with many fields run to a few MiB; anything far beyond is a mistake.
	DefaultMaxResponseBytes = 16 << 20
	// DefaultUserAgent names the client to the product; the app key is
	// appended, so the product's operators can tell apps apart.
	DefaultUserAgent = "tenon-hostclient"
	// TokenLifetime is how long a signed token is valid: long enough for
	// a slow call, short enough that a leaked token is soon useless.
	TokenLifetime = 180 * time.Second
	// maxRedirects bounds same-origin redirects.
	maxRedirects = 5
	// excerptBytes is how much of an error body an *APIError keeps.
	excerptBytes = 512
)

// ErrResponseTooLarge is returned while reading a response body that
// exceeds Options.MaxResponseBytes.
var ErrResponseTooLarge = errors.New("hostclient: the product's response is larger than the configured limit")

// Options configure a Client. The zero value is usable.
type Options struct {
	// HTTPClient provides the transport (default http.DefaultTransport)
	// and, when set, the overall timeout of a call (default
	// DefaultTimeout). Its cookie jar and redirect policy are not used:
	// the client has its own.
	HTTPClient *http.Client
	// Now is the clock for token times. Default time.Now.
	Now func() time.Time
	// UserAgent is sent with every request. Default DefaultUserAgent
	// followed by the app key.
	UserAgent string
	// MaxResponseBytes bounds every response body read through Do,
	// GetJSON and SendJSON. Default DefaultMaxResponseBytes.
	MaxResponseBytes int64

	// Policy configures retries, breakers and limits; see Resilience. Its
	// Timeout defaults to the HTTPClient's, its Now to Now. Ignored when
	// Resilience is set.
	Policy Policy
	// Resilience, when set, is used instead of one built from Policy, so
	// that several clients share their view of each site.
	Resilience *Resilience

	// Tokens caches user tokens (AsUser). Pass the Store — both tenon
	// stores implement tenon.TokenCache — so that tokens survive restarts
	// and nodes share them. Default: a cache in this process only.
	Tokens tenon.TokenCache
	// AuthServerURL is the OAuth 2.0 authorization server of the
	// JWT-bearer grant: https, or http on a loopback address for tests.
	// Default DefaultAuthServerURL.
	AuthServerURL string
	// TokenRefreshBefore is how long before its expiry a user token is
	// replaced, so a token never expires on its way. Default 60 s.
	TokenRefreshBefore time.Duration
	// TokenTimeout bounds one token request. Default 10 s.
	TokenTimeout time.Duration
	// Logger receives failures of the token cache (never tokens). Default:
	// discard.
	Logger *slog.Logger

	// Forge configures calls for Forge installations.
	Forge ForgeOptions
}

// Client signs and sends calls to the products of any tenant of one app.
// It is safe for concurrent use.
type Client struct {
	appKey    string
	now       func() time.Time
	userAgent string
	maxBytes  int64
	timeout   time.Duration
	res       *Resilience
	rt        http.RoundTripper // res around the base transport
	users     *userTokens
	tokens    tenon.TokenCache // Options.Tokens, for cached Forge tokens
	forge     ForgeOptions
}

// New returns a client for the app with the descriptor key appKey, the
// `iss` of every Connect JWT it signs. appKey may be "" for a client that
// makes Forge calls only.
func New(appKey string, opts Options) *Client {
	var base http.RoundTripper = http.DefaultTransport
	timeout := DefaultTimeout
	if hc := opts.HTTPClient; hc != nil {
		if hc.Transport != nil {
			base = hc.Transport
		}
		if hc.Timeout > 0 {
			timeout = hc.Timeout
		}
	}
	c := &Client{appKey: appKey, now: opts.Now, userAgent: opts.UserAgent, maxBytes: opts.MaxResponseBytes, timeout: timeout,
		tokens: opts.Tokens, forge: opts.Forge}
	if c.now == nil {
		c.now = time.Now
	}
	if c.userAgent == "" {
		c.userAgent = strings.TrimSpace(DefaultUserAgent + " " + appKey)
	}
	if c.maxBytes <= 0 {
		c.maxBytes = DefaultMaxResponseBytes
	}
	c.res = opts.Resilience
	if c.res == nil {
		p := opts.Policy
		if p.Timeout <= 0 {
			p.Timeout = timeout
		}
		if p.Now == nil {
			p.Now = c.now
		}
		if bs, ok := opts.Tokens.(tenon.BudgetStore); ok && p.Budget.Store == nil {
			// The Store shares the rate-limit budget between nodes.
			p.Budget.Store = bs
		}
		c.res = NewResilience(p)
	}
	c.rt = c.res.Wrap(base)
	c.users = newUserTokens(c, opts)
	return c
}

// Resilience returns the client's Resilience, to inspect site states.
func (c *Client) Resilience() *Resilience { return c.res }

// checkRedirect follows a redirect only while it stays on the origin of the
// first request, and strips the credential from it: a JWT's qsh covers the
// first request alone, and a product that redirects elsewhere must not
// receive a credential meant for itself.
func checkRedirect(req *http.Request, via []*http.Request) error {
	first := via[0].URL
	if req.URL.Scheme != first.Scheme || !strings.EqualFold(req.URL.Host, first.Host) {
		return http.ErrUseLastResponse
	}
	if len(via) > maxRedirects {
		return fmt.Errorf("hostclient: stopped after %d redirects", maxRedirects)
	}
	req.Header.Del("Authorization")
	return nil
}

// Tenant makes calls to one tenant's product, as the app or as one user,
// for a Connect installation or a Forge one. Get one from Client.AsApp,
// AsUser, ForgeCall, ForgeAsApp or ForgeAsUser; it is safe for concurrent
// use.
type Tenant struct {
	c         *Client
	kind, id  string // name the tenant in errors: kind "tenant" or "Forge installation", id its key
	clientKey string
	accountID string // the user calls act as; "" for the app or when unknown
	product   string
	origin    *url.URL // scheme and host of the base URL
	basePath  string   // path of the base URL without trailing '/', e.g. "/wiki"
	baseURL   string   // the base URL as installed: the `tnt` of user assertions
	site      string   // Target.Site
	secret    []byte   // Connect: the shared secret
	oauthID   string   // Connect: the installation's oauthClientId
	user      *userAuth
	sign      signer // how requests are authorized
	hc        *http.Client
	err       error // why this tenant cannot be called, reported by every call
}

// signer is the one part of a request that differs between the ways a
// Tenant calls: how it proves itself to the product. connectJWT signs as
// the Connect app, userBearer sends a Connect user token, forgeBearer a
// Forge OAuth token.
type signer interface {
	// authorization returns the Authorization header of one request, whose
	// path (as on the wire, base path included) and raw query are given.
	authorization(ctx context.Context, method, fullPath, rawQuery string) (string, error)
	// refused is told that the product answered a request it authorized
	// with 401, so a cached token can be dropped.
	refused(ctx context.Context)
}

// newTenant returns a Tenant whose HTTPClient is set and whose other
// fields the caller fills in, or sets err.
func (c *Client) newTenant(kind, id string) *Tenant {
	t := &Tenant{c: c, kind: kind, id: id}
	// No Timeout on the http.Client: the Resilience gives every request
	// the deadline (Policy.Timeout, from the same setting), which costs a
	// timer instead of the client's watchdog goroutine per request.
	t.hc = &http.Client{Transport: &tenantTransport{t: t}, CheckRedirect: checkRedirect}
	return t
}

// label names the tenant in errors: `tenant "<clientKey>"`, `Forge
// installation "<id>"`. It is formatted only when needed.
func (t *Tenant) label() string { return fmt.Sprintf("%s %q", t.kind, t.id) }

// setBase checks the base URL a credential is sent to and binds t to it:
// an absolute https URL, or http to a loopback host when allowHTTP (a
// product on this machine: a credential sent in the clear anywhere else can
// be read on the way), without user info, query or fragment.
func (t *Tenant) setBase(raw, what string, allowHTTP bool) error {
	base, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("hostclient: %s: %s: %w", t.label(), what, err)
	case (base.Scheme != "https" && !(allowHTTP && base.Scheme == "http" && tenon.LoopbackHost(base.Hostname()))), base.Host == "", base.User != nil,
		base.Opaque != "", base.RawQuery != "", base.ForceQuery, base.Fragment != "":
		kind := "https"
		if allowHTTP {
			kind = "https (or loopback http)"
		}
		return fmt.Errorf("hostclient: %s: %s %q is not an absolute %s URL without query", t.label(), what, raw, kind)
	}
	t.origin = &url.URL{Scheme: base.Scheme, Host: base.Host}
	t.basePath = strings.TrimRight(base.EscapedPath(), "/")
	t.baseURL = raw
	return nil
}

// AsApp returns the tenant of in, whose calls are signed with its shared
// secret. The fields it needs are copied, so later changes to in do not
// affect the returned Tenant. An installation that cannot be called (no
// secret, a baseUrl that is not an absolute http(s) URL, uninstalled)
// gives a Tenant whose every call fails with that reason.
func (c *Client) AsApp(in *tenon.Installation) *Tenant {
	if in == nil {
		t := c.newTenant("tenant", "")
		t.err = errors.New("hostclient: no installation")
		return t
	}
	t := c.newTenant("tenant", in.ClientKey)
	t.clientKey = in.ClientKey
	switch {
	case in.State == tenon.StateUninstalled:
		t.err = tenon.Errorf(tenon.EFORBIDDEN, "The app is uninstalled from this site.")
		return t
	case in.SharedSecret == "":
		t.err = fmt.Errorf("hostclient: %s has no shared secret", t.label())
		return t
	case c.appKey == "":
		t.err = fmt.Errorf("hostclient: %s: the Client has no app key, the iss of Connect JWTs (see New)", t.label())
		return t
	}
	if err := t.setBase(in.BaseURL, "baseUrl", true); err != nil {
		t.err = err
		return t
	}
	t.secret = []byte(in.SharedSecret)
	t.site = t.origin.Scheme + "://" + strings.ToLower(t.origin.Host) + t.basePath
	t.product = in.ProductType
	t.oauthID = in.OAuthClientID
	t.sign = connectJWT{t: t}
	return t
}

// ClientKey returns the Connect tenant's clientKey; "" for a Forge
// installation.
func (t *Tenant) ClientKey() string { return t.clientKey }

// BaseURL returns the URL a client library should put in front of API
// paths: the tenant's origin and base path, without a trailing '/'.
// It is "" for a tenant that cannot be called.
func (t *Tenant) BaseURL() string {
	if t.err != nil {
		return ""
	}
	return t.origin.String() + t.basePath
}

// HTTPClient returns an *http.Client whose requests are signed for this
// tenant and sent under the client's Resilience, for Go client libraries
// of the product APIs that accept one. Point the library at BaseURL.
// Requests to any other origin, outside the base path, or whose path Do
// would refuse, fail with tenon.EINVALID without being sent; redirects
// follow the package rules. The client has the
// deadline of the Client (Options.HTTPClient's timeout, per request), and
// no cookie jar.
func (t *Tenant) HTTPClient() *http.Client { return t.hc }

// Do sends one request signed for the tenant. path is relative to the
// tenant's base URL and may carry a query:
// "/rest/api/3/issue/PROJ-1?fields=summary" (on Confluence, whose baseUrl
// ends in /wiki, "/rest/api/content/123"; on Forge, relative to
// apiBaseUrl, the same). It must already be percent-encoded as it should
// go on the wire (url.PathEscape each variable segment, url.Values.Encode
// the query). A path that could leave the base URL or mean something else
// to the product — a scheme or host of its own, dot segments, encoded
// slashes, backslashes, control characters, raw or percent-encoded (see
// the package documentation) — is refused with tenon.EINVALID before a
// token exists, and nothing is sent.
//
// hdr is added to the request, except Authorization, which is always the
// client's own. GET and HEAD take no body; a body that should be resent on
// a retry must be a *bytes.Reader, *bytes.Buffer or *strings.Reader. The
// response is returned for any status, like http.Client.Do, after the
// Resilience's retries; its body is limited to Options.MaxResponseBytes
// and must be closed. A redirect to another origin or scheme is returned
// as is, not followed. Failures without an answer are tenon.EUNAVAILABLE
// (with a *RateLimitedError or *UnavailableError in the chain), or
// EUNAUTHORIZED when the app may not act as the user.
func (t *Tenant) Do(ctx context.Context, method, path string, body io.Reader, hdr http.Header) (*http.Response, error) {
	if t.err != nil {
		return nil, t.err
	}
	if !validMethod(method) {
		return nil, refusal("the method is not an HTTP method", fmt.Sprintf("method %q", method))
	}
	if body != nil && (method == http.MethodGet || method == http.MethodHead) {
		return nil, refusal("a "+method+" request takes no body", fmt.Sprintf("%s %s", method, pathOnly(path)))
	}
	rawPath, rawQuery, err := checkTarget(path)
	if err != nil {
		return nil, err
	}
	u := &url.URL{Scheme: t.origin.Scheme, Host: t.origin.Host, RawQuery: rawQuery}
	fullPath := t.basePath + rawPath
	// Path and RawPath together make the client send fullPath byte for
	// byte, the very path the qsh covers.
	if u.Path, err = url.PathUnescape(fullPath); err != nil {
		return nil, refusal("the path has a malformed percent-escape", fmt.Sprintf("path %q", rawPath))
	}
	u.RawPath = fullPath
	if u.EscapedPath() != fullPath {
		return nil, refusal("the path must be percent-encoded (url.PathEscape each segment)", fmt.Sprintf("path %q", rawPath))
	}
	// One deadline for the whole call, redirects and reading the body
	// included; it ends when the body is closed.
	cancel := context.CancelFunc(func() {})
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > t.c.timeout {
		ctx, cancel = context.WithTimeout(ctx, t.c.timeout)
	}
	// The URL is set, not parsed: it is exactly the one built above.
	req, err := http.NewRequestWithContext(ctx, method, "", body)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("hostclient: %s %s: %w", method, rawPath, err)
	}
	req.URL, req.Host = u, u.Host
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := t.hc.Do(req)
	if err != nil {
		cancel()
		return nil, t.callError(method, rawPath, err)
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.c.maxBytes, cancel: cancel}
	return resp, nil
}

// callError gives a failure without an answer its tenon code. The
// *url.Error of http.Client is dropped: its URL carries the query, which
// can hold user data and stays out of errors and logs.
func (t *Tenant) callError(method, rawPath string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	err = fmt.Errorf("hostclient: %s %s on %s: %w", method, rawPath, t.label(), err)
	var (
		rf  *refusedError
		rl  *RateLimitedError
		tok *TokenError
		un  *UnavailableError
	)
	switch {
	case errors.As(err, &rf):
		return err
	case errors.As(err, &rl):
		return tenon.WrapError(tenon.EUNAVAILABLE, "The product is rate limiting the app; try again later.", err)
	case errors.As(err, &tok) && errors.Is(tok, ErrUnauthorized):
		return tenon.WrapError(tenon.EUNAUTHORIZED, "The product did not let the app act as this user.", err)
	case errors.As(err, &un) && un.Reason == ReasonBreakerOpen:
		return tenon.WrapError(tenon.EUNAVAILABLE, "The product is unavailable; try again later.", err)
	case errors.As(err, &un) && (un.Reason == ReasonTimeout || un.Reason == ReasonBusy):
		return tenon.WrapError(tenon.EUNAVAILABLE, "The product did not answer in time.", err)
	}
	return tenon.WrapError(tenon.EUNAVAILABLE, "The product could not be reached.", err)
}

// GetJSON fetches path and decodes its JSON body into v (nil discards it).
// A non-2xx status gives an error carrying an *APIError; see SendJSON.
func (t *Tenant) GetJSON(ctx context.Context, path string, v any) error {
	return t.SendJSON(ctx, http.MethodGet, path, nil, v)
}

// SendJSON sends in encoded as JSON (nil sends no body) and decodes a 2xx
// JSON response into out (nil, or a 204, decodes nothing).
//
// A non-2xx status returns a *tenon.Error whose cause is an *APIError
// (reach it with errors.As), with the code a handler can pass on:
// 400/422 EINVALID, 401 EUNAUTHORIZED, 403 EFORBIDDEN, 404 ENOTFOUND,
// 409 ECONFLICT, 429 and 5xx EUNAVAILABLE, anything else EINTERNAL. A 429
// also carries a *RateLimitedError and a 5xx an *UnavailableError, both
// with the time the product asked to wait for. The message names the
// product's answer, never its body.
func (t *Tenant) SendJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	hdr := http.Header{"Accept": {"application/json"}}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("hostclient: %s %s: encoding the request: %w", method, pathOnly(path), err)
		}
		body = bytes.NewReader(b)
		hdr.Set("Content-Type", "application/json")
	}
	resp, err := t.Do(ctx, method, path, body, hdr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return t.errorFor(method, path, resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent || method == http.MethodHead {
		_, _ = io.Copy(io.Discard, resp.Body) // lets the connection be reused
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		if errors.Is(err, ErrResponseTooLarge) {
			return tenon.WrapError(tenon.EINTERNAL, "The product's response is too large.",
				fmt.Errorf("hostclient: %s %s: %w", method, pathOnly(path), err))
		}
		return tenon.WrapError(tenon.EUNAVAILABLE, "The product's response could not be read.",
			fmt.Errorf("hostclient: %s %s: decoding the response: %w", method, pathOnly(path), err))
	}
	return nil
}

// APIError is a non-2xx answer of the product.
type APIError struct {
	Method string
	Path   string // relative to the tenant's baseUrl, without the query
	Status int
	// Body is the start of the response body, for logs. It can contain
	// what the product says about the request; do not show it to users.
	Body string
	// RetryAfter is how long the product asked to wait (Retry-After, or
	// X-RateLimit-Reset when that is absent); zero when it did not say.
	RetryAfter time.Duration
}

// Error implements error.
func (e *APIError) Error() string {
	s := fmt.Sprintf("hostclient: %s %s: product answered %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %v)", e.RetryAfter)
	}
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}

// Is makes errors.Is(err, ErrUnauthorized) true for a 401.
func (e *APIError) Is(target error) bool {
	return target == ErrUnauthorized && e.Status == http.StatusUnauthorized
}

// errorFor builds the error of a non-2xx response and drains its body.
func (t *Tenant) errorFor(method, path string, resp *http.Response) error {
	// The clock that decides waits decides "until".
	return ResponseError(t.site, method, path, resp, t.c.res.p.Now())
}

// ResponseError turns a product's non-2xx answer into a *tenon.Error whose
// cause is an *APIError, with the code a handler can pass on (see
// SendJSON); a 429 also carries a *RateLimitedError and a 5xx an
// *UnavailableError for site. It reads at most a short excerpt of the
// body, which stays in the APIError and never in the message. Other
// clients of Atlassian products (the Forge client) use it so every
// product call fails the same way.
func ResponseError(site, method, path string, resp *http.Response, now time.Time) error {
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, excerptBytes))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	ae := &APIError{
		Method:     method,
		Path:       pathOnly(path),
		Status:     resp.StatusCode,
		Body:       strings.ToValidUTF8(strings.TrimSpace(string(excerpt)), "\uFFFD"),
		RetryAfter: RetryAfter(resp.Header, now),
	}
	var cause error = ae
	var until time.Time
	if ae.RetryAfter > 0 {
		until = now.Add(ae.RetryAfter)
	}
	code, msg := tenon.EINTERNAL, "The product answered with an unexpected status."
	switch s := resp.StatusCode; {
	case s == http.StatusBadRequest || s == http.StatusUnprocessableEntity:
		code, msg = tenon.EINVALID, "The product rejected the request as invalid."
	case s == http.StatusUnauthorized:
		code, msg = tenon.EUNAUTHORIZED, "The product did not accept the app's credentials."
	case s == http.StatusForbidden:
		code, msg = tenon.EFORBIDDEN, "The product does not allow the app to do this."
	case s == http.StatusNotFound:
		code, msg = tenon.ENOTFOUND, "The product has no such item, or the app may not see it."
	case s == http.StatusConflict:
		code, msg = tenon.ECONFLICT, "The product reported a conflict."
	case s == http.StatusTooManyRequests:
		code, msg = tenon.EUNAVAILABLE, "The product is rate limiting the app; try again later."
		reason := resp.Header.Get("RateLimit-Reason")
		if reason == "" {
			reason = resp.Header.Get("X-Beta-RateLimit-Reason")
		}
		cause = &RateLimitedError{Site: site, Until: until, Reason: reason, Err: ae}
	case s >= 500:
		code, msg = tenon.EUNAVAILABLE, "The product is unavailable; try again later."
		cause = &UnavailableError{Site: site, Reason: ReasonStatus, Until: until, Err: ae}
	case s >= 300 && s < 400:
		msg = "The product redirected the request elsewhere."
	}
	return tenon.WrapError(code, msg, cause)
}

// RetryAfter reads Retry-After (seconds or an HTTP date) and, failing
// that, X-RateLimit-Reset (an RFC 3339 time, or Atlassian's
// minute-precision 2006-01-02T15:04Z). Past times give zero.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseInt(v, 10, 32); err == nil {
			return time.Duration(max(secs, 0)) * time.Second
		}
		if at, err := http.ParseTime(v); err == nil && at.After(now) {
			return at.Sub(now)
		}
	}
	if at, ok := parseResetTime(h.Get("X-RateLimit-Reset")); ok && at.After(now) {
		return at.Sub(now)
	}
	return 0
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// limitedBody fails a read that goes past the limit instead of silently
// truncating, so a decoder never mistakes a cut-off body for a whole one.
type limitedBody struct {
	rc     io.ReadCloser
	left   int64
	cancel context.CancelFunc // ends the call's deadline
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a body of exactly the limit from a longer one.
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, ErrResponseTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error {
	err := b.rc.Close()
	b.cancel()
	return err
}
