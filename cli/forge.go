package cli

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tenon-dev/tenon/forge"
	"github.com/tenon-dev/tenon/server"
)

// parseForgeSettings reads --forge-app-id and --forge-jwks-url into c.
func parseForgeSettings(c *Config, vals values, add func(string, ...any)) {
	c.ForgeAppID = strings.TrimSpace(vals["forge-app-id"])
	c.ForgeJWKSURL = strings.TrimSpace(vals["forge-jwks-url"])
	if c.ForgeAppID != "" && !forge.ValidAppID(c.ForgeAppID) {
		add("--forge-app-id / TENON_FORGE_APP_ID must be the app.id of manifest.yml, ari:cloud:ecosystem::app/<uuid>, not %q", c.ForgeAppID)
	}
	switch {
	case c.ForgeJWKSURL != "":
		u, err := url.Parse(c.ForgeJWKSURL)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			add("--forge-jwks-url / TENON_FORGE_JWKS_URL must be an absolute http(s) URL, not %q", c.ForgeJWKSURL)
		case plainHTTP(u, c.Environment) != "":
			add("--forge-jwks-url / TENON_FORGE_JWKS_URL must use https %s", plainHTTP(u, c.Environment))
		case c.ForgeAppID == "":
			add("--forge-jwks-url / TENON_FORGE_JWKS_URL is set but --forge-app-id / TENON_FORGE_APP_ID is not: Forge is off without the app id")
		}
	case c.ForgeAppID != "" && c.Environment == "development":
		add("set --forge-jwks-url / TENON_FORGE_JWKS_URL: development has no default Forge JWKS (point it at the fake Atlassian's)")
	}
}

// forgeKeys returns the Forge key set of the configuration, nil when
// Forge is off: the configured JWKS URL, or the environment's.
func forgeKeys(cfg *Config, env server.Environment, b *Backend) (*forge.JWKS, error) {
	if cfg.ForgeAppID == "" {
		return nil, nil
	}
	u := cfg.ForgeJWKSURL
	if u == "" {
		u = env.Defaults().ForgeJWKSURL
	}
	if u == "" {
		return nil, fmt.Errorf("set --forge-jwks-url / TENON_FORGE_JWKS_URL: %s has no default Forge JWKS", env)
	}
	keys, err := forge.NewJWKS(u, forge.JWKSOptions{Logger: b.Logger})
	if err != nil {
		return nil, fmt.Errorf("forge JWKS: %w", err)
	}
	return keys, nil
}

// runForgeKeys keeps the Forge key set fresh until ctx ends; without it
// lookups refresh a stale set themselves, so a failure only costs
// latency.
func (b *Backend) runForgeKeys(ctx context.Context) {
	if b.ForgeKeys != nil {
		_ = b.ForgeKeys.Run(ctx)
	}
}

// pureForgeApp reports whether app has no Connect descriptor, or ships a
// Forge manifest without Connect
// modules (no connectModules, no app.connect): the manifest of a pure Forge
// app, whose installation on a site supersedes that site's Connect tenant
// (the platform uninstalls the Connect version without a callback). A
// Connect-on-Forge manifest keeps both.
func pureForgeApp(app App) bool {
	if app.Descriptor() == nil {
		return true // no Connect at all
	}
	ma, ok := app.(ManifestApp)
	if !ok || len(ma.Manifest()) == 0 {
		return false
	}
	var m struct {
		App struct {
			Connect any `yaml:"connect"`
		} `yaml:"app"`
		ConnectModules any `yaml:"connectModules"`
	}
	if err := yaml.Unmarshal(ma.Manifest(), &m); err != nil {
		return false // lint reports the manifest's problems at start
	}
	return m.App.Connect == nil && m.ConnectModules == nil
}
