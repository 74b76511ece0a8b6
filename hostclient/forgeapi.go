package hostclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tenon-dev/tenon"
)

// The Forge platform's own APIs, which a remote calls with the app system
// token of an installation on the root of the installation's API origin
// (https://api.atlassian.com, the host of its apiBaseUrl):
//
//   - Installation Details API: GET
//     /forge/installation/v1/{appId}/{envId}/installation/{installationId},
//     the three ids as bare UUIDs. The token must be one issued for that
//     installation. 200 describes it (the installed app version among
//     others); tenon reads 404 as "this installation is gone".
//   - License API: GET /forge/installation/v1/license, a self-query of the
//     calling app on the token's site: {"results":[{"appId":…,"data":{…}}
//     or {"appId":…,"error":{…}}]}. tenon reads data.isActive, and an
//     error result as "no license".
//   - Offline user impersonation: the GraphQL mutation
//     offlineUserAuthToken on POST /graphql gives a short-lived token of a
//     user who is not present, for background work that must act as them.
//
// They go through the same Tenant, signer and Resilience as every other
// call: there is no second way out.

// ErrForgeInstallationGone is in the chain of ForgeInstallationDetails
// when the Installation Details API answered 404: Forge no longer knows
// the installation.
var ErrForgeInstallationGone = errors.New("hostclient: the Forge installation is gone")

// ErrForgeAnswer is in the chain of an answer of a Forge API that does
// not have the documented shape.
var ErrForgeAnswer = errors.New("hostclient: the Forge API's answer is malformed")

// ForgeInstallationDetails is the Installation Details API's description
// of a live installation.
type ForgeInstallationDetails struct {
	// Version is the app version installed.
	Version string `json:"version"`
	// Raw is the whole answer, so fields tenon does not read survive.
	Raw json.RawMessage `json:"-"`
}

// ForgeInstallationDetails asks the Installation Details API about a
// recorded installation with its cached app system token. A 404 gives
// ENOTFOUND with ErrForgeInstallationGone in the chain; no valid cached
// token gives EUNAVAILABLE with ErrNoForgeToken; a 429, 5xx or timeout
// EUNAVAILABLE as for any product call (retry later); a 401 EUNAUTHORIZED
// and drops the cached token.
func (c *Client) ForgeInstallationDetails(ctx context.Context, installationID string) (*ForgeInstallationDetails, error) {
	in, err := c.forgeInstallation(ctx, installationID)
	if err != nil {
		return nil, err
	}
	app, env, inst := ariTail(in.AppID), ariTail(in.Environment.ID), ariTail(in.InstallationID)
	if app == "" || env == "" || inst == "" {
		return nil, tenon.Errorf(tenon.EINVALID, "The installation's app, environment or installation id is unknown.")
	}
	t, err := c.forgeRoot(ctx, in, "")
	if err != nil {
		return nil, err
	}
	path := "/forge/installation/v1/" + url.PathEscape(app) + "/" + url.PathEscape(env) + "/installation/" + url.PathEscape(inst)
	var raw json.RawMessage
	if err := t.GetJSON(ctx, path, &raw); err != nil {
		if tenon.ErrorCode(err) == tenon.ENOTFOUND {
			return nil, tenon.WrapError(tenon.ENOTFOUND, "Forge no longer knows this installation.",
				fmt.Errorf("%w: %s: %w", ErrForgeInstallationGone, installationID, err))
		}
		return nil, err
	}
	d := &ForgeInstallationDetails{Raw: raw}
	if err := json.Unmarshal(raw, d); err != nil {
		return nil, forgeAnswerError("Installation Details", err)
	}
	return d, nil
}

// ForgeLicense answers whether the app's license on the installation of
// fc is active, from the Forge License API: the server's
// ForgeLicenseSource. It uses the system token of the call, or the one
// cached from an earlier call. A result for the app with data.isActive
// answers; a result with an error instead of data means the app has no
// license there (false). Anything else — a failed call, a 401 or 404, a
// malformed body, no result for the app — is an error, never a guess.
func (c *Client) ForgeLicense(ctx context.Context, fc *tenon.ForgeContext) (bool, error) {
	if fc == nil {
		return false, errors.New("hostclient: not a Forge call (Principal.Forge is nil)")
	}
	var t *Tenant
	if tok := fc.SystemToken(); tok != "" {
		t = c.forgeTenant(fc.InstallationID, fc.CloudID, apiRoot(fc.APIBaseURL))
		if t.err == nil {
			t.err = checkForgeToken(fc.InstallationID, tok, false)
		}
		t.sign = forgeBearer{token: tok}
	} else {
		in, err := c.forgeInstallation(ctx, fc.InstallationID)
		if err != nil {
			return false, err
		}
		if t, err = c.forgeRoot(ctx, in, ""); err != nil {
			return false, err
		}
	}
	var out struct {
		Results []struct {
			AppID string `json:"appId"`
			Data  *struct {
				IsActive *bool `json:"isActive"`
			} `json:"data"`
			Error json.RawMessage `json:"error"`
		} `json:"results"`
	}
	if err := t.GetJSON(ctx, "/forge/installation/v1/license", &out); err != nil {
		return false, err
	}
	want := ariTail(fc.AppID)
	for _, r := range out.Results {
		if r.AppID != want && r.AppID != fc.AppID {
			continue
		}
		if r.Data == nil && len(r.Error) > 0 && string(r.Error) != "null" {
			// The API's answer for this app is that it has no license
			// here (e.g. a free or not yet bought app).
			return false, nil
		}
		if r.Data == nil || r.Data.IsActive == nil {
			return false, forgeAnswerError("License", fmt.Errorf("the result for app %q has no data.isActive (error: %s)", r.AppID, excerptOf(r.Error)))
		}
		return *r.Data.IsActive, nil
	}
	return false, forgeAnswerError("License", fmt.Errorf("no result for app %q", want))
}

// offlineTokenQuery is the GraphQL mutation of offline user impersonation.
const offlineTokenQuery = `mutation forge_remote_offlineUserAuthToken($input: OfflineUserAuthTokenInput!) {
  offlineUserAuthToken(input: $input) { success errors { message } authToken { token ttl } }
}`

// ForgeAsUserOffline is ForgeAsUser for a user who is not present: when
// no valid user token of accountID is cached, it exchanges the cached app
// system token for one through Forge's offline user impersonation
// (offlineUserAuthToken), caches it for its ttl, and returns the tenant
// acting as the user. The app's manifest must allow impersonation for its
// scopes. A refusal gives EUNAUTHORIZED with a *TokenError; no valid
// system token EUNAVAILABLE with ErrNoForgeToken.
func (c *Client) ForgeAsUserOffline(ctx context.Context, installationID, accountID string) (*Tenant, error) {
	if !validAccountID(accountID) {
		return nil, tenon.Errorf(tenon.EINVALID, "Acting as a user needs the user's accountId.")
	}
	in, err := c.forgeInstallation(ctx, installationID)
	if err != nil {
		return nil, err
	}
	if t, err := c.forgeCachedTenant(ctx, in, accountID, in.APIBaseURL); err == nil || !errors.Is(err, ErrNoForgeToken) {
		return t, err
	}
	sys, err := c.forgeRoot(ctx, in, "")
	if err != nil {
		return nil, err
	}
	if in.CloudID == "" {
		return nil, tenon.Errorf(tenon.EINVALID, "The installation's site (cloudId) is not known yet, so a user token cannot be asked for.")
	}
	product := in.Product
	if u, err := url.Parse(in.APIBaseURL); product == "" && err == nil {
		product = forgeProduct(u.EscapedPath())
	}
	workspace := "ari:cloud:" + product + ":" + in.CloudID + ":workspace/" + in.CloudID
	req := map[string]any{
		"query": offlineTokenQuery,
		"variables": map[string]any{"input": map[string]any{
			"contextIds": []string{workspace},
			"userId":     accountID,
		}},
	}
	var out struct {
		Data struct {
			Token *struct {
				Success bool `json:"success"`
				Errors  []struct {
					Message string `json:"message"`
				} `json:"errors"`
				AuthToken *struct {
					Token string `json:"token"`
					TTL   int64  `json:"ttl"`
				} `json:"authToken"`
			} `json:"offlineUserAuthToken"`
		} `json:"data"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := sys.SendJSON(ctx, http.MethodPost, "/graphql", req, &out); err != nil {
		return nil, err
	}
	tk := out.Data.Token
	if tk == nil || !tk.Success || tk.AuthToken == nil || tk.AuthToken.Token == "" {
		var why []string
		for _, e := range out.Errors {
			why = append(why, e.Message)
		}
		if tk != nil {
			for _, e := range tk.Errors {
				why = append(why, e.Message)
			}
		}
		return nil, tenon.WrapError(tenon.EUNAUTHORIZED, "The product did not let the app act as this user.",
			&TokenError{Status: http.StatusForbidden, Code: "offline_user_token_refused", Description: strings.Join(why, "; ")})
	}
	if tk.AuthToken.TTL <= 0 || !validToken(tk.AuthToken.Token) {
		return nil, forgeAnswerError("offline user token", errors.New("no usable token or ttl"))
	}
	key := tenon.ForgeUserTokenKey(installationID, accountID)
	exp := c.now().Add(time.Duration(tk.AuthToken.TTL) * time.Second)
	if err := c.tokens.PutToken(ctx, key, tk.AuthToken.Token, exp); err != nil {
		c.users.log.WarnContext(ctx, "hostclient: caching an offline user token failed", "err", err)
	}
	t := c.forgeTenant(installationID, in.CloudID, in.APIBaseURL)
	if t.err != nil {
		return nil, t.err
	}
	t.accountID = accountID
	t.sign = forgeBearer{token: tk.AuthToken.Token, cache: c.tokens, key: key, log: c.users.log}
	return t, nil
}

// forgeRoot is the tenant of in on the root of its API origin, with the
// cached token of accountID ("" for the app system token).
func (c *Client) forgeRoot(ctx context.Context, in *tenon.ForgeInstallation, accountID string) (*Tenant, error) {
	root := apiRoot(in.APIBaseURL)
	if root == "" {
		return nil, fmt.Errorf("hostclient: Forge installation %q has no apiBaseUrl yet", in.InstallationID)
	}
	return c.forgeCachedTenant(ctx, in, accountID, root)
}

// apiRoot is the origin of an apiBaseUrl (https://api.atlassian.com for
// https://api.atlassian.com/ex/jira/<cloudId>), or "" when it has none;
// forgeTenant checks it like any base URL.
func apiRoot(apiBaseURL string) string {
	u, err := url.Parse(apiBaseURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// ariTail is the last segment of an ARI (ari:cloud:ecosystem::app/<uuid>
// → <uuid>; an environment ARI ends in the environment's uuid), or s when
// it has no '/'.
func ariTail(s string) string {
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func forgeAnswerError(api string, err error) error {
	return tenon.WrapError(tenon.EUNAVAILABLE, "The Forge platform's answer could not be read.",
		fmt.Errorf("%w: %s API: %w", ErrForgeAnswer, api, err))
}

func excerptOf(b json.RawMessage) string {
	s := string(b)
	if len(s) > 200 {
		s = s[:200]
	}
	if s == "" {
		return "none"
	}
	return s
}
