package hostclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/tenon-dev/tenon"
)

// ErrNoForgeToken is in the chain of a Forge call that has no usable
// token: Forge sends a fresh one with its next call to the app (UI
// invocation, event, trigger).
var ErrNoForgeToken = errors.New("hostclient: no valid Forge OAuth token for this installation")

// forgeTokenMargin is how long a cached Forge token must still be valid to
// be used, so it does not expire on its way or between retries.
const forgeTokenMargin = 30 * time.Second

// ForgeOptions configure the calls for Forge installations.
type ForgeOptions struct {
	// Installations finds an installation's apiBaseUrl for ForgeAsApp and
	// ForgeAsUser: pass the Store. The tokens are read from
	// Options.Tokens, where the server caches the ones Forge sends with
	// every call, so that must be the Store too.
	Installations tenon.ForgeStore
	// AllowHTTP accepts an http:// apiBaseUrl: a fake product in
	// development and tests. Otherwise it must be https.
	AllowHTTP bool
}

// ForgeCall returns the tenant of a Forge call (Principal.Forge), with the
// token Forge sent along: the user's when asUser, else the app system
// token. Its calls go to the installation's apiBaseUrl
// (https://api.atlassian.com/ex/jira/<cloudId>), so paths are those of the
// product's REST API: "/rest/api/3/issue/PROJ-1". Which tokens Forge sends
// is the manifest's choice (the remote's auth); a call whose token is
// missing fails with tenon.EUNAVAILABLE and ErrNoForgeToken in the chain.
func (c *Client) ForgeCall(fc *tenon.ForgeContext, asUser bool) *Tenant {
	if fc == nil {
		t := c.newTenant("Forge installation", "")
		t.err = errors.New("hostclient: not a Forge call (Principal.Forge is nil)")
		return t
	}
	tok := fc.SystemToken()
	if asUser {
		tok = fc.UserToken()
	}
	t := c.forgeTenant(fc.InstallationID, fc.CloudID, fc.APIBaseURL)
	if t.err == nil {
		t.err = checkForgeToken(fc.InstallationID, tok, asUser)
	}
	t.sign = forgeBearer{token: tok}
	return t
}

// ForgeAsApp returns the tenant of a Forge installation with the app
// system token cached from its latest call, for work after the request
// ended: events, triggers, jobs. It needs Options.Tokens and
// Options.Forge.Installations. An unknown installation gives ENOTFOUND;
// no valid cached token gives EUNAVAILABLE with ErrNoForgeToken. A 401
// from the product drops the cached token.
func (c *Client) ForgeAsApp(ctx context.Context, installationID string) (*Tenant, error) {
	return c.forgeCached(ctx, installationID, "")
}

// ForgeAsUser is ForgeAsApp acting as accountID, with the user token
// cached from that user's latest call.
func (c *Client) ForgeAsUser(ctx context.Context, installationID, accountID string) (*Tenant, error) {
	if !validAccountID(accountID) {
		return nil, tenon.Errorf(tenon.EINVALID, "Acting as a user needs the user's accountId.")
	}
	return c.forgeCached(ctx, installationID, accountID)
}

func (c *Client) forgeCached(ctx context.Context, installationID, accountID string) (*Tenant, error) {
	in, err := c.forgeInstallation(ctx, installationID)
	if err != nil {
		return nil, err
	}
	return c.forgeCachedTenant(ctx, in, accountID, in.APIBaseURL)
}

// forgeInstallation reads a recorded installation, for the calls made
// with cached tokens.
func (c *Client) forgeInstallation(ctx context.Context, installationID string) (*tenon.ForgeInstallation, error) {
	if c.tokens == nil || c.forge.Installations == nil {
		return nil, errors.New("hostclient: Options.Tokens and Options.Forge.Installations are needed for Forge calls with cached tokens (pass the Store)")
	}
	in, err := c.forge.Installations.ForgeInstallation(ctx, installationID)
	if err != nil {
		return nil, fmt.Errorf("hostclient: Forge installation %q: %w", installationID, err)
	}
	return in, nil
}

// forgeCachedTenant is the tenant of in on base (its apiBaseUrl, or the
// root of the same origin for the platform's own APIs) with the cached
// token of accountID ("" for the app system token).
func (c *Client) forgeCachedTenant(ctx context.Context, in *tenon.ForgeInstallation, accountID, base string) (*Tenant, error) {
	installationID := in.InstallationID
	key := tenon.ForgeSystemTokenKey(installationID)
	if accountID != "" {
		key = tenon.ForgeUserTokenKey(installationID, accountID)
	}
	tok, _, err := c.tokens.Token(ctx, key, c.now().Add(forgeTokenMargin))
	switch {
	case tenon.ErrorCode(err) == tenon.ENOTFOUND:
		return nil, noForgeToken(installationID, accountID != "")
	case err != nil:
		return nil, fmt.Errorf("hostclient: reading the token cache: %w", err)
	}
	t := c.forgeTenant(installationID, in.CloudID, base)
	if t.err == nil {
		t.err = checkForgeToken(installationID, tok, accountID != "")
	}
	if t.err != nil {
		return nil, t.err
	}
	t.accountID = accountID
	t.sign = forgeBearer{token: tok, cache: c.tokens, key: key, log: c.users.log}
	return t, nil
}

// forgeTenant binds a Tenant to an installation's apiBaseUrl. It came in a
// verified token, but a credential goes there, so it is checked again.
func (c *Client) forgeTenant(installationID, cloudID, apiBaseURL string) *Tenant {
	t := c.newTenant("Forge installation", installationID)
	if err := t.setBase(apiBaseURL, "apiBaseUrl", c.forge.AllowHTTP); err != nil {
		t.err = err
		return t
	}
	// api.atlassian.com serves every site from one host: the site of the
	// Resilience is the cloud.
	site := cloudID
	if site == "" {
		site = installationID
	}
	t.site = "forge:" + site
	t.product = forgeProduct(t.basePath)
	return t
}

// forgeProduct is the product of an apiBaseUrl path …/ex/<product>/<id>,
// or "forge".
func forgeProduct(basePath string) string {
	segs := strings.Split(strings.Trim(basePath, "/"), "/")
	if n := len(segs); n >= 3 && segs[n-3] == "ex" {
		if p, err := url.PathUnescape(segs[n-2]); err == nil && p != "" {
			return p
		}
	}
	return "forge"
}

func checkForgeToken(installationID, tok string, user bool) error {
	if tok == "" {
		return noForgeToken(installationID, user)
	}
	if !validToken(tok) {
		return fmt.Errorf("hostclient: Forge installation %q: the token is not a bearer token", installationID)
	}
	return nil
}

func noForgeToken(installationID string, user bool) error {
	kind := "system"
	if user {
		kind = "user"
	}
	return tenon.WrapError(tenon.EUNAVAILABLE, "The app has no valid Atlassian token for this site yet; try again later.",
		fmt.Errorf("%w: no %s token for %s", ErrNoForgeToken, kind, installationID))
}

// forgeBearer authorizes with a Forge OAuth token. cache and key say
// where a cached one came from, so a 401 drops it; they are empty for the
// token of a request.
type forgeBearer struct {
	token string
	cache tenon.TokenCache
	key   string
	log   *slog.Logger
}

func (s forgeBearer) authorization(context.Context, string, string, string) (string, error) {
	return "Bearer " + s.token, nil
}

// refused drops a cached token the product no longer takes (revoked, or
// not what its exp said), so later work waits for a fresh one instead of
// failing the same way.
func (s forgeBearer) refused(ctx context.Context) {
	if s.cache == nil {
		return
	}
	if err := s.cache.DeleteToken(context.WithoutCancel(ctx), s.key); err != nil {
		s.log.WarnContext(ctx, "hostclient: dropping a refused Forge token from the cache failed", "err", err)
	}
}
