package tenon

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"time"
)

// A site can run the Connect app and its Forge successor side by side, and
// both must see the same tenant data. The identity model:
//
//   - A tenant's data is keyed by one tenant key. For a site with a Connect
//     installation it is the Connect clientKey, whether the request came
//     through Connect or Forge.
//   - A Forge installation (installationId, changes on every reinstall) is
//     linked to the Connect tenant of the same site: the one whose
//     `installed` payload carried the same installationId, otherwise the
//     one with the same cloudId (the durable site id).
//   - A site with no Connect tenant (a Forge-only install) gets the tenant
//     key ForgeTenantKey(cloudId): durable across Forge reinstalls, and
//     never a clientKey Atlassian could issue.
//   - When a Connect tenant later appears for a site that so far was
//     Forge-only, its Forge installations are linked to it and their data
//     moves under the clientKey (ForgeStore.LinkForgeInstallations).

// ForgeTenantKeyPrefix starts every tenant key of a Forge-only site.
const ForgeTenantKeyPrefix = "forge:"

// ForgeTenantKey is the tenant key of a Forge-only site: the cloudId when
// it is known (it survives reinstalls), the installationId otherwise.
func ForgeTenantKey(cloudID, installationID string) string {
	if cloudID != "" {
		return ForgeTenantKeyPrefix + cloudID
	}
	return ForgeTenantKeyPrefix + installationID
}

// IsForgeTenantKey reports whether key is the tenant key of a Forge-only
// site rather than a Connect clientKey.
func IsForgeTenantKey(key string) bool { return strings.HasPrefix(key, ForgeTenantKeyPrefix) }

// ForgeEnvironment is the Forge environment an invocation was made for.
type ForgeEnvironment struct {
	Type string `json:"type"` // "DEVELOPMENT", "STAGING" or "PRODUCTION"
	ID   string `json:"id"`   // ari:cloud:ecosystem::environment/...
}

// ForgeInstallation is one installation of the Forge app on a site, as
// verified Forge Invocation Tokens described it.
type ForgeInstallation struct {
	// InstallationID is ari:cloud:ecosystem::installation/<uuid>. It
	// changes when the app is reinstalled.
	InstallationID string
	AppID          string // ari:cloud:ecosystem::app/<uuid>
	// CloudID is the durable id of the site; "" when no token said it.
	CloudID string
	// APIBaseURL is where product calls for this installation go, e.g.
	// https://api.atlassian.com/ex/jira/<cloudId>.
	APIBaseURL  string
	SiteURL     string // e.g. https://acme.atlassian.net, when a token said it
	Product     string // "jira", "confluence", ... from APIBaseURL
	Environment ForgeEnvironment

	// ClientKey is the tenant key whose data this installation uses: the
	// linked Connect clientKey, or ForgeTenantKey for a Forge-only site.
	ClientKey string

	FirstSeen time.Time // first verified invocation
	LastSeen  time.Time // latest recorded invocation (updated at a coarse interval)

	// The lifecycle of the installation as Forge's lifecycle events and
	// the reconciliation job reported it (ForgeLifecycleStore).
	State         ForgeState
	AppVersion    string    // app.version of the latest installed or upgraded event
	InstalledAt   time.Time // the first installed (or upgraded) event; zero when none came
	UpgradedAt    time.Time // the latest upgraded event; zero when none came
	UninstalledAt time.Time // set while State is ForgeUninstalled
}

// ForgeState is where a Forge installation is in its lifecycle.
type ForgeState string

// Forge installation states. An installation that is not ForgeActive is
// refused on every Forge route; Forge gives a reinstalled app a new
// installationId, so ForgeUninstalled is final for an installation.
const (
	ForgeActive      ForgeState = "active"
	ForgeUninstalled ForgeState = "uninstalled"
)

// Active reports whether calls of the installation may be served.
func (fi *ForgeInstallation) Active() bool {
	return fi != nil && (fi.State == ForgeActive || fi.State == "")
}

// Linked reports whether the installation shares the data of a Connect tenant.
func (fi *ForgeInstallation) Linked() bool {
	return fi != nil && fi.ClientKey != "" && !IsForgeTenantKey(fi.ClientKey)
}

// ForgeStore is an optional Store capability: it records Forge
// installations and links them to Connect tenants. Implementations are
// safe for concurrent use and durable once a method returns nil.
type ForgeStore interface {
	// RecordForgeInstallation records a verified invocation of in. It
	// inserts the installation or updates its descriptive fields, keeping
	// FirstSeen and setting LastSeen to the store's clock. in.ClientKey is
	// ignored: an installation already linked to a Connect tenant keeps
	// its link; otherwise the Connect tenant of the same site is looked up
	// (installationId first, then cloudId) and, when there is one, linked
	// as LinkForgeInstallations does; otherwise the tenant key is
	// ForgeTenantKey. in is updated with the stored values. An empty or
	// malformed InstallationID gives EINVALID.
	RecordForgeInstallation(ctx context.Context, in *ForgeInstallation) error

	// ForgeInstallation returns the installation with installationID, or
	// ENOTFOUND.
	ForgeInstallation(ctx context.Context, installationID string) (*ForgeInstallation, error)

	// ForgeInstallations lists the installations whose tenant key is
	// clientKey, ordered by installationId.
	ForgeInstallations(ctx context.Context, clientKey string) ([]*ForgeInstallation, error)

	// LinkForgeInstallations links the Forge-only installations of the
	// Connect tenant clientKey's site (same installationId or cloudId as
	// its Installation) to it, in one transaction: their tenant key
	// becomes clientKey and the data stored under their Forge tenant key
	// moves under clientKey. A key the Connect tenant already holds keeps
	// the Connect value; the Forge value stays under the Forge tenant key,
	// so nothing is lost. Installations linked to a Connect tenant are
	// never moved. It returns the installations it linked; an unknown
	// clientKey gives ENOTFOUND.
	LinkForgeInstallations(ctx context.Context, clientKey string) ([]*ForgeInstallation, error)
}

// ForgeLifecycleStore is the optional Store capability that makes a Forge
// installation a tenant with a lifecycle of its own. Every method is
// idempotent and durable once it returns nil.
type ForgeLifecycleStore interface {
	ForgeStore

	// ForgeInstalled records Forge's installed or upgraded event for in
	// (upgrade true for avi:forge:upgraded:app): like
	// RecordForgeInstallation, then State ForgeActive, AppVersion, and
	// InstalledAt (first event only) or UpgradedAt set to at. When
	// supersede is true, the Connect tenants of the same site (cloudId or
	// installationId), other than uninstalled ones, are marked
	// superseded by in.InstallationID in the same transaction
	// (Installation.SupersededBy, State StateUninstalled): the platform
	// uninstalls a Connect app replaced by its Forge version without a
	// callback. It returns whether the installation changed (false for a
	// repeated delivery) and the clientKeys it superseded. An
	// uninstalled installation stays uninstalled and gives ECONFLICT.
	ForgeInstalled(ctx context.Context, in *ForgeInstallation, upgrade, supersede bool, at time.Time) (changed bool, superseded []string, err error)

	// ForgeUninstalled marks the installation uninstalled at at. It
	// returns whether it changed: false when it already was. An unknown
	// installation gives ENOTFOUND.
	ForgeUninstalled(ctx context.Context, installationID string, at time.Time) (changed bool, err error)

	// ActiveForgeInstallations lists up to limit active installations
	// with an installationId greater than after, in installationId order:
	// the pages the reconciliation job walks.
	ActiveForgeInstallations(ctx context.Context, after string, limit int) ([]*ForgeInstallation, error)
}

// ForgeContext is what a verified Forge Invocation Token says about a
// call, on the Principal of Forge routes (Principal.Forge). The tokens that
// came with the call are reachable through methods only, and LogValue
// leaves them out, so logging a ForgeContext never prints them.
type ForgeContext struct {
	InstallationID string
	AppID          string
	AppVersion     string
	CloudID        string
	SiteURL        string
	APIBaseURL     string
	Environment    ForgeEnvironment
	ModuleType     string // e.g. "jira:issuePanel" or "core:endpoint"
	ModuleKey      string
	// License is the token's app.license, as sent (paid apps in
	// production only); nil otherwise.
	License json.RawMessage
	// TokenID is the token's jti.
	TokenID string
	// Linked reports whether the site's data is shared with a Connect
	// tenant (Principal.ClientKey is then its clientKey).
	Linked bool

	systemToken string
	userToken   string
}

// SetTokens attaches the app system token (x-forge-oauth-system) and the
// user token (x-forge-oauth-user) of the call. Only code that verified the
// call should use it.
func (c *ForgeContext) SetTokens(system, user string) {
	c.systemToken, c.userToken = system, user
}

// SystemToken returns the app system token sent with the call, or "".
func (c *ForgeContext) SystemToken() string { return c.systemToken }

// UserToken returns the user token sent with the call, or "".
func (c *ForgeContext) UserToken() string { return c.userToken }

// LogValue describes the call without its tokens. It and String have
// value receivers, so a ForgeContext prints without tokens whether it is
// formatted as a value or a pointer.
func (c ForgeContext) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("installation_id", c.InstallationID),
		slog.String("cloud_id", c.CloudID),
		slog.String("environment", c.Environment.Type),
		slog.String("module", c.ModuleKey),
		slog.Bool("linked", c.Linked),
	)
}

// String is LogValue for fmt.
func (c ForgeContext) String() string { return c.LogValue().String() }

// ForgeSystemTokenKey is the TokenCache key of the app system token of a
// Forge installation: the server caches the one each call brings, and
// product calls after the request read it.
func ForgeSystemTokenKey(installationID string) string {
	return "forge:system:" + installationID
}

// ForgeUserTokenKey is the TokenCache key of a user's Forge token on an
// installation.
func ForgeUserTokenKey(installationID, accountID string) string {
	return "forge:user:" + installationID + ":" + accountID
}
