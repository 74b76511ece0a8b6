// Package forge verifies Forge Invocation Tokens (FITs), the bearer
// tokens Atlassian Forge sends with every call to a Forge Remote backend:
// UI invocations (invokeRemote, requestRemote), product and lifecycle
// events, and scheduled triggers.
//
// A FIT is a JWS signed RS256 by Atlassian. Its key is chosen by kid from
// a JWKS whose URL is pinned per environment (ProductionJWKSURL,
// StagingJWKSURL, or a configured URL for tests); nothing in a request can
// point the verifier at another key set. The claims that must hold: iss
// "forge/invocation-token", aud the app's id, exp in the future, nbf and
// iat not in the future, a jti, and the installation the call is for.
//
// JWKS keeps the key set: fetched on first use, refreshed in the
// background by Run (or on a lookup when nobody runs it), refetched at
// most once per MinRefetchInterval when a token names a kid it does not
// know, and distrusted altogether once it is older than MaxAge without a
// successful refresh, so verification fails closed while the key set
// cannot be fetched.
//
// The package also checks the OAuth tokens Forge sends along
// (x-forge-oauth-system, x-forge-oauth-user) and reads their expiry. It
// verifies and parses only, like connectjwt: calls to the product with
// those tokens are hostclient's (Client.ForgeCall, ForgeAsApp).
package forge

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tenon-dev/tenon"
)

// Atlassian's JWKS for Forge Invocation Tokens, one per environment.
const (
	ProductionJWKSURL = "https://forge.cdn.prod.atlassian-dev.net/.well-known/jwks.json"
	StagingJWKSURL    = "https://forge.cdn.stg.atlassian-dev.net/.well-known/jwks.json"
)

// Issuer is the iss of every Forge Invocation Token.
const Issuer = "forge/invocation-token"

// MaxLeeway is the largest clock skew a Verifier tolerates. A FIT lives
// about 25 seconds; more leeway would more than double that.
const MaxLeeway = 30 * time.Second

// maxTokenBytes bounds a token before it is decoded. FITs carry the
// module's context and run to a few KiB; the header limit of the HTTP
// server bounds them anyway.
const maxTokenBytes = 64 << 10

// Errors of Verify, for errors.Is. ErrKeyUnavailable is the only one that
// is not the caller's fault: the key set could not be fetched, and the
// call should be retried later.
var (
	ErrMalformed      = errors.New("forge: malformed token")
	ErrAlgorithm      = errors.New("forge: algorithm not accepted (RS256 only)")
	ErrSignature      = errors.New("forge: signature does not verify")
	ErrIssuer         = errors.New("forge: wrong issuer")
	ErrAudience       = errors.New("forge: token is not addressed to this app")
	ErrExpired        = errors.New("forge: token expired")
	ErrNotYetValid    = errors.New("forge: token not valid yet (nbf)")
	ErrIssuedInFuture = errors.New("forge: token issued in the future (iat)")
	ErrMissingClaim   = errors.New("forge: required claim missing")
	ErrKeyNotFound    = errors.New("forge: signing key (kid) not in the JWKS")
	ErrKeyUnavailable = errors.New("forge: the JWKS cannot be fetched")
)

// KeySource resolves the kid of a FIT to a public key. JWKS implements it.
// It returns ErrKeyNotFound (wrapped) for a kid the key set does not have
// and ErrKeyUnavailable (wrapped) when it cannot tell.
type KeySource interface {
	PublicKey(ctx context.Context, kid string) (*rsa.PublicKey, error)
}

// appIDPattern is the shape of a Forge app id.
var appIDPattern = regexp.MustCompile(`^ari:cloud:ecosystem::app/[0-9A-Za-z-]{1,64}$`)

// installationIDPrefix starts every installation id.
const installationIDPrefix = "ari:cloud:ecosystem::installation/"

// ValidAppID reports whether id looks like a Forge app id
// (ari:cloud:ecosystem::app/<uuid>).
func ValidAppID(id string) bool { return appIDPattern.MatchString(id) }

// VerifierOptions configure a Verifier.
type VerifierOptions struct {
	// AppID is the app's id, ari:cloud:ecosystem::app/<uuid>, as in its
	// manifest. Tokens must carry it as aud. Required.
	AppID string
	// Keys resolves kids: a JWKS on the environment's pinned URL. Required.
	Keys KeySource
	// Now is the clock for exp, nbf and iat. Default time.Now.
	Now func() time.Time
	// Leeway is the clock skew tolerated on exp, nbf and iat; at most
	// MaxLeeway.
	Leeway time.Duration
	// AllowHTTP accepts an http:// app.apiBaseUrl on a loopback host
	// (tenon.LoopbackHost), for a fake product in development. Atlassian's
	// are always https; http elsewhere is refused even with AllowHTTP.
	AllowHTTP bool
}

// Verifier checks Forge Invocation Tokens for one app. It is safe for
// concurrent use.
type Verifier struct {
	appID     string
	keys      KeySource
	now       func() time.Time
	allowHTTP bool
	leeway    time.Duration
	parser    *jwt.Parser
}

// NewVerifier returns a Verifier, or an error naming the option to fix.
func NewVerifier(opts VerifierOptions) (*Verifier, error) {
	if !ValidAppID(opts.AppID) {
		return nil, fmt.Errorf("forge: app id %q is not of the form ari:cloud:ecosystem::app/<uuid> (the app.id of manifest.yml)", opts.AppID)
	}
	if opts.Keys == nil {
		return nil, errors.New("forge: VerifierOptions.Keys is nil: use a JWKS on the environment's pinned URL")
	}
	if opts.Leeway < 0 || opts.Leeway > MaxLeeway {
		return nil, fmt.Errorf("forge: leeway %v is out of range: use 0 to %v", opts.Leeway, MaxLeeway)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	v := &Verifier{appID: opts.AppID, keys: opts.Keys, now: opts.Now, allowHTTP: opts.AllowHTTP, leeway: opts.Leeway}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}),
		jwt.WithIssuer(Issuer),
		jwt.WithAudience(opts.AppID),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(closedWindow(opts.Leeway)),
		jwt.WithTimeFunc(opts.Now),
	)
	return v, nil
}

// closedWindow turns a leeway into the one the JWT parser needs for a
// closed window on whole-second claims, as connectjwt applies it: the
// parser accepts now < exp+leeway, so one more second accepts every instant
// of the second exp+leeway too — a token that expired exactly leeway ago.
// No leeway stays none: exp itself is too late. The extra second would
// also widen the parser's iat and nbf checks; check narrows them back.
func closedWindow(leeway time.Duration) time.Duration {
	if leeway <= 0 {
		return 0
	}
	return leeway + time.Second
}

// AppID returns the app id tokens must be addressed to.
func (v *Verifier) AppID() string { return v.appID }

// Claims are the verified claims of a Forge Invocation Token.
type Claims struct {
	ID        string // jti
	Issuer    string
	Audience  []string
	IssuedAt  time.Time
	NotBefore time.Time // zero when the token has none
	ExpiresAt time.Time
	App       App
	// Context is the token's context claim as sent: the UI module's
	// context (cloudId, siteUrl, moduleKey, extension, ...), absent for
	// events and scheduled triggers.
	Context json.RawMessage
	// Principal is the accountId of the user who invoked a UI module; ""
	// for events and triggers.
	Principal string

	cloudID, siteURL string // from Context
}

// App is the token's app claim.
type App struct {
	ID             string                 `json:"id"`
	Version        string                 `json:"version"`
	AppVersion     string                 `json:"appVersion"`
	InstallationID string                 `json:"installationId"`
	APIBaseURL     string                 `json:"apiBaseUrl"`
	Environment    tenon.ForgeEnvironment `json:"environment"`
	Module         Module                 `json:"module"`
	// License is present for paid apps in production only.
	License      json.RawMessage `json:"license,omitempty"`
	Installation struct {
		ID       string `json:"id"`
		Contexts []struct {
			Name       string `json:"name"`
			APIBaseURL string `json:"apiBaseUrl"`
		} `json:"contexts"`
	} `json:"installation"`
}

// Module names the module that made the call.
type Module struct {
	Type string `json:"type"`
	Key  string `json:"key"`
}

// fitClaims is what the parser decodes into.
type fitClaims struct {
	jwt.RegisteredClaims
	App       App             `json:"app"`
	Context   json.RawMessage `json:"context,omitempty"`
	Principal string          `json:"principal,omitempty"`
}

// Verify checks token and returns its claims. Errors wrap one of the
// package's Err values; none of them contains the token.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if token == "" || len(token) > maxTokenBytes || strings.Count(token, ".") != 2 {
		return nil, fmt.Errorf("%w: not a compact JWS of at most %d bytes", ErrMalformed, maxTokenBytes)
	}
	var c fitClaims
	keyLooked := false
	_, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		keyLooked = true
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, fmt.Errorf("%w: the token has no kid", ErrKeyNotFound)
		}
		return v.keys.PublicKey(ctx, kid)
	})
	if err != nil {
		return nil, mapError(err, keyLooked)
	}
	return v.check(&c)
}

// check applies what the parser does not know about.
func (v *Verifier) check(c *fitClaims) (*Claims, error) {
	switch {
	case c.IssuedAt == nil:
		return nil, fmt.Errorf("%w: iat", ErrMissingClaim)
	case c.ID == "" || len(c.ID) > 256:
		return nil, fmt.Errorf("%w: jti", ErrMissingClaim)
	case c.App.ID != "" && c.App.ID != v.appID:
		return nil, fmt.Errorf("%w: app.id is another app's", ErrAudience)
	case !strings.HasPrefix(c.App.InstallationID, installationIDPrefix) || len(c.App.InstallationID) > 256:
		return nil, fmt.Errorf("%w: app.installationId", ErrMissingClaim)
	case len(c.Principal) > 256:
		return nil, fmt.Errorf("%w: principal is too long", ErrMalformed)
	}
	if err := checkAPIBaseURL(c.App.APIBaseURL, v.allowHTTP); err != nil {
		return nil, err
	}
	// iat and nbf may be at most leeway ahead, in whole seconds, as in
	// connectjwt: the parser allowed one second more (closedWindow).
	if early := v.now().Add(v.leeway).Unix(); c.IssuedAt.Unix() > early {
		return nil, fmt.Errorf("%w: iat %d, now %d, leeway %s", ErrIssuedInFuture, c.IssuedAt.Unix(), v.now().Unix(), v.leeway)
	} else if c.NotBefore != nil && c.NotBefore.Unix() > early {
		return nil, fmt.Errorf("%w: nbf %d, now %d, leeway %s", ErrNotYetValid, c.NotBefore.Unix(), v.now().Unix(), v.leeway)
	}
	out := &Claims{
		ID:        c.ID,
		Issuer:    c.Issuer,
		Audience:  c.Audience,
		IssuedAt:  c.IssuedAt.Time,
		ExpiresAt: c.ExpiresAt.Time,
		App:       c.App,
		Context:   c.Context,
		Principal: c.Principal,
	}
	if c.NotBefore != nil {
		out.NotBefore = c.NotBefore.Time
	}
	if len(c.Context) > 0 {
		var f struct {
			CloudID     string `json:"cloudId"`
			WorkspaceID string `json:"workspaceId"`
			SiteURL     string `json:"siteUrl"`
		}
		if err := json.Unmarshal(c.Context, &f); err != nil {
			return nil, fmt.Errorf("%w: the context claim is not a JSON object", ErrMalformed)
		}
		out.cloudID, out.siteURL = f.CloudID, f.SiteURL
		if out.cloudID == "" {
			out.cloudID = f.WorkspaceID
		}
	}
	return out, nil
}

// checkAPIBaseURL accepts an absolute https URL without query, or http on
// a loopback host when allowHTTP is set. The Verifier checks the claim
// and the Client checks it again before it sends a token there.
func checkAPIBaseURL(raw string, allowHTTP bool) error {
	if raw == "" {
		return fmt.Errorf("%w: app.apiBaseUrl", ErrMissingClaim)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		(u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%w: app.apiBaseUrl is not an absolute https URL", ErrMalformed)
	}
	// Plain http only to a product on this machine: the app's OAuth
	// tokens go to this URL.
	if u.Scheme == "http" && !(allowHTTP && tenon.LoopbackHost(u.Hostname())) {
		return fmt.Errorf("%w: app.apiBaseUrl must be https (http only on a loopback host, with AllowHTTP)", ErrMalformed)
	}
	return nil
}

// mapError turns a parser error into one of the package's errors. The
// parser rejects an algorithm outside RS256 before it asks for a key, so
// a refusal without a key lookup that is not about the token's shape is
// about its algorithm.
func mapError(err error, keyLooked bool) error {
	for _, own := range []error{ErrKeyUnavailable, ErrKeyNotFound} {
		if errors.Is(err, own) {
			return err
		}
	}
	var target error
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		target = ErrMalformed
	case !keyLooked:
		target = ErrAlgorithm
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		target = ErrSignature
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		target = ErrMissingClaim
	case errors.Is(err, jwt.ErrTokenExpired):
		target = ErrExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		target = ErrNotYetValid
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		target = ErrIssuedInFuture
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		target = ErrIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		target = ErrAudience
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		target = ErrMalformed
	default:
		target = ErrMalformed
	}
	return fmt.Errorf("%w: %v", target, err)
}

// CloudID returns the site the call is for: context.cloudId (or the
// Bitbucket workspaceId) when the token has a context, otherwise the last
// segment of app.apiBaseUrl (…/ex/<product>/<cloudId>). "" when neither
// says.
func (c *Claims) CloudID() string {
	if c.cloudID != "" {
		return c.cloudID
	}
	_, id := splitAPIBaseURL(c.App.APIBaseURL)
	return id
}

// SiteURL returns context.siteUrl, or "".
func (c *Claims) SiteURL() string { return c.siteURL }

// Product returns the product of app.apiBaseUrl (…/ex/<product>/<id>),
// e.g. "jira" or "confluence"; "" when the URL has another shape.
func (c *Claims) Product() string {
	p, _ := splitAPIBaseURL(c.App.APIBaseURL)
	return p
}

// LicenseActive reads app.license.isActive: "active", "none", or "" when
// the token carries no license (free apps, development and staging).
func (c *Claims) LicenseActive() string {
	if len(c.App.License) == 0 {
		return ""
	}
	var l struct {
		IsActive *bool `json:"isActive"`
	}
	if json.Unmarshal(c.App.License, &l) != nil || l.IsActive == nil {
		return ""
	}
	if *l.IsActive {
		return tenon.LicenseActive
	}
	return tenon.LicenseNone
}

// splitAPIBaseURL returns product and id of …/ex/<product>/<id>.
func splitAPIBaseURL(raw string) (product, id string) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", ""
	}
	segs := strings.Split(strings.Trim(u.Path, "/"), "/")
	n := len(segs)
	if n < 3 || segs[n-3] != "ex" {
		return "", ""
	}
	return segs[n-2], segs[n-1]
}

// Installation returns the installation record the claims describe, with
// no tenant key (the store decides it).
func (c *Claims) Installation() *tenon.ForgeInstallation {
	return &tenon.ForgeInstallation{
		InstallationID: c.App.InstallationID,
		AppID:          c.App.ID,
		CloudID:        c.CloudID(),
		APIBaseURL:     c.App.APIBaseURL,
		SiteURL:        c.SiteURL(),
		Product:        c.Product(),
		Environment:    c.App.Environment,
	}
}
