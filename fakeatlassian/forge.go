package fakeatlassian

import (
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Forge Remote: the fake plays the Forge platform for an app whose
// backend is self-hosted. It publishes a JWKS, installs Forge apps on its
// sites, and calls the app's remote with Forge Invocation Tokens (FITs):
// UI invocations, product events and scheduled triggers, each with app
// system and user OAuth tokens, which its api.atlassian.com-style REST
// mock (/ex/<product>/<cloudId>/rest/...) accepts as Bearer tokens.
//
// The signing is the fake's own (golang-jwt), independent of tenon's
// verifier.

const (
	forgeJWKSPath      = "/forge/.well-known/jwks.json"
	forgeIssuer        = "forge/invocation-token"
	fitLifetime        = 25 * time.Second
	forgeSystemLife    = 2 * time.Hour // scheduled triggers guarantee at least this
	forgeUserLife      = time.Hour
	forgeEventTimeout  = 5 * time.Second  // Forge's budget for events and triggers
	forgeInvokeTimeout = 25 * time.Second // and for UI invocations
	forgeMaxRetries    = 4
	// Forge environment types.
	ForgeDevelopment = "DEVELOPMENT"
	ForgeStaging     = "STAGING"
	ForgeProduction  = "PRODUCTION"
)

// forgeState is the Forge side of the fake. Guarded by Fake.mu.
type forgeState struct {
	appID    string                   // the default app id, created on first use
	keys     []*installKey            // FIT signing keys, oldest first; the last signs
	installs map[string]*forgeInstall // by installation id, uninstalled ones included
	current  map[string]*forgeInstall // site name + "\x00" + app id → live installation
	grants   map[string]*forgeGrant   // OAuth token → grant
	oauthKey []byte                   // signs the OAuth tokens (apps cannot verify them)
}

// forgeInstall is one installation of a Forge app on a site.
type forgeInstall struct {
	id            string
	appID         string
	site          string
	remoteBaseURL string
	envType       string
	envID         string
	scopes        []string
	license       *bool
	licenseAPI    string // what the License API answers; "" follows license
	appAccountID  string // the app's own user, acting for system tokens
	uninstalled   bool
}

// forgeGrant is what a Forge OAuth token stands for.
type forgeGrant struct {
	site           string
	installationID string
	accountID      string // "" for the system token
	expires        time.Time
}

// ForgeInstallOptions describe a Forge app installed on a site.
type ForgeInstallOptions struct {
	// AppID is the app's id, ari:cloud:ecosystem::app/<uuid>. Default
	// ForgeAppID().
	AppID string
	// RemoteBaseURL is the baseUrl of the manifest's remote: where the
	// fake sends invocations, events and triggers. Required.
	RemoteBaseURL string
	// Environment is ForgeDevelopment, ForgeStaging or ForgeProduction
	// (default).
	Environment string
	// Scopes are the Connect-style scopes (READ, WRITE, DELETE, ...) the
	// REST mock grants the app's tokens. Default READ and WRITE.
	Scopes []string
	// License sets app.license.isActive in FITs; nil leaves the claim
	// out, as Forge does for free apps and outside production.
	License *bool
}

// ForgeInstallation is a Forge app installed on a site, as the app sees
// it in its tokens.
type ForgeInstallation struct {
	InstallationID  string `json:"installationId"`
	AppID           string `json:"appId"`
	Site            string `json:"site"`
	CloudID         string `json:"cloudId"`
	SiteURL         string `json:"siteUrl"`
	APIBaseURL      string `json:"apiBaseUrl"`
	RemoteBaseURL   string `json:"remoteBaseUrl"`
	EnvironmentType string `json:"environmentType"`
	EnvironmentID   string `json:"environmentId"`
	Installed       bool   `json:"installed"`
}

func (f *Fake) forgeInit() {
	f.forge.installs = map[string]*forgeInstall{}
	f.forge.current = map[string]*forgeInstall{}
	f.forge.grants = map[string]*forgeGrant{}
}

// ForgeAppID returns the id of the fake's default Forge app, created on
// first use: ari:cloud:ecosystem::app/<uuid>.
func (f *Fake) ForgeAppID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.forgeAppIDLocked()
}

func (f *Fake) forgeAppIDLocked() string {
	if f.forge.appID == "" {
		f.forge.appID = "ari:cloud:ecosystem::app/" + f.newUUID()
	}
	return f.forge.appID
}

// ForgeJWKSURL is where the fake publishes the keys of its FITs: what an
// app under test configures instead of Atlassian's JWKS.
func (f *Fake) ForgeJWKSURL() string { return f.URL() + forgeJWKSPath }

// RotateForgeKey makes a new key sign FITs from now on and returns its
// kid; earlier keys stay published.
func (f *Fake) RotateForgeKey() string {
	k := f.newInstallKey()
	f.mu.Lock()
	f.forge.keys = append(f.forge.keys, k)
	f.mu.Unlock()
	return k.kid
}

// forgeKey returns the current FIT signing key, creating the first one on
// demand.
func (f *Fake) forgeKey() *installKey {
	f.mu.Lock()
	if n := len(f.forge.keys); n > 0 {
		k := f.forge.keys[n-1]
		f.mu.Unlock()
		return k
	}
	f.mu.Unlock()
	k := f.newInstallKey()
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.forge.keys); n > 0 {
		return f.forge.keys[n-1]
	}
	f.forge.keys = append(f.forge.keys, k)
	return k
}

// serveForgeJWKS answers the JWK Set of the FIT signing keys.
func (f *Fake) serveForgeJWKS(w http.ResponseWriter, r *http.Request) {
	noteOf(r).kind = KindKeys
	f.forgeKey() // a JWKS is never empty
	f.mu.Lock()
	keys := make([]map[string]string, 0, len(f.forge.keys))
	for _, k := range f.forge.keys {
		keys = append(keys, jwkOf(k.kid, &k.key.PublicKey))
	}
	f.mu.Unlock()
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
}

func jwkOf(kid string, pub *rsa.PublicKey) map[string]string {
	return map[string]string{
		"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
}

// InstallForge installs a Forge app on site, or updates the options of
// its live installation (an upgrade keeps the installation id). After
// UninstallForge, installing again gives a new installation id, as Forge
// does.
func (f *Fake) InstallForge(site *Site, opts ForgeInstallOptions) (ForgeInstallation, error) {
	env := opts.Environment
	if env == "" {
		env = ForgeProduction
	}
	if env != ForgeDevelopment && env != ForgeStaging && env != ForgeProduction {
		return ForgeInstallation{}, fmt.Errorf("%w: Forge environment %q is not DEVELOPMENT, STAGING or PRODUCTION", ErrInvalid, env)
	}
	remote := strings.TrimRight(opts.RemoteBaseURL, "/")
	if !strings.HasPrefix(remote, "http://") && !strings.HasPrefix(remote, "https://") {
		return ForgeInstallation{}, fmt.Errorf("%w: remoteBaseUrl %q must be an absolute http(s) URL", ErrInvalid, opts.RemoteBaseURL)
	}
	scopes := opts.Scopes
	if len(scopes) == 0 {
		scopes = []string{"READ", "WRITE"}
	}
	scopes = slices.Clone(scopes)
	for i, sc := range scopes {
		scopes[i] = strings.ToUpper(sc)
		if !slices.Contains(knownScopes, scopes[i]) {
			return ForgeInstallation{}, fmt.Errorf("%w: scope %q is not one of %s", ErrInvalid, sc, strings.Join(knownScopes, ", "))
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.siteLocked(site)
	if err != nil {
		return ForgeInstallation{}, err
	}
	appID := opts.AppID
	if appID == "" {
		appID = f.forgeAppIDLocked()
	}
	if !strings.HasPrefix(appID, "ari:cloud:ecosystem::app/") {
		return ForgeInstallation{}, fmt.Errorf("%w: app id %q is not ari:cloud:ecosystem::app/<uuid>", ErrInvalid, appID)
	}
	key := s.info.Name + "\x00" + appID
	in := f.forge.current[key]
	if in == nil {
		in = &forgeInstall{
			id:           "ari:cloud:ecosystem::installation/" + f.newUUID(),
			appID:        appID,
			site:         s.info.Name,
			appAccountID: "557058:" + f.newUUID(),
		}
		f.forge.installs[in.id] = in
		f.forge.current[key] = in
	}
	if in.envType != env {
		in.envID = "ari:cloud:ecosystem::environment/" + strings.TrimPrefix(appID, "ari:cloud:ecosystem::app/") + "/" + f.newUUID()
	}
	in.remoteBaseURL, in.envType, in.scopes, in.license = remote, env, scopes, opts.License
	return f.forgeInfoLocked(s, in), nil
}

// UninstallForge uninstalls appID ("" for the default app) from site: its
// tokens stop working for product calls, the Installation Details API
// answers 404 for it, and a later InstallForge gets a new installation id.
func (f *Fake) UninstallForge(site *Site, appID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, in, err := f.forgeInstallLocked(site, appID)
	if err != nil {
		return err
	}
	in.uninstalled = true
	delete(f.forge.current, s.info.Name+"\x00"+in.appID)
	// Its tokens stay known, so the Installation Details API can answer
	// that the installation is gone; every product call refuses them
	// (verifyForgeBearerLocked).
	return nil
}

// ForgeInstallationOf returns the live installation of appID ("" for the
// default app) on site.
func (f *Fake) ForgeInstallationOf(site *Site, appID string) (ForgeInstallation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, in, err := f.forgeInstallLocked(site, appID)
	if err != nil {
		return ForgeInstallation{}, err
	}
	return f.forgeInfoLocked(s, in), nil
}

// ForgeInstallations lists every Forge installation ever made on site,
// uninstalled ones included, ordered by installation id.
func (f *Fake) ForgeInstallations(site *Site) ([]ForgeInstallation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.siteLocked(site)
	if err != nil {
		return nil, err
	}
	out := []ForgeInstallation{}
	for _, in := range f.forge.installs {
		if in.site == s.info.Name {
			out = append(out, f.forgeInfoLocked(s, in))
		}
	}
	slices.SortFunc(out, func(a, b ForgeInstallation) int { return strings.Compare(a.InstallationID, b.InstallationID) })
	return out, nil
}

func (f *Fake) forgeInstallLocked(site *Site, appID string) (*siteState, *forgeInstall, error) {
	s, err := f.siteLocked(site)
	if err != nil {
		return nil, nil, err
	}
	if appID == "" {
		appID = f.forgeAppIDLocked()
	}
	in := f.forge.current[s.info.Name+"\x00"+appID]
	if in == nil {
		return nil, nil, fmt.Errorf("%w: Forge app %q is not installed on site %q", ErrNotFound, appID, s.info.Name)
	}
	return s, in, nil
}

func (f *Fake) forgeInfoLocked(s *siteState, in *forgeInstall) ForgeInstallation {
	return ForgeInstallation{
		InstallationID: in.id, AppID: in.appID, Site: s.info.Name, CloudID: s.info.CloudID,
		SiteURL: siteRootURL(s), APIBaseURL: f.forgeAPIBaseLocked(s), RemoteBaseURL: in.remoteBaseURL,
		EnvironmentType: in.envType, EnvironmentID: in.envID, Installed: !in.uninstalled,
	}
}

// siteRootURL is the site's URL without Confluence's /wiki: Forge's siteUrl.
func siteRootURL(s *siteState) string { return strings.TrimSuffix(s.info.BaseURL, "/wiki") }

// forgeAPIBaseLocked is the site's api.atlassian.com-style base URL.
func (f *Fake) forgeAPIBaseLocked(s *siteState) string {
	return f.url + "/ex/" + s.info.Product + "/" + s.info.CloudID
}

// FITOptions shape a Forge Invocation Token.
type FITOptions struct {
	// AppID selects the installation ("" for the default app).
	AppID string
	// AccountID is the principal: the user who invoked a UI module. ""
	// means the site's default user; NoPrincipal leaves it out (events and
	// triggers).
	AccountID   string
	NoPrincipal bool
	// ModuleType and ModuleKey fill app.module. Defaults: a Jira issue
	// panel "forge-remote-panel" (Confluence: a content byline item).
	ModuleType, ModuleKey string
	// Context is the token's context claim; nil fills one in for UI
	// modules (cloudId, siteUrl, moduleKey, extension) unless NoContext.
	Context   map[string]any
	NoContext bool
	// Extension is context.extension of a filled-in context, e.g.
	// {"type":"jira:issuePanel","issue":{"key":"DEMO-1"}}.
	Extension map[string]any
}

// ForgeFIT signs a Forge Invocation Token for the installation opts
// selects on site, as Forge would send it with a call. Tests of apps in
// any language use it (through the control API) to call their remote
// directly.
func (f *Fake) ForgeFIT(site *Site, opts FITOptions) (string, error) {
	f.mu.Lock()
	s, in, err := f.forgeInstallLocked(site, opts.AppID)
	var claims jwt.MapClaims
	if err == nil {
		claims, err = f.fitClaimsLocked(s, in, opts)
	}
	f.mu.Unlock()
	if err != nil {
		return "", err
	}
	return f.signFIT(claims)
}

func (f *Fake) fitClaimsLocked(s *siteState, in *forgeInstall, opts FITOptions) (jwt.MapClaims, error) {
	now := f.now()
	moduleType, moduleKey := opts.ModuleType, opts.ModuleKey
	if moduleType == "" {
		moduleType = "jira:issuePanel"
		if s.info.Product == ProductConfluence {
			moduleType = "confluence:contentBylineItem"
		}
	}
	if moduleKey == "" {
		moduleKey = "forge-remote-panel"
	}
	apiBase := f.forgeAPIBaseLocked(s)
	app := map[string]any{
		"id":             in.appID,
		"version":        "1",
		"appVersion":     "1.0.0",
		"installationId": in.id,
		"apiBaseUrl":     apiBase,
		"environment":    map[string]any{"type": in.envType, "id": in.envID},
		"module":         map[string]any{"type": moduleType, "key": moduleKey},
		"installation": map[string]any{
			"id":       in.id,
			"contexts": []any{map[string]any{"name": s.info.Product, "apiBaseUrl": apiBase}},
		},
	}
	if in.license != nil {
		app["license"] = map[string]any{"isActive": *in.license, "type": "commercial", "billingPeriod": "MONTHLY", "isEvaluation": false}
	}
	claims := jwt.MapClaims{
		"iss": forgeIssuer,
		"aud": in.appID,
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(fitLifetime).Unix(),
		"jti": f.randomHex(20),
		"app": app,
	}
	if !opts.NoPrincipal {
		account := opts.AccountID
		if account == "" {
			account = s.info.DefaultAccountID
		}
		if !s.knowsAccount(account) {
			return nil, fmt.Errorf("%w: no user %q on site %q", ErrNotFound, account, s.info.Name)
		}
		claims["principal"] = account
	}
	switch {
	case opts.Context != nil:
		claims["context"] = opts.Context
	case !opts.NoContext:
		ctx := map[string]any{
			"cloudId":   s.info.CloudID,
			"siteUrl":   siteRootURL(s),
			"moduleKey": moduleKey,
			"localId":   f.newUUID(),
		}
		ext := opts.Extension
		if ext == nil {
			ext = map[string]any{"type": moduleType}
		}
		ctx["extension"] = ext
		claims["context"] = ctx
	}
	return claims, nil
}

func (f *Fake) signFIT(claims jwt.MapClaims) (string, error) {
	k := f.forgeKey()
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = k.kid
	tok, err := t.SignedString(k.key)
	if err != nil {
		return "", fmt.Errorf("fakeatlassian: sign FIT: %w", err)
	}
	return tok, nil
}

// forgeTokenLocked issues an OAuth token for the installation: the app's
// system token (accountID "") or a user's. The app must treat it as
// opaque; it is a JWT only so its exp can be read, as Forge's are.
func (f *Fake) forgeTokenLocked(s *siteState, in *forgeInstall, accountID string, life time.Duration) (string, error) {
	if f.forge.oauthKey == nil {
		f.forge.oauthKey = f.randomBytes(32)
	}
	now := f.now()
	sub := accountID
	if sub == "" {
		sub = in.appAccountID
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "https://fake.atlassian/forge/oauth",
		"sub": sub,
		"aud": "api.atlassian.com",
		"iat": now.Unix(),
		"exp": now.Add(life).Unix(),
		"jti": f.randomHex(12),
	}).SignedString(f.forge.oauthKey)
	if err != nil {
		return "", fmt.Errorf("fakeatlassian: sign Forge OAuth token: %w", err)
	}
	f.forge.grants[tok] = &forgeGrant{site: s.info.Name, installationID: in.id, accountID: accountID, expires: now.Add(life)}
	return tok, nil
}

// ForgeTokens issues a system token and, for accountID ("" for none), a
// user token for the installation of appID on site: what Forge sends in
// x-forge-oauth-system and x-forge-oauth-user.
func (f *Fake) ForgeTokens(site *Site, appID, accountID string) (system, user string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, in, err := f.forgeInstallLocked(site, appID)
	if err != nil {
		return "", "", err
	}
	if system, err = f.forgeTokenLocked(s, in, "", forgeSystemLife); err != nil {
		return "", "", err
	}
	if accountID != "" {
		if !s.knowsAccount(accountID) {
			return "", "", fmt.Errorf("%w: no user %q on site %q", ErrNotFound, accountID, s.info.Name)
		}
		if user, err = f.forgeTokenLocked(s, in, accountID, forgeUserLife); err != nil {
			return "", "", err
		}
	}
	return system, user, nil
}

// verifyForgeBearer checks a Forge OAuth token on a request to site s.
func (f *Fake) verifyForgeBearerLocked(s *siteState, token string) (*caller, string) {
	g := f.forge.grants[token]
	switch {
	case g == nil:
		return nil, "the access token is unknown or revoked"
	case !f.now().Before(g.expires):
		return nil, "the access token has expired"
	case g.site != s.info.Name:
		return nil, "the access token belongs to another site"
	}
	in := f.forge.installs[g.installationID]
	if in == nil || in.uninstalled {
		return nil, "the app is not installed on this site"
	}
	account := g.accountID
	if account == "" {
		account = in.appAccountID
	}
	return &caller{appKey: in.appID, accountID: account, scopes: slices.Clone(in.scopes), auth: "bearer"}, ""
}

// serveForgeAPI is the api.atlassian.com-style REST API:
// /ex/<product>/<cloudId>/rest/... with a Forge OAuth token as Bearer.
func (f *Fake) serveForgeAPI(w http.ResponseWriter, r *http.Request) {
	note := noteOf(r)
	note.kind = KindREST
	product, cloudID := r.PathValue("product"), r.PathValue("cloudId")
	f.mu.Lock()
	var s *siteState
	for _, st := range f.sites {
		if st.info.CloudID == cloudID && st.info.Product == product {
			s = st
			break
		}
	}
	f.mu.Unlock()
	if s == nil {
		writeJSON(w, http.StatusNotFound, map[string]any{"code": 404, "message": "No site with this cloudId and product."})
		return
	}
	note.site = s.info.Name
	if f.applyKnobs(w, r, s.info.Product) {
		return
	}
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		note.err = "no Bearer token"
		w.Header().Set("WWW-Authenticate", `Bearer realm="Atlassian"`)
		writeJSON(w, http.StatusUnauthorized, map[string]any{"code": 401, "message": "Unauthorized; scope does not match"})
		return
	}
	f.mu.Lock()
	c, refusal := f.verifyForgeBearerLocked(s, strings.TrimSpace(token))
	f.mu.Unlock()
	if c == nil {
		note.err = refusal
		w.Header().Set("WWW-Authenticate", `Bearer realm="Atlassian"`)
		writeJSON(w, http.StatusUnauthorized, map[string]any{"code": 401, "message": refusal})
		return
	}
	rel := strings.TrimPrefix(rawRequestPath(r), "/ex/"+product+"/"+cloudID)
	// The site's REST routers work on paths relative to its base URL; a
	// Confluence site's API lives under /wiki, here as on api.atlassian.com.
	if s.info.Product == ProductConfluence {
		rel = strings.TrimPrefix(rel, "/wiki")
	}
	if !strings.HasPrefix(rel, "/rest/") {
		writeProductError(w, s.info.Product, http.StatusNotFound, "No REST resource at "+rel)
		return
	}
	f.routeREST(w, r, s, rel, c)
}
