package tenon

import (
	"encoding/json"
	"time"
)

// State is where an installation is in its lifecycle.
type State string

// Installation states. StateUninstalled is sticky: only a new verified
// `installed` callback leaves it, so a `disabled` that races an
// `uninstalled` cannot bring a tenant back.
const (
	StateEnabled     State = "enabled"
	StateDisabled    State = "disabled"
	StateUninstalled State = "uninstalled"
)

// Valid reports whether s is one of the known states.
func (s State) Valid() bool {
	return s == StateEnabled || s == StateDisabled || s == StateUninstalled
}

// Installation is one tenant: a product site (Jira, Confluence, ...) that
// installed the app. ClientKey is its identity.
type Installation struct {
	ClientKey    string // tenant id, the `iss` of its tokens
	AppKey       string // the app's descriptor key
	SharedSecret string // HS256 secret; stored encrypted, never logged
	BaseURL      string // product URL, including /wiki for Confluence
	DisplayURL   string // custom domain, when the site has one
	ProductType  string // "jira", "confluence", ...

	// Fields of Connect-on-Forge and OAuth impersonation.
	OAuthClientID  string
	InstallationID string // Forge installation ARI, when the app has Forge parts
	CloudID        string

	State State

	// Payload is the whole `installed` body as received, so fields this
	// version does not know survive. It contains the shared secret, so
	// stores encrypt it like SharedSecret.
	Payload json.RawMessage

	InstalledAt time.Time // first install of this clientKey
	UpdatedAt   time.Time // last change of any kind
	// UninstalledAt is set while State is StateUninstalled.
	UninstalledAt time.Time
	// SupersededBy is the installationId of the Forge installation that
	// replaced this Connect tenant on its site (State is then
	// StateUninstalled); "" otherwise. A new `installed` callback clears it.
	SupersededBy string
}

// Active reports whether requests from this tenant may be served.
func (in *Installation) Active() bool {
	return in != nil && in.State == StateEnabled
}

// Redacted returns a copy without secrets, safe to log or to show.
func (in *Installation) Redacted() Installation {
	c := *in
	if c.SharedSecret != "" {
		c.SharedSecret = "REDACTED"
	}
	c.Payload = nil
	return c
}
