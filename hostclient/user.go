package hostclient

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/sync/singleflight"

	"github.com/tenon-dev/tenon"
)

// DefaultAuthServerURL is Atlassian's OAuth 2.0 authorization server for
// the JWT-bearer grant of Connect apps.
const DefaultAuthServerURL = "https://oauth-2-authorization-server.services.atlassian.com"

const (
	jwtBearerGrant     = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	assertionLifetime  = 60 * time.Second
	defaultRefresh     = 60 * time.Second
	defaultTokenTO     = 10 * time.Second
	maxTokenResponse   = 64 << 10
	maxMemoryTokens    = 10000
	maxAccountIDLength = 256
	userTokenKeyPrefix = "hostclient:user:v1:"
)

// AsUser returns the tenant of in acting as the user accountID, with the
// given scopes (e.g. "READ", "WRITE"; none means every scope of the app).
// Calls carry a bearer token from the OAuth 2.0 JWT-bearer grant: the
// assertion is signed with the tenant's shared secret and names the
// installation's oauthClientId, so the app needs the ACT_AS_USER scope.
//
// Tokens are cached per tenant, user and scopes in Options.Tokens (so
// nodes share them and restarts keep them) and in memory, and replaced
// Options.TokenRefreshBefore before they expire. Concurrent calls needing
// the same token wait for one request to the authorization server. A 401
// from the product drops the token, so the next call fetches a new one.
func (c *Client) AsUser(in *tenon.Installation, accountID string, scopes ...string) *Tenant {
	t := c.AsApp(in)
	if t.err != nil {
		return t
	}
	switch {
	case c.users.authErr != nil:
		t.err = c.users.authErr
		return t
	case t.oauthID == "":
		t.err = fmt.Errorf("hostclient: tenant %q has no oauthClientId; acting as a user needs the ACT_AS_USER scope", t.clientKey)
		return t
	case !validAccountID(accountID):
		t.err = fmt.Errorf("hostclient: tenant %q: %q is not an accountId", t.clientKey, accountID)
		return t
	}
	norm, err := normalizeScopes(scopes)
	if err != nil {
		t.err = err
		return t
	}
	t.user = &userAuth{accountID: accountID, scopes: norm}
	t.user.key = userTokenKey(t, accountID, norm)
	t.accountID = accountID
	t.sign = userBearer{t: t}
	return t
}

// userBearer authorizes as a Connect user: a bearer token from the
// JWT-bearer grant, cached.
type userBearer struct{ t *Tenant }

func (s userBearer) authorization(ctx context.Context, _, _, _ string) (string, error) {
	token, err := s.t.c.users.token(ctx, s.t)
	if err != nil {
		return "", err
	}
	return "Bearer " + token, nil
}

// refused drops the token: the next call fetches a new one.
func (s userBearer) refused(ctx context.Context) { s.t.c.users.forget(ctx, s.t.user.key) }

// userAuth is the user a Tenant acts as.
type userAuth struct {
	accountID string
	scopes    []string // upper case, sorted, unique
	key       string   // the token cache key
}

// AccountID returns the user a Tenant from AsUser or ForgeAsUser acts as;
// "" for the app, and for ForgeCall, whose token names the user itself.
func (t *Tenant) AccountID() string { return t.accountID }

func validAccountID(id string) bool {
	if id == "" || len(id) > maxAccountIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

func normalizeScopes(scopes []string) ([]string, error) {
	out := make([]string, 0, len(scopes))
	for _, s := range scopes {
		for f := range strings.FieldsSeq(s) {
			f = strings.ToUpper(f)
			for i := 0; i < len(f); i++ {
				if c := f[i]; (c < 'A' || c > 'Z') && c != '_' {
					return nil, fmt.Errorf("hostclient: %q is not a scope", f)
				}
			}
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// userTokenKey names a cached token. It is a hash, so the cache (a
// database table) holds no account ids, and fixed-length whatever the
// inputs. Everything that makes a token differ is in it: the tenant and
// its OAuth client, the site, the user and the scopes.
func userTokenKey(t *Tenant, accountID string, scopes []string) string {
	h := sha256.New()
	for _, part := range []string{t.clientKey, t.oauthID, t.baseURL, accountID, strings.Join(scopes, " ")} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return userTokenKeyPrefix + hex.EncodeToString(h.Sum(nil))
}

// userTokens fetches and caches user tokens for a Client.
type userTokens struct {
	c          *Client
	store      tenon.TokenCache // nil: memory only
	authServer string           // without trailing '/'
	authErr    error            // why the configured server cannot be used
	refresh    time.Duration
	timeout    time.Duration
	log        *slog.Logger
	group      singleflight.Group

	mu  sync.Mutex
	mem map[string]memToken
}

type memToken struct {
	token     string
	refreshAt time.Time // replaced from then on
}

func newUserTokens(c *Client, opts Options) *userTokens {
	u := &userTokens{c: c, store: opts.Tokens, refresh: opts.TokenRefreshBefore, timeout: opts.TokenTimeout,
		log: opts.Logger, mem: make(map[string]memToken)}
	if u.refresh <= 0 {
		u.refresh = defaultRefresh
	}
	if u.timeout <= 0 {
		u.timeout = defaultTokenTO
	}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	u.authServer = strings.TrimRight(opts.AuthServerURL, "/")
	if u.authServer == "" {
		u.authServer = DefaultAuthServerURL
	}
	u.authErr = checkAuthServer(u.authServer)
	return u
}

// checkAuthServer accepts https, and http only on loopback: the assertion
// is a credential.
func checkAuthServer(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("hostclient: the authorization server URL %q is not an absolute URL without query", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if tenon.LoopbackHost(u.Hostname()) {
			return nil
		}
	}
	return fmt.Errorf("hostclient: the authorization server URL %q must be https (http only on loopback)", raw)
}

// token returns a bearer token for t's user.
func (u *userTokens) token(ctx context.Context, t *Tenant) (string, error) {
	key := t.user.key
	if tok, ok := u.fromMemory(key, u.c.now()); ok {
		return tok, nil
	}
	// One fetch per key at a time. It runs detached from this caller, so
	// a caller giving up does not fail the others waiting for it; it is
	// bounded by the token timeout instead.
	ch := u.group.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), u.timeout)
		defer cancel()
		return u.fetch(fctx, t)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return "", &UnavailableError{Site: u.authServer, Reason: ReasonTimeout, Err: ctx.Err()}
		}
		return "", ctx.Err()
	}
}

func (u *userTokens) fromMemory(key string, now time.Time) (string, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	m, ok := u.mem[key]
	if !ok || !now.Before(m.refreshAt) {
		return "", false
	}
	return m.token, true
}

func (u *userTokens) remember(key, token string, expiresAt, now time.Time) {
	// A token that lives less than twice the refresh margin is replaced
	// half-way through its life instead of at once.
	refreshAt := expiresAt.Add(-min(u.refresh, expiresAt.Sub(now)/2))
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.mem) >= maxMemoryTokens {
		for k, m := range u.mem {
			if !now.Before(m.refreshAt) {
				delete(u.mem, k)
			}
		}
		// Still full of live tokens: drop some; they are in the store.
		for k := range u.mem {
			if len(u.mem) < maxMemoryTokens*9/10 {
				break
			}
			delete(u.mem, k)
		}
	}
	u.mem[key] = memToken{token: token, refreshAt: refreshAt}
}

// forget drops a token the product refused.
func (u *userTokens) forget(ctx context.Context, key string) {
	u.mu.Lock()
	delete(u.mem, key)
	u.mu.Unlock()
	if u.store == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), u.timeout)
	defer cancel()
	if err := u.store.DeleteToken(ctx, key); err != nil {
		u.log.WarnContext(ctx, "hostclient: dropping a refused user token from the cache failed", "err", err)
	}
}

// fetch finds a token in the store (another node may have fetched it) or
// asks the authorization server, and caches it.
func (u *userTokens) fetch(ctx context.Context, t *Tenant) (string, error) {
	key := t.user.key
	now := u.c.now()
	if u.store != nil {
		tok, exp, err := u.store.Token(ctx, key, now)
		switch {
		case err == nil && exp.Sub(now) > u.refresh:
			u.remember(key, tok, exp, now)
			return tok, nil
		case err != nil && tenon.ErrorCode(err) != tenon.ENOTFOUND:
			// The store is only a cache: carry on without it.
			u.log.WarnContext(ctx, "hostclient: reading the user token cache failed", "client_key", t.clientKey, "err", err)
		}
	}
	tok, exp, err := u.request(ctx, t, now)
	if err != nil {
		return "", err
	}
	if u.store != nil {
		if err := u.put(ctx, t, key, tok, exp); err != nil {
			u.log.WarnContext(ctx, "hostclient: storing a user token failed", "client_key", t.clientKey, "err", err)
		}
	}
	u.remember(key, tok, exp, now)
	return tok, nil
}

// put caches a user token in the store, naming its owner when the store
// keeps owners, so erasing a closed account or purging the tenant finds
// the token under its hashed key.
func (u *userTokens) put(ctx context.Context, t *Tenant, key, tok string, exp time.Time) error {
	if owned, ok := u.store.(tenon.OwnedTokenCache); ok {
		return owned.PutOwnedToken(ctx, key, tenon.TokenOwner{ClientKey: t.clientKey, AccountID: t.user.accountID}, tok, exp)
	}
	return u.store.PutToken(ctx, key, tok, exp)
}

// userAssertion is the JWT the app trades for a user token (PROTOCOL §5).
type userAssertion struct {
	Issuer    string `json:"iss"`
	Subject   string `json:"sub"`
	Tenant    string `json:"tnt"`
	Audience  string `json:"aud"`
	IssuedAt  int64  `json:"iat"`
	ExpiresAt int64  `json:"exp"`
}

// GetExpirationTime and the rest make userAssertion a jwt.Claims; only
// signing uses them.
func (a userAssertion) GetExpirationTime() (*jwt.NumericDate, error) {
	return jwt.NewNumericDate(time.Unix(a.ExpiresAt, 0)), nil
}
func (a userAssertion) GetIssuedAt() (*jwt.NumericDate, error) {
	return jwt.NewNumericDate(time.Unix(a.IssuedAt, 0)), nil
}
func (a userAssertion) GetNotBefore() (*jwt.NumericDate, error) { return nil, nil }
func (a userAssertion) GetIssuer() (string, error)              { return a.Issuer, nil }
func (a userAssertion) GetSubject() (string, error)             { return a.Subject, nil }
func (a userAssertion) GetAudience() (jwt.ClaimStrings, error) {
	return jwt.ClaimStrings{a.Audience}, nil
}

// request runs the JWT-bearer grant for t's user.
func (u *userTokens) request(ctx context.Context, t *Tenant, now time.Time) (string, time.Time, error) {
	assertion, err := jwt.NewWithClaims(jwt.SigningMethodHS256, userAssertion{
		Issuer:    "urn:atlassian:connect:clientid:" + t.oauthID,
		Subject:   "urn:atlassian:connect:useraccountid:" + t.user.accountID,
		Tenant:    t.baseURL,
		Audience:  u.authServer,
		IssuedAt:  now.Unix(),
		ExpiresAt: now.Add(assertionLifetime).Unix(),
	}).SignedString(t.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("hostclient: signing the user assertion for tenant %q: %w", t.clientKey, err)
	}
	form := url.Values{"grant_type": {jwtBearerGrant}, "assertion": {assertion}}
	if len(t.user.scopes) > 0 {
		form.Set("scope", strings.Join(t.user.scopes, " "))
	}
	// The grant has no effect but issuing a token, so it may be retried.
	ctx = MarkIdempotent(WithTarget(ctx, Target{Site: u.authServer, Product: "oauth"}))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.authServer+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("hostclient: token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", u.c.userAgent)
	resp, err := u.c.rt.RoundTrip(req)
	if err != nil {
		return "", time.Time{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse))
	if err != nil {
		return "", time.Time{}, &UnavailableError{Site: u.authServer, Reason: ReasonUnreachable, Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		return "", time.Time{}, u.refusal(resp, body, now)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		TokenType   string `json:"token_type"`
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" || tr.ExpiresIn <= 0 ||
		!strings.EqualFold(tr.TokenType, "bearer") || !validToken(tr.AccessToken) {
		return "", time.Time{}, &UnavailableError{Site: u.authServer, Reason: ReasonStatus,
			Err: errors.New("hostclient: the authorization server's answer is not a bearer token response")}
	}
	return tr.AccessToken, now.Add(time.Duration(tr.ExpiresIn) * time.Second), nil
}

// validToken keeps a token that could split a header line out of one.
func validToken(tok string) bool {
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

func (u *userTokens) refusal(resp *http.Response, body []byte, now time.Time) error {
	var oe struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(body, &oe)
	te := &TokenError{Status: resp.StatusCode, Code: oe.Error,
		Description: strings.ToValidUTF8(truncate(oe.Description, excerptBytes), "\uFFFD")}
	switch s := resp.StatusCode; {
	case s == http.StatusTooManyRequests:
		var until time.Time
		if ra := RetryAfter(resp.Header, now); ra > 0 {
			until = now.Add(ra)
		}
		return &RateLimitedError{Site: u.authServer, Until: until, Reason: resp.Header.Get("RateLimit-Reason"), Err: te}
	case s >= 500 || s < 400:
		return &UnavailableError{Site: u.authServer, Reason: ReasonStatus, Err: te}
	}
	return te
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
