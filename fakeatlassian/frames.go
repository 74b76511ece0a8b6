package fakeatlassian

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// FrameOptions describe who looks at an app iframe and where.
type FrameOptions struct {
	// AccountID is the user viewing the page; default the site's default
	// user. Anonymous views are not modelled.
	AccountID string
	// Locale (loc) defaults to the user's locale, TimeZone (tz) to the user's.
	Locale   string
	TimeZone string
	// IssueKey places the module on an issue: {issue.key}, {issue.id},
	// {project.key} and {project.id} are filled from it and the token's
	// context names the issue and project.
	IssueKey string
	// ContentID places a Confluence module on a page ({content.id},
	// {space.key}).
	ContentID string
	// Vars adds or overrides URL template variables (e.g. "issue.key").
	Vars map[string]string
	// TokenLifetime is how long the iframe URL's token is valid. Zero
	// means three minutes, as the product signs them. A load generator
	// that signs its URLs before a run asks for the length of the run.
	TokenLifetime time.Duration
}

// frame is a rendered iframe: its signed src and the context it shows.
type frame struct {
	src     string
	origin  string // the app's origin: the only one allowed to talk to the host
	appKey  string
	module  module
	context map[string]any // the context claim and AP.context.getContext
	account string
}

// frameContextLocked resolves opts into template variables and the
// context claim.
func (f *Fake) frameContextLocked(s *siteState, opts FrameOptions) (map[string]string, map[string]any, error) {
	vars := map[string]string{}
	ctx := map[string]any{}
	if opts.IssueKey != "" {
		is := s.issue(opts.IssueKey)
		if is == nil {
			return nil, nil, fmt.Errorf("%w: issue %q on site %q", ErrNotFound, opts.IssueKey, s.info.Name)
		}
		p := s.project(is.ProjectKey)
		vars["issue.key"], vars["issue.id"], vars["issue.type"] = is.Key, is.ID, is.IssueType
		vars["issuetype.id"] = issueTypes[is.IssueType]
		vars["project.key"], vars["project.id"] = p.Key, p.ID
		ctx["jira"] = map[string]any{
			"issue":   map[string]any{"key": is.Key, "id": is.ID, "issuetype": map[string]any{"id": issueTypes[is.IssueType]}},
			"project": map[string]any{"key": p.Key, "id": p.ID},
		}
	}
	if opts.ContentID != "" {
		pg := s.pages[opts.ContentID]
		if pg == nil {
			return nil, nil, fmt.Errorf("%w: content %q on site %q", ErrNotFound, opts.ContentID, s.info.Name)
		}
		vars["content.id"], vars["content.type"], vars["content.version"] = pg.ID, "page", fmt.Sprint(pg.Version)
		vars["space.key"] = pg.SpaceKey
		ctx["confluence"] = map[string]any{
			"content": map[string]any{"id": pg.ID, "type": "page", "version": fmt.Sprint(pg.Version)},
			"space":   map[string]any{"key": pg.SpaceKey},
		}
	}
	for k, v := range opts.Vars {
		vars[k] = v
	}
	return vars, ctx, nil
}

// buildFrameLocked signs the iframe URL of a module as the product does:
// app baseUrl + module url (variables filled) + the standard parameters +
// jwt, whose qsh covers GET, the path relative to the app's baseUrl path
// and every other parameter.
func (f *Fake) buildFrameLocked(s *siteState, appKey, moduleKey string, opts FrameOptions) (*frame, error) {
	a := s.apps[appKey]
	if a == nil {
		return nil, fmt.Errorf("%w: app %q on site %q", ErrNotFound, appKey, s.info.Name)
	}
	if a.state != AppEnabled {
		return nil, fmt.Errorf("%w: app %q is %s", ErrConflict, appKey, a.state)
	}
	m, ok := a.desc.module(moduleKey)
	if !ok || m.URL == "" || linkModuleTypes[m.Type] {
		return nil, fmt.Errorf("%w: app %q has no iframe module %q", ErrNotFound, appKey, moduleKey)
	}
	account, err := s.actor(opts.AccountID)
	if err != nil {
		return nil, err
	}
	u := s.users[account]
	loc, tz := opts.Locale, opts.TimeZone
	if loc == "" {
		loc = u.Locale
	}
	if tz == "" {
		tz = u.TimeZone
	}
	vars, ctx, err := f.frameContextLocked(s, opts)
	if err != nil {
		return nil, err
	}

	target := a.desc.BaseURL + substituteVars(m.URL, vars)
	// cp is the context path: xdm_e + cp is the site's base URL.
	params := url.Values{
		"lic":      {a.license},
		"xdm_e":    {f.url},
		"xdm_c":    {"channel-" + appKey + "__" + moduleKey},
		"cp":       {s.basePath},
		"cv":       {"1001.0.0-SNAPSHOT"},
		"loc":      {loc},
		"tz":       {tz},
		"user_id":  {""},
		"user_key": {""},
	}
	sep := "?"
	if strings.Contains(target, "?") {
		sep = "&"
	}
	target += sep + params.Encode()

	lifetime := tokenLifetime
	if opts.TokenLifetime > 0 {
		lifetime = opts.TokenLifetime
	}
	claims := f.productClaims(s.info.ClientKey, qshOfURL("GET", target, a.desc.BaseURL), lifetime)
	claims["sub"] = account
	claims["context"] = ctx
	token, err := signHS256(a.sharedSecret, claims)
	if err != nil {
		return nil, err
	}
	return &frame{
		src:     target + "&jwt=" + url.QueryEscape(token),
		origin:  origin(a.desc.BaseURL),
		appKey:  appKey,
		module:  m,
		context: ctx,
		account: account,
	}, nil
}

// SignedModuleURL returns the iframe src of a module, as a product page
// would render it: for Go tests that act as the browser.
func (f *Fake) SignedModuleURL(site *Site, appKey, moduleKey string, opts FrameOptions) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.siteLocked(site)
	if err != nil {
		return "", err
	}
	fr, err := f.buildFrameLocked(s, appKey, moduleKey, opts)
	if err != nil {
		return "", err
	}
	return fr.src, nil
}

// ContextToken returns what AP.context.getToken gives an app's iframe: an
// HS256 token with qsh "context-qsh", sub = the user and the module's
// context, valid for 15 minutes.
func (f *Fake) ContextToken(site *Site, appKey string, opts FrameOptions) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.siteLocked(site)
	if err != nil {
		return "", err
	}
	a := s.apps[appKey]
	if a == nil || a.state != AppEnabled {
		return "", fmt.Errorf("%w: no enabled app %q on site %q", ErrNotFound, appKey, s.info.Name)
	}
	account, err := s.actor(opts.AccountID)
	if err != nil {
		return "", err
	}
	_, ctx, err := f.frameContextLocked(s, opts)
	if err != nil {
		return "", err
	}
	return f.contextTokenLocked(s, a, account, ctx)
}

func (f *Fake) contextTokenLocked(s *siteState, a *appState, account string, ctx map[string]any) (string, error) {
	claims := f.productClaims(s.info.ClientKey, contextQSH, contextTokenLifetime)
	claims["sub"] = account
	if a.desc.EnableLicensing {
		// A licensed app's context says whether this site's license is
		// active, as the product's does; the app cannot see the iframe's
		// lic parameter on its browser-API calls.
		withLicense := make(map[string]any, len(ctx)+1)
		for k, v := range ctx {
			withLicense[k] = v
		}
		withLicense["license"] = map[string]any{"active": a.license == "active"}
		ctx = withLicense
	}
	claims["context"] = ctx
	return signHS256(a.sharedSecret, claims)
}

// IssuePageURL is the product page of an issue (Jira sites).
func (f *Fake) IssuePageURL(site *Site, issueKey string) string {
	return site.BaseURL + "/browse/" + url.PathEscape(issueKey)
}

// ModulePageURL is the product page that shows one page module
// (generalPages, adminPages, configurePage, ...) full-size.
func (f *Fake) ModulePageURL(site *Site, appKey, moduleKey string) string {
	return site.BaseURL + "/plugins/servlet/ac/" + url.PathEscape(appKey) + "/" + url.PathEscape(moduleKey)
}
