package forge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/hostclient"
)

// ErrNoToken is in the chain of a call that found no usable token: Forge
// sends a fresh one with its next call (UI invocation, event, trigger).
var ErrNoToken = errors.New("forge: no valid OAuth token for this installation")

// tokenMargin is how long a cached token must still be valid to be used,
// so it does not expire on its way or between retries.
const tokenMargin = 30 * time.Second

// ClientOptions configure a Client. The zero value is usable for calls
// with the tokens of a request (ForCall).
type ClientOptions struct {
	// HTTPClient supplies the transport (wrapped in the Resilience) and,
	// through its Timeout, the default deadline of a call. Its redirect
	// policy is not used: redirects are never followed, since they would
	// carry the bearer token elsewhere.
	HTTPClient *http.Client
	// Resilience applies retries, back-off, breakers and limits, as for
	// Connect calls. Share the one of the hostclient.Client so both see
	// each site's state. Default: one built from Policy.
	Resilience *hostclient.Resilience
	// Policy configures the Resilience built when none is given.
	Policy hostclient.Policy
	// Tokens is where the server caches the tokens Forge sends with every
	// call (the Store). AsApp and AsUser read them there.
	Tokens tenon.TokenCache
	// Installations finds an installation's apiBaseUrl for AsApp and
	// AsUser (the Store).
	Installations tenon.ForgeStore
	// Now is the clock for token expiry. Default time.Now.
	Now func() time.Time
	// UserAgent is sent with every request. Default "tenon-forge".
	UserAgent string
	// MaxResponseBytes bounds a response body. Default
	// hostclient.DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// AllowHTTP accepts an http:// apiBaseUrl (a fake product in development).
	AllowHTTP bool
}

// Client calls product APIs (Jira, Confluence, ...) for Forge
// installations on app.apiBaseUrl, with the bearer tokens Forge sent: the
// app's system token or a user's token. It is safe for concurrent use.
type Client struct {
	rt        http.RoundTripper
	timeout   time.Duration
	tokens    tenon.TokenCache
	installs  tenon.ForgeStore
	now       func() time.Time
	userAgent string
	maxBytes  int64
	allowHTTP bool
	hc        *http.Client
}

// NewClient returns a Client.
func NewClient(opts ClientOptions) *Client {
	var base http.RoundTripper = http.DefaultTransport
	timeout := hostclient.DefaultTimeout
	if hc := opts.HTTPClient; hc != nil {
		if hc.Transport != nil {
			base = hc.Transport
		}
		if hc.Timeout > 0 {
			timeout = hc.Timeout
		}
	}
	res := opts.Resilience
	if res == nil {
		p := opts.Policy
		if p.Timeout <= 0 {
			p.Timeout = timeout
		}
		res = hostclient.NewResilience(p)
	}
	c := &Client{
		rt:        res.Wrap(base),
		timeout:   timeout,
		tokens:    opts.Tokens,
		installs:  opts.Installations,
		now:       opts.Now,
		userAgent: opts.UserAgent,
		maxBytes:  opts.MaxResponseBytes,
		allowHTTP: opts.AllowHTTP,
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.userAgent == "" {
		c.userAgent = "tenon-forge"
	}
	if c.maxBytes <= 0 {
		c.maxBytes = hostclient.DefaultMaxResponseBytes
	}
	c.hc = &http.Client{
		Transport: c.rt,
		// The Resilience sets each call's deadline; this only bounds a
		// call that somehow escaped it.
		Timeout:       2 * timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c
}

// Product makes calls to one installation's product API with one token.
type Product struct {
	c        *Client
	base     *url.URL // apiBaseUrl
	basePath string   // its path without trailing '/'
	target   hostclient.Target
	token    string
	cacheKey string // where token came from, so a 401 can drop it; "" for request tokens
	err      error
}

// ForCall returns calls with the tokens Forge sent with a request:
// the user's token when asUser, else the app system token. A call whose
// token is missing fails with EUNAVAILABLE (ErrNoToken in the chain); the
// manifest decides which tokens Forge sends (endpoint auth).
func (c *Client) ForCall(fc *tenon.ForgeContext, asUser bool) *Product {
	if fc == nil {
		return &Product{c: c, err: errors.New("forge: not a Forge call (Principal.Forge is nil)")}
	}
	tok := fc.SystemToken()
	if asUser {
		tok = fc.UserToken()
	}
	p := c.product(fc.APIBaseURL, fc.CloudID, fc.InstallationID)
	if p.err == nil && tok == "" {
		p.err = noToken(fc.InstallationID, asUser)
	}
	p.token = tok
	return p
}

// AsApp returns calls for installationID with the app system token
// cached from its latest Forge call: for background work after the
// request ended (events, triggers and jobs).
func (c *Client) AsApp(ctx context.Context, installationID string) (*Product, error) {
	return c.cached(ctx, installationID, SystemTokenKey(installationID), false)
}

// AsUser returns calls for installationID acting as accountID, with the
// user token cached from that user's latest Forge call.
func (c *Client) AsUser(ctx context.Context, installationID, accountID string) (*Product, error) {
	if accountID == "" {
		return nil, errors.New("forge: AsUser needs an accountId")
	}
	return c.cached(ctx, installationID, UserTokenKey(installationID, accountID), true)
}

func (c *Client) cached(ctx context.Context, installationID, key string, user bool) (*Product, error) {
	if c.tokens == nil || c.installs == nil {
		return nil, errors.New("forge: ClientOptions.Tokens and Installations are needed for AsApp and AsUser (pass the Store)")
	}
	in, err := c.installs.ForgeInstallation(ctx, installationID)
	if err != nil {
		return nil, err
	}
	tok, _, err := c.tokens.Token(ctx, key, c.now().Add(tokenMargin))
	if err != nil {
		if tenon.ErrorCode(err) == tenon.ENOTFOUND {
			return nil, noToken(installationID, user)
		}
		return nil, fmt.Errorf("forge: reading the token cache: %w", err)
	}
	p := c.product(in.APIBaseURL, in.CloudID, installationID)
	if p.err != nil {
		return nil, p.err
	}
	p.token, p.cacheKey = tok, key
	return p, nil
}

func noToken(installationID string, user bool) error {
	kind := "system"
	if user {
		kind = "user"
	}
	return tenon.WrapError(tenon.EUNAVAILABLE, "The app has no valid Atlassian token for this site yet; try again later.",
		fmt.Errorf("%w: no %s token for %s", ErrNoToken, kind, installationID))
}

// product checks apiBaseUrl; it came in a verified token, but the client
// sends a credential there, so it is checked again.
func (c *Client) product(apiBaseURL, cloudID, installationID string) *Product {
	p := &Product{c: c}
	if err := checkAPIBaseURL(apiBaseURL, c.allowHTTP); err != nil {
		p.err = fmt.Errorf("forge: installation %s: %w", installationID, err)
		return p
	}
	u, _ := url.Parse(apiBaseURL)
	p.base = &url.URL{Scheme: u.Scheme, Host: u.Host}
	p.basePath = strings.TrimRight(u.EscapedPath(), "/")
	site := cloudID
	if site == "" {
		site = installationID
	}
	product, _ := splitAPIBaseURL(apiBaseURL)
	if product == "" {
		product = "forge"
	}
	p.target = hostclient.Target{Site: "forge:" + site, Product: product}
	return p
}

// Do sends one request with the bearer token. path is relative to
// app.apiBaseUrl and may carry a query ("/rest/api/3/issue/PROJ-1"); it
// must be percent-encoded, and anything that could leave apiBaseUrl
// (another host, dot segments) is refused. hdr is added, except
// Authorization. The response is returned for any status after the
// Resilience's retries; its body is bounded and must be closed. Redirects
// are not followed. Failures without an answer are EUNAVAILABLE.
func (p *Product) Do(ctx context.Context, method, path string, body io.Reader, hdr http.Header) (*http.Response, error) {
	if p.err != nil {
		return nil, p.err
	}
	if method == "" || strings.ToUpper(method) != method || strings.ContainsAny(method, " \t/") {
		return nil, fmt.Errorf("forge: %q is not an HTTP method", method)
	}
	if body != nil && (method == http.MethodGet || method == http.MethodHead) {
		return nil, fmt.Errorf("forge: %s takes no body", method)
	}
	rawPath, rawQuery, err := checkPath(path)
	if err != nil {
		return nil, err
	}
	full := p.basePath + rawPath
	u := &url.URL{Scheme: p.base.Scheme, Host: p.base.Host, RawQuery: rawQuery}
	if u.Path, err = url.PathUnescape(full); err != nil {
		return nil, fmt.Errorf("forge: %s %s: malformed escape: %w", method, rawPath, err)
	}
	u.RawPath = full
	ctx = hostclient.WithTarget(ctx, p.target)
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("forge: %s %s: %w", method, rawPath, err)
	}
	req.URL = u
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", p.c.userAgent)
	}
	resp, err := p.c.hc.Do(req)
	if err != nil {
		return nil, callError(method, rawPath, err)
	}
	if resp.StatusCode == http.StatusUnauthorized && p.cacheKey != "" {
		// The cached token was revoked or is not what its exp said: drop
		// it, so the next job waits for a fresh one instead of failing
		// the same way.
		_ = p.c.tokens.DeleteToken(context.WithoutCancel(ctx), p.cacheKey)
	}
	resp.Body = &boundedBody{rc: resp.Body, left: p.c.maxBytes}
	return resp, nil
}

// GetJSON fetches path and decodes its JSON body into v (nil discards it).
func (p *Product) GetJSON(ctx context.Context, path string, v any) error {
	return p.SendJSON(ctx, http.MethodGet, path, nil, v)
}

// SendJSON sends in as JSON (nil: no body) and decodes a 2xx JSON answer
// into out. A non-2xx answer is a *tenon.Error with the code a handler can
// pass on (400/422 EINVALID, 401 EUNAUTHORIZED, 403 EFORBIDDEN, 404
// ENOTFOUND, 409 ECONFLICT, 429 and 5xx EUNAVAILABLE, else EINTERNAL)
// whose cause is a *hostclient.APIError, as for Connect calls.
func (p *Product) SendJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	hdr := http.Header{"Accept": {"application/json"}}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("forge: %s %s: encoding the request: %w", method, pathOnly(path), err)
		}
		body = bytes.NewReader(b)
		hdr.Set("Content-Type", "application/json")
	}
	resp, err := p.Do(ctx, method, path, body, hdr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return p.errorFor(method, path, resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent || method == http.MethodHead {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return tenon.WrapError(tenon.EUNAVAILABLE, "The product's response could not be read.",
			fmt.Errorf("forge: %s %s: decoding the response: %w", method, pathOnly(path), err))
	}
	return nil
}

func (p *Product) errorFor(method, path string, resp *http.Response) error {
	return hostclient.ResponseError(p.target.Site, method, path, resp, p.c.now())
}

// callError gives a failure without an answer its tenon code. The URL of
// http.Client's error is dropped: its query can hold user data.
func callError(method, rawPath string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	err = fmt.Errorf("forge: %s %s: %w", method, rawPath, err)
	var rl *hostclient.RateLimitedError
	var un *hostclient.UnavailableError
	switch {
	case errors.As(err, &rl):
		return tenon.WrapError(tenon.EUNAVAILABLE, "The product is rate limiting the app; try again later.", err)
	case errors.As(err, &un) && un.Reason == hostclient.ReasonBreakerOpen:
		return tenon.WrapError(tenon.EUNAVAILABLE, "The product is unavailable; try again later.", err)
	case errors.As(err, &un) && (un.Reason == hostclient.ReasonTimeout || un.Reason == hostclient.ReasonBusy):
		return tenon.WrapError(tenon.EUNAVAILABLE, "The product did not answer in time.", err)
	}
	return tenon.WrapError(tenon.EUNAVAILABLE, "The product could not be reached.", err)
}

// checkPath accepts only an absolute, percent-encoded path with an
// optional query, relative to apiBaseUrl: nothing that names another host
// or climbs out of the base path.
func checkPath(target string) (rawPath, rawQuery string, err error) {
	bad := func(why string) error {
		return fmt.Errorf("forge: refusing path %q: %s", pathOnly(target), why)
	}
	switch {
	case target == "" || target[0] != '/':
		return "", "", bad("it must start with '/' and be relative to app.apiBaseUrl")
	case strings.HasPrefix(target, "//"):
		return "", "", bad("a path starting with // names another host")
	case strings.ContainsAny(target, "\\#"):
		return "", "", bad("backslashes and fragments are not allowed")
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c >= 0x7f {
			return "", "", bad("it must be percent-encoded")
		}
	}
	rawPath, rawQuery, _ = strings.Cut(target, "?")
	for seg := range strings.SplitSeq(rawPath, "/") {
		s, err := url.PathUnescape(seg)
		if err != nil {
			return "", "", bad("it has a malformed escape")
		}
		if s == "." || s == ".." || strings.ContainsAny(s, "/\\") {
			return "", "", bad("dot segments and encoded slashes are not allowed")
		}
	}
	return rawPath, rawQuery, nil
}

func pathOnly(target string) string {
	p, _, _ := strings.Cut(target, "?")
	return p
}

// boundedBody fails a read past the limit instead of truncating.
type boundedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, hostclient.ErrResponseTooLarge
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

func (b *boundedBody) Close() error { return b.rc.Close() }
