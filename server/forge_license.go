package server

import (
	"context"
	"time"

	"github.com/tenon-dev/tenon"
)

// Licensing of Forge routes. The rules, per Forge environment:
//
//   - The FIT's app.license says isActive true: licensed; false: not.
//   - No app.license in a PRODUCTION token (Forge leaves it out of some
//     calls, e.g. events and triggers): Config.ForgeLicenses is asked
//     (the Forge License API), and its answer cached for
//     forgeLicenseTTL per installation. No source configured, or an
//     answer that cannot be fetched: refused (403 and 503 with
//     Retry-After respectively), never served unlicensed.
//   - DEVELOPMENT and STAGING: Forge sends no license there and has no
//     license to ask about, so routes that require one are served. A
//     token that does carry one is obeyed.
//
// Events, triggers and jobs carry the same answer on Principal.License,
// so background work can stop for unlicensed sites.

// ForgeLicenseSource answers whether the app's license on the Forge
// installation of fc is active: the Forge License API
// (hostclient.Client.ForgeLicense). Errors mean the answer is unknown.
type ForgeLicenseSource interface {
	ForgeLicense(ctx context.Context, fc *tenon.ForgeContext) (active bool, err error)
}

// forgeLicenseTTL is how long a License API answer is reused.
const forgeLicenseTTL = 5 * time.Minute

type forgeLicenseEntry struct {
	active  bool
	expires time.Time
}

// forgeLicense fills in p.License where the token carried none, by the
// rules above: "active", "none", or "" when nothing is known (an
// environment without licenses). A License API failure is an error.
func (s *Server) forgeLicense(ctx context.Context, p *tenon.Principal) error {
	if p.License != "" || p.Forge == nil {
		return nil
	}
	if p.Forge.Environment.Type != "PRODUCTION" {
		return nil
	}
	src := s.cfg.ForgeLicenses
	if src == nil {
		p.License = "none"
		return nil
	}
	st := s.forge
	now := s.cfg.Now()
	id := p.Forge.InstallationID
	st.mu.Lock()
	e, ok := st.licenses[id]
	st.mu.Unlock()
	if !ok || !now.Before(e.expires) {
		active, err := src.ForgeLicense(ctx, p.Forge)
		if err != nil {
			return tenon.WrapError(tenon.EUNAVAILABLE, "The app cannot check the site's license right now; try again.", err)
		}
		e = forgeLicenseEntry{active: active, expires: now.Add(forgeLicenseTTL)}
		st.mu.Lock()
		if len(st.licenses) >= forgeMemoMax {
			clear(st.licenses)
		}
		st.licenses[id] = e
		st.mu.Unlock()
	}
	p.License = "none"
	if e.active {
		p.License = "active"
	}
	return nil
}

// forgeLicensed refuses a call to a route that requires a license unless
// the site's license is active or its environment has none.
func (s *Server) forgeLicensed(ctx context.Context, p *tenon.Principal) error {
	if err := s.forgeLicense(ctx, p); err != nil {
		return err
	}
	if p.License == "active" || (p.License == "" && p.Forge != nil && p.Forge.Environment.Type != "PRODUCTION") {
		return nil
	}
	return tenon.Errorf(tenon.EFORBIDDEN, licenseMessage)
}
