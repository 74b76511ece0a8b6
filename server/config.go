package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/connectjwt"
	"github.com/tenon-dev/tenon/forge"
	"github.com/tenon-dev/tenon/jobs"
)

// Config configures a Server. Descriptor, BaseURL, Store, InstallKeys and
// AllowedHosts are required — a pure Forge app has no Descriptor and needs
// no InstallKeys; the rest have defaults.
type Config struct {
	// Descriptor is the developer's atlassian-connect.json, served as is
	// except for the value of its top-level "baseUrl". Empty for a pure
	// Forge app (ForgeAppID set): then no descriptor is served, no Connect
	// lifecycle route is mounted, and Module, API and Webhook panic.
	Descriptor []byte
	// BaseURL is the public base URL of the app, e.g.
	// "https://app.example.com" or "https://example.com/myapp". It replaces
	// the descriptor's "baseUrl" at serve time, is the audience signed
	// lifecycle tokens must carry, and its path is the base path every
	// route is mounted under and every qsh is computed relative to.
	BaseURL string
	// Store keeps installations and tenant data.
	Store tenon.Store
	// InstallKeys resolves the kid of signed lifecycle tokens to a public
	// key: the environment's key server (connectjwt.NewKeyServer), never a
	// URL taken from a request.
	InstallKeys connectjwt.KeySource
	// AllowedHosts are globs the host of a product baseUrl must match in
	// lifecycle callbacks, e.g. "*.atlassian.net". One '*' stands for
	// exactly one DNS label. See Environment.Defaults.
	AllowedHosts []string
	// AllowHTTP accepts http:// product base URLs on a loopback host
	// (tenon.LoopbackHost: localhost, 127.0.0.0/8, ::1) — in lifecycle
	// bodies and in Forge Invocation Tokens' apiBaseUrl — and an http://
	// BaseURL. For local development against a fake product only: a
	// product elsewhere must use https even with AllowHTTP.
	AllowHTTP bool
	// ExtraAudiences are further `aud` values accepted on signed lifecycle
	// callbacks, for an app reachable under more than one base URL.
	ExtraAudiences []string
	// Leeway is the clock skew tolerated on exp, nbf and iat of every
	// token the server verifies: lifecycle, module, API and webhook JWTs
	// and Forge Invocation Tokens. At most connectjwt.MaxLeeway (and
	// forge.MaxLeeway). Zero means none; the command line's default is
	// 10 s (--clock-skew).
	Leeway time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives one line per refused request and per lifecycle
	// change. It never sees tokens or secrets. Default slog.Default().
	Logger *slog.Logger
	// AccessLog, when set, writes the request log line (one per request,
	// at info level of Logger) instead of Logger: the same JSON fields,
	// encoded without allocating and written off the request's goroutine
	// (see AccessLog). The caller closes it after the server stopped.
	AccessLog *AccessLog
	// Hooks run after lifecycle changes are committed.
	Hooks Hooks
	// Observer, when set, hears about every finished request: route
	// pattern, method, status, latency (see RequestInfo). The metrics
	// package implements it.
	Observer RequestObserver
	// MaxBodyBytes limits request bodies on app routes. Default 1 MiB.
	// Lifecycle bodies are always limited to 64 KiB.
	MaxBodyBytes int64
	// TenantCacheTTL is how long a verified tenant record is reused
	// without asking the store. Lifecycle callbacks handled by this
	// server, and store watch events (Server.Watch), drop entries at
	// once; the TTL bounds staleness when another node changed a tenant
	// and no watch is running. Default 30s; negative disables caching.
	TenantCacheTTL time.Duration
	// KeyFetchTimeout bounds the key server lookup of one signed
	// lifecycle callback, so a slow key server fails the install with 503
	// instead of holding the request. Default 5s.
	KeyFetchTimeout time.Duration
	// Queue keeps queued webhooks (Server.OnWebhook) and other jobs
	// (Server.HandleJobs). Default: Store, when it implements
	// tenon.JobQueue, as both of tenon's stores do.
	Queue tenon.JobQueue
	// Jobs tunes the runner of queued work: workers, polling, attempts,
	// backoff, retention. Its Now and Logger default to the server's,
	// its Observer to Config.Observer when that also implements
	// tenon.Observer. Run the runner with Server.Run.
	Jobs jobs.Options
	// SettingsCacheTTL is how long maintenance mode and notices, read
	// from the store (tenon.SettingsStore), are reused before being read
	// again: the longest a node takes to see an operator's change when
	// the store does not report changes (see Server.WatchSettings).
	// Default DefaultSettingsCacheTTL; negative reads them on every
	// request.
	SettingsCacheTTL time.Duration
	// AllJSURL is where pages load the AP library (all.js) from: the
	// server's own license page, and apps through Server.AllJSURL.
	// Default DefaultAllJSURL, Atlassian's CDN; local development points
	// it at the fake product so nothing leaves the machine.
	AllJSURL string
	// ForgeAppID is the app's Forge id (ari:cloud:ecosystem::app/<uuid>,
	// app.id of manifest.yml): the aud every Forge Invocation Token must
	// carry. Empty: Forge routes (ForgeRemote, ForgeEvent, ForgeTrigger)
	// are not mounted.
	ForgeAppID string
	// ForgeKeys resolves the kid of a Forge Invocation Token: a forge.JWKS
	// on the environment's pinned JWKS URL (EnvironmentDefaults.ForgeJWKSURL),
	// never a URL from a request. Required with ForgeAppID. Run its
	// refresh loop (forge.JWKS.Run) next to Server.Run, as the command
	// line does; without it, lookups refresh a stale key set themselves.
	ForgeKeys forge.KeySource
	// ForgeLicenses answers license questions the token leaves open on
	// Forge routes that require a license (see forge_license.go for the
	// rules per environment): hostclient.Client, which asks the Forge
	// License API. Nil: a production call without app.license is
	// unlicensed.
	ForgeLicenses ForgeLicenseSource
	// Products makes the product clients of the principals handlers get
	// (Principal.AsApp, AsUser): hostclient.Client.Products(), wired by the
	// command line to the store's token cache. Nil: those calls fail with
	// a message that says so.
	Products tenon.ProductClients

	// ForgeOnly says the app is a pure Forge app (a manifest with no
	// connectModules): a Forge installed or upgraded event then marks the
	// site's Connect tenant superseded, because the platform uninstalls
	// the Connect version without a callback.
	ForgeOnly bool
	// ForgeEnvironment, when set, is the only Forge environment type
	// ("DEVELOPMENT", "STAGING" or "PRODUCTION") whose tokens Forge
	// routes accept: a backend deployed for one environment refuses the
	// calls of another, whose installations and licenses mean something
	// else. Empty: any.
	ForgeEnvironment string
}

// Hooks are called after a lifecycle change is committed and acknowledged.
// They receive a copy of the stored installation. A hook cannot undo or
// fail the change: a panic is recovered and logged. Hooks run on the
// request's goroutine after the response was flushed, with a context that
// is not cancelled when the product hangs up, so they should be brief or
// hand long work to a queue.
type Hooks struct {
	Installed   func(ctx context.Context, in *tenon.Installation)
	Uninstalled func(ctx context.Context, in *tenon.Installation)
	Enabled     func(ctx context.Context, in *tenon.Installation)
	Disabled    func(ctx context.Context, in *tenon.Installation)
}

// Default limits and durations.
const (
	DefaultMaxBodyBytes    = 1 << 20
	LifecycleMaxBodyBytes  = 64 << 10
	DefaultTenantCacheTTL  = 30 * time.Second
	DefaultKeyFetchTimeout = 5 * time.Second
	// DefaultAllJSURL is the only place production pages may load all.js from.
	DefaultAllJSURL = "https://connect-cdn.atl-paas.net/all.js"
)

// Environment is the Atlassian environment an app is deployed against.
type Environment string

// Environments.
const (
	Production  Environment = "production"
	Staging     Environment = "staging"
	Development Environment = "development"
)

// EnvironmentDefaults are the settings an Environment implies.
type EnvironmentDefaults struct {
	// KeyServerURL is the signed-install key server; empty in
	// Development, where it must be configured (e.g. the fake product's).
	KeyServerURL string
	// KeyServerFallbacks are asked when KeyServerURL cannot answer.
	KeyServerFallbacks []string
	// AllowedHosts are the product host globs (Config.AllowedHosts).
	AllowedHosts []string
	// AllowHTTP is Config.AllowHTTP (http to loopback products only).
	AllowHTTP bool
	// ForgeJWKSURL is the key set of Forge Invocation Tokens; empty in
	// Development, where it must be configured (e.g. the fake product's).
	ForgeJWKSURL string
}

// Defaults returns the key server, product hosts and scheme policy of e.
//
// Production asks https://asap-distribution.us-west-2.prod.atl-asap.net
// first, as Atlassian's current frameworks do, and falls back to
// https://connect-install-keys.atlassian.com, the long-standing address.
// Both are Atlassian's; neither is ever taken from a request. Product
// hosts are *.atlassian.net only; a vendor with customers on other
// Atlassian domains adds them to Config.AllowedHosts.
func (e Environment) Defaults() EnvironmentDefaults {
	switch e {
	case Production:
		return EnvironmentDefaults{
			KeyServerURL:       "https://asap-distribution.us-west-2.prod.atl-asap.net",
			KeyServerFallbacks: []string{"https://connect-install-keys.atlassian.com"},
			AllowedHosts:       []string{"*.atlassian.net"},
			ForgeJWKSURL:       forge.ProductionJWKSURL,
		}
	case Staging:
		return EnvironmentDefaults{
			KeyServerURL: "https://cs-migrations--cdn.us-east-1.staging.public.atl-paas.net",
			AllowedHosts: []string{"*.jira-dev.com"},
			ForgeJWKSURL: forge.StagingJWKSURL,
		}
	case Development:
		return EnvironmentDefaults{
			AllowedHosts: []string{"localhost", "127.0.0.1", "*.atlassian.net"},
			AllowHTTP:    true,
		}
	}
	return EnvironmentDefaults{}
}

// ParseEnvironment parses "production", "staging" or "development"
// (case-insensitive; "prod", "stg" and "dev" are accepted too).
func ParseEnvironment(s string) (Environment, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "production", "prod":
		return Production, nil
	case "staging", "stg":
		return Staging, nil
	case "development", "dev":
		return Development, nil
	}
	return "", fmt.Errorf("server: unknown environment %q: use production, staging or development", s)
}

// validate checks cfg and fills in defaults. It returns the parsed base
// URL without a trailing slash.
func (cfg *Config) validate() (*url.URL, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("server: Config.Store is nil: open a store (sqlite.Open or postgres.Open) and set it")
	}
	if cfg.InstallKeys == nil && len(cfg.Descriptor) > 0 {
		return nil, fmt.Errorf("server: Config.InstallKeys is nil: set it to a connectjwt.KeyServer for the environment's key server (Environment.Defaults().KeyServerURL)")
	}
	if len(cfg.Descriptor) == 0 && cfg.ForgeAppID == "" {
		return nil, fmt.Errorf("server: Config.Descriptor is empty: set it to the contents of atlassian-connect.json (a pure Forge app has none, and sets ForgeAppID instead)")
	}
	if cfg.BaseURL == "" {
		return nil, fmt.Errorf("server: Config.BaseURL is empty: set it to the app's public URL, e.g. https://app.example.com")
	}
	base, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("server: Config.BaseURL %q is not a URL: %w", cfg.BaseURL, err)
	}
	switch {
	case base.Scheme != "https" && !(base.Scheme == "http" && cfg.AllowHTTP):
		return nil, fmt.Errorf("server: Config.BaseURL %q must start with https:// (http:// only with AllowHTTP, for development)", cfg.BaseURL)
	case base.Host == "" || base.User != nil:
		return nil, fmt.Errorf("server: Config.BaseURL %q must be an absolute URL with a host and no user info", cfg.BaseURL)
	case base.RawQuery != "" || base.Fragment != "" || base.ForceQuery:
		return nil, fmt.Errorf("server: Config.BaseURL %q must not have a query or fragment", cfg.BaseURL)
	}
	cfg.BaseURL = base.String()
	if len(cfg.AllowedHosts) == 0 {
		return nil, fmt.Errorf("server: Config.AllowedHosts is empty: set the product host globs, e.g. Environment.Defaults().AllowedHosts ([\"*.atlassian.net\"] in production)")
	}
	for _, g := range cfg.AllowedHosts {
		if err := validateHostGlob(g); err != nil {
			return nil, fmt.Errorf("server: Config.AllowedHosts: %w", err)
		}
	}
	for _, a := range cfg.ExtraAudiences {
		if u, err := url.Parse(a); err != nil || u.Host == "" {
			return nil, fmt.Errorf("server: Config.ExtraAudiences: %q is not an absolute URL", a)
		}
	}
	if cfg.Leeway < 0 || cfg.Leeway > connectjwt.MaxLeeway {
		return nil, fmt.Errorf("server: Config.Leeway %v is out of range: use 0 to %v", cfg.Leeway, connectjwt.MaxLeeway)
	}
	if cfg.MaxBodyBytes < 0 {
		return nil, fmt.Errorf("server: Config.MaxBodyBytes %d is negative", cfg.MaxBodyBytes)
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.TenantCacheTTL == 0 {
		cfg.TenantCacheTTL = DefaultTenantCacheTTL
	}
	if cfg.KeyFetchTimeout < 0 {
		return nil, fmt.Errorf("server: Config.KeyFetchTimeout %v is negative", cfg.KeyFetchTimeout)
	}
	if cfg.KeyFetchTimeout == 0 {
		cfg.KeyFetchTimeout = DefaultKeyFetchTimeout
	}
	if cfg.AllJSURL == "" {
		cfg.AllJSURL = DefaultAllJSURL
	}
	if u, err := url.Parse(cfg.AllJSURL); err != nil || u.Host == "" || u.User != nil ||
		(u.Scheme != "https" && !(u.Scheme == "http" && cfg.AllowHTTP)) {
		return nil, fmt.Errorf("server: Config.AllJSURL %q must be an absolute https URL (http only with AllowHTTP)", cfg.AllJSURL)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return base, nil
}
