package tenon

import (
	"context"
	"encoding/json"
	"time"
)

// TokenKind says how a request was authenticated.
type TokenKind string

// The kinds of credential a Principal can come from.
const (
	// TokenIframe: a Connect JWT whose qsh is the hash of this request
	// (module pages, webhooks and server-to-server calls).
	TokenIframe TokenKind = "iframe"
	// TokenContext: a context JWT from the browser (AP.context.getToken)
	// whose qsh is the literal "context-qsh".
	TokenContext TokenKind = "context"
	// TokenWebhook: a Connect JWT on a webhook route.
	TokenWebhook TokenKind = "webhook"
	// TokenLifecycle: a lifecycle callback (signed install or shared secret).
	TokenLifecycle TokenKind = "lifecycle"
	// TokenForge: a Forge Invocation Token (RS256, Atlassian's JWKS) on a
	// Forge remote, event or scheduled-trigger route.
	TokenForge TokenKind = "forge"
)

// License values as Connect sends them in the `lic` parameter.
const (
	LicenseActive = "active"
	LicenseNone   = "none"
)

// Principal is who is calling and how that was verified. The server builds
// it only after the token's signature, expiry, qsh and the tenant's state
// were checked; handlers receive it through the request context.
type Principal struct {
	// Installation is the verified tenant, without its Payload: the raw
	// installed body is not kept on the request path (InstallationStore's
	// Installation reads it).
	Installation *Installation
	AccountID    string // the user's Atlassian accountId; "" when anonymous
	Kind         TokenKind
	License      string // "active", "none", or "" when the product sent none
	Locale       string // e.g. "en-US", from `loc`
	Timezone     string // e.g. "Europe/Berlin", from `tz`
	// Context is the token's `context` claim, as sent.
	Context   json.RawMessage
	IssuedAt  time.Time
	ExpiresAt time.Time

	// Forge describes a Forge call (Kind TokenForge); nil otherwise.
	// Installation is then the linked Connect tenant, or, for a site
	// without one, a record with the Forge tenant key and no shared
	// secret (see ForgeTenantKey).
	Forge *ForgeContext

	data     *TenantData
	products ProductClients
}

// NewPrincipal returns a Principal for inst whose Data is bound to inst's
// tenant in store. Only code that has verified the request should call it.
func NewPrincipal(inst *Installation, store DataStore) *Principal {
	p := &Principal{Installation: inst}
	p.data = &TenantData{store: store, clientKey: inst.ClientKey}
	return p
}

// ClientKey returns the verified tenant's clientKey.
func (p *Principal) ClientKey() string { return p.Installation.ClientKey }

// Data returns the app data of the verified tenant. It is the only way a
// handler reaches stored values, so it cannot read another tenant's data.
func (p *Principal) Data() *TenantData { return p.data }

// Licensed reports whether the product said the app is licensed.
func (p *Principal) Licensed() bool { return p.License == LicenseActive }

type principalKey struct{}

// WithPrincipal returns a copy of ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the Principal of a verified request, or nil.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}
