package hostclient

import (
	"context"

	"github.com/tenon-dev/tenon"
)

// Products returns c as the tenon.ProductClients a server hands its
// principals, so handlers call the product with p.AsApp(ctx) and
// p.AsUser(ctx) instead of building clients of their own:
//
//   - a Connect principal calls as the app with the tenant's shared
//     secret (AsApp), or as its user through the OAuth JWT-bearer grant,
//     with tokens cached in Options.Tokens (AsUser);
//   - a Forge principal calls with the token Forge sent with this call,
//     or, when the call brought none (a job long after it), with the
//     newest one cached for the installation (ForgeAsApp, ForgeAsUser).
func (c *Client) Products() tenon.ProductClients { return products{c} }

type products struct{ c *Client }

var _ tenon.ProductClients = products{}

func (p products) AsApp(ctx context.Context, pr *tenon.Principal) tenon.ProductAPI {
	switch {
	case pr == nil || pr.Installation == nil:
		return p.c.refused(tenon.Errorf(tenon.EINTERNAL, "The app cannot call the product without a verified tenant."))
	case pr.Forge != nil && pr.Forge.SystemToken() != "":
		return p.c.ForgeCall(pr.Forge, false)
	case pr.Forge != nil:
		t, err := p.c.ForgeAsApp(ctx, pr.Forge.InstallationID)
		if err != nil {
			return p.c.refused(err)
		}
		return t
	}
	return p.c.AsApp(pr.Installation)
}

func (p products) AsUser(ctx context.Context, pr *tenon.Principal) tenon.ProductAPI {
	switch {
	case pr == nil || pr.Installation == nil:
		return p.c.refused(tenon.Errorf(tenon.EINTERNAL, "The app cannot call the product without a verified tenant."))
	case pr.AccountID == "":
		return p.c.refused(tenon.Errorf(tenon.EINVALID, "This request has no user to act as (anonymous, or a background job): call the product as the app."))
	case pr.Forge != nil && pr.Forge.UserToken() != "":
		return p.c.ForgeCall(pr.Forge, true)
	case pr.Forge != nil:
		t, err := p.c.ForgeAsUser(ctx, pr.Forge.InstallationID, pr.AccountID)
		if err != nil {
			return p.c.refused(err)
		}
		return t
	}
	return p.c.AsUser(pr.Installation, pr.AccountID)
}

// refused is a Tenant whose every call fails with err, sending nothing.
func (c *Client) refused(err error) *Tenant {
	t := c.newTenant("tenant", "")
	t.err = err
	return t
}
