package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/forge"
)

// Authentication of Forge routes, in two named steps: verifyFIT checks the
// token and changes nothing; admitForge then records what the verified
// token says (the installation, its OAuth tokens) and builds the
// Principal. Only admitForge writes.

// forgeAuthenticate verifies the FIT of a request to a Forge route,
// admits the call, and passes the request on with its Principal.
func (s *Server) forgeAuthenticate(kind forgeRouteKind, rt *route) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			call, err := s.verifyFIT(r)
			if err == nil {
				err = s.forgeAdmissible(r.Context(), kind, call)
			}
			var p *tenon.Principal
			if err == nil {
				p, err = s.admitForge(r.Context(), call)
			}
			if err != nil {
				s.refuseForge(w, r, kind, err)
				return
			}
			noteClientKey(r.Context(), p.ClientKey())
			if rt.requireLicense {
				if err := s.forgeLicensed(r.Context(), p); err != nil {
					s.refuseForge(w, r, kind, err)
					return
				}
			}
			next.ServeHTTP(w, r.WithContext(tenon.WithPrincipal(r.Context(), p)))
		})
	}
}

func (s *Server) refuseForge(w http.ResponseWriter, r *http.Request, kind forgeRouteKind, err error) {
	code := tenon.ErrorCode(err)
	attrs := []any{"route", r.Pattern, "kind", kind.String(), "reason", tenon.ErrorMessage(err)}
	if statusOf(code) >= 500 {
		s.log.ErrorContext(r.Context(), "request refused", append(attrs, "err", err)...)
	} else {
		s.log.InfoContext(r.Context(), "request refused", attrs...)
	}
	WriteError(w, r, err)
}

// forgeToken returns the FIT of r: exactly one Authorization: Bearer
// header, and no Connect token anywhere.
func forgeToken(r *http.Request) (string, error) {
	var tok string
	n := 0
	for _, h := range r.Header["Authorization"] {
		if v, ok := cutScheme(h, "Bearer"); ok {
			tok = v
			n++
		} else {
			return "", errUnauthorized("Forge routes accept only a Forge Invocation Token as Authorization: Bearer.")
		}
	}
	if q := scanQuery(r.URL.RawQuery); q.jwts > 0 {
		return "", errUnauthorized("Forge routes accept only a Forge Invocation Token as Authorization: Bearer.")
	}
	switch {
	case n == 0:
		return "", errUnauthorized("The request carries no Forge Invocation Token (Authorization: Bearer).")
	case n > 1:
		return "", errUnauthorized("The request carries more than one token: send the token once.")
	}
	return tok, nil
}

// forgeCall is a verified Forge call: the token's claims and the OAuth
// tokens that came with it. Nothing is recorded yet.
type forgeCall struct {
	claims       *forge.Claims
	system, user string
}

// verifyFIT checks the FIT of r. It is pure: it reads the request and the
// key set, and writes nothing.
func (s *Server) verifyFIT(r *http.Request) (*forgeCall, error) {
	raw, err := forgeToken(r)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.KeyFetchTimeout)
	c, err := s.forge.verifier.Verify(ctx, raw)
	cancel()
	if err != nil {
		return nil, forgeVerifyError(err)
	}
	if want := s.cfg.ForgeEnvironment; want != "" && !strings.EqualFold(c.App.Environment.Type, want) {
		return nil, tenon.Errorf(tenon.EUNAUTHORIZED, "The token is for the Forge %s environment; this backend serves %s.",
			strings.ToLower(c.App.Environment.Type), strings.ToLower(want))
	}
	return &forgeCall{claims: c, system: oauthHeader(r, forge.SystemTokenHeader), user: oauthHeader(r, forge.UserTokenHeader)}, nil
}

// forgeAdmissible refuses, before anything is recorded, a call of an
// installation that is uninstalled, and an event or trigger of one this
// server has not seen installed when it takes Forge's lifecycle events
// (ForgeLifecycle): that event may still be on its way, so Forge is
// asked to deliver again later.
func (s *Server) forgeAdmissible(ctx context.Context, kind forgeRouteKind, call *forgeCall) error {
	id := call.claims.App.InstallationID
	rec, err := s.forge.store.ForgeInstallation(ctx, id)
	switch {
	case tenon.ErrorCode(err) == tenon.ENOTFOUND:
		if s.forge.lifecycle && (kind == forgeEventRoute || kind == forgeTriggerRoute) {
			return tenon.Errorf(tenon.EUNAVAILABLE,
				"The app has not received this site's installation event yet; deliver the event again later.")
		}
		return nil
	case err != nil:
		return tenon.WrapError(tenon.EUNAVAILABLE, "The app cannot check the site right now; try again.", err)
	case !rec.Active():
		return tenon.Errorf(tenon.EFORBIDDEN, "The app is uninstalled from this site.")
	}
	return nil
}

// admitForge is the step after verification that records what the
// verified token says: the installation (tenon.ForgeStore) and the OAuth
// tokens of the call (tenon.TokenCache, for background work). It returns
// the Principal of the call.
func (s *Server) admitForge(ctx context.Context, call *forgeCall) (*tenon.Principal, error) {
	c := call.claims
	rec, err := s.forgeInstallation(ctx, c)
	if err != nil {
		return nil, tenon.WrapError(tenon.EUNAVAILABLE, "The app cannot record the site right now; try again.", err)
	}
	s.cacheForgeTokens(ctx, rec.InstallationID, c.Principal, call.system, call.user)
	p, err := s.forgePrincipal(ctx, rec)
	if err != nil {
		return nil, err
	}
	p.AccountID = c.Principal
	p.Context = c.Context
	p.IssuedAt, p.ExpiresAt = c.IssuedAt, c.ExpiresAt
	p.License = c.LicenseActive()
	p.Forge.AppVersion = c.App.AppVersion
	p.Forge.ModuleType, p.Forge.ModuleKey = c.App.Module.Type, c.App.Module.Key
	p.Forge.License = c.App.License
	p.Forge.TokenID = c.ID
	p.Forge.SetTokens(call.system, call.user)
	return p, nil
}

// forgeVerifyError maps a forge verification error to what the caller
// sees; only an unreachable key set is the server's side (503).
func forgeVerifyError(err error) error {
	switch {
	case errors.Is(err, forge.ErrKeyUnavailable), errors.Is(err, context.DeadlineExceeded):
		return tenon.WrapError(tenon.EUNAVAILABLE, "The Forge signing keys could not be fetched; try again.", err)
	case errors.Is(err, forge.ErrExpired):
		return tenon.WrapError(tenon.EUNAUTHORIZED, "The token has expired.", err)
	case errors.Is(err, forge.ErrNotYetValid):
		return tenon.WrapError(tenon.EUNAUTHORIZED, "The token is not valid yet (nbf); check the clocks.", err)
	case errors.Is(err, forge.ErrIssuedInFuture):
		return tenon.WrapError(tenon.EUNAUTHORIZED, "The token was issued in the future; check the clocks.", err)
	case errors.Is(err, forge.ErrAudience):
		return tenon.WrapError(tenon.EUNAUTHORIZED, "The token is not addressed to this app.", err)
	case errors.Is(err, forge.ErrIssuer):
		return tenon.WrapError(tenon.EUNAUTHORIZED, "The token is not a Forge Invocation Token.", err)
	case errors.Is(err, forge.ErrAlgorithm):
		return tenon.WrapError(tenon.EUNAUTHORIZED, "Forge Invocation Tokens must be signed RS256.", err)
	case errors.Is(err, forge.ErrKeyNotFound):
		return tenon.WrapError(tenon.EUNAUTHORIZED, "The token's signing key (kid) is not one of Atlassian's Forge keys.", err)
	case errors.Is(err, forge.ErrSignature):
		return tenon.WrapError(tenon.EUNAUTHORIZED, "The token's signature is not valid.", err)
	case errors.Is(err, forge.ErrMissingClaim):
		return tenon.WrapError(tenon.EUNAUTHORIZED, "The token lacks a required claim.", err)
	}
	return tenon.WrapError(tenon.EUNAUTHORIZED, "The token is malformed.", err)
}

// oauthHeader returns one of Forge's OAuth token headers, or "" when it
// is absent, repeated or not token-shaped: such a value is neither cached
// nor forwarded.
func oauthHeader(r *http.Request, name string) string {
	vs := r.Header.Values(name)
	if len(vs) != 1 || !forge.ValidOAuthToken(vs[0]) {
		return ""
	}
	return vs[0]
}

// forgeInstallation returns the stored record of the FIT's installation,
// recording the call when the record is unknown, out of date, or its
// LastSeen is older than forgeSeenInterval.
func (s *Server) forgeInstallation(ctx context.Context, c *forge.Claims) (*tenon.ForgeInstallation, error) {
	st := s.forge
	now := s.cfg.Now()
	seen := c.Installation()
	st.mu.Lock()
	e := st.installs[seen.InstallationID]
	gen := st.gen
	st.mu.Unlock()
	if e != nil && now.Before(e.expires) && !forgeRecordDue(e.rec, seen, now) {
		return e.rec, nil
	}
	rec, err := st.store.ForgeInstallation(ctx, seen.InstallationID)
	switch {
	case tenon.ErrorCode(err) == tenon.ENOTFOUND:
		rec = nil
	case err != nil:
		return nil, err
	}
	if rec == nil || forgeRecordDue(rec, seen, now) {
		if err := st.store.RecordForgeInstallation(ctx, seen); err != nil {
			return nil, err
		}
		rec = seen
	}
	if ttl := s.cfg.TenantCacheTTL; ttl > 0 {
		st.mu.Lock()
		if st.gen == gen {
			if len(st.installs) >= forgeMemoMax {
				clear(st.installs)
			}
			st.installs[rec.InstallationID] = &forgeEntry{rec: rec, expires: now.Add(ttl)}
		}
		st.mu.Unlock()
	}
	return rec, nil
}

// forgeRecordDue reports whether a call described by seen must be
// recorded over the stored rec.
func forgeRecordDue(rec, seen *tenon.ForgeInstallation, now time.Time) bool {
	switch {
	case now.Sub(rec.LastSeen) >= forgeSeenInterval:
		return true
	case rec.AppID != seen.AppID, rec.APIBaseURL != seen.APIBaseURL, rec.Product != seen.Product,
		rec.Environment != seen.Environment:
		return true
	case seen.CloudID != "" && rec.CloudID != seen.CloudID:
		return true
	case seen.SiteURL != "" && rec.SiteURL != seen.SiteURL:
		return true
	}
	return false
}

func (st *forgeState) invalidate() {
	st.mu.Lock()
	st.gen++
	clear(st.installs)
	st.mu.Unlock()
}

// InvalidateForge drops every cached Forge installation, so the next call
// reads the store; for a process that changed links behind the server's
// back.
func (s *Server) InvalidateForge() {
	if s.forge != nil {
		s.forge.invalidate()
	}
}

// forgePrincipal returns a Principal bound to the tenant of rec: the
// linked Connect tenant, or a record with the Forge tenant key.
func (s *Server) forgePrincipal(ctx context.Context, rec *tenon.ForgeInstallation) (*tenon.Principal, error) {
	var inst *tenon.Installation
	if rec.Linked() {
		t, err := s.tenants.get(ctx, rec.ClientKey)
		switch {
		case err == nil:
			cp := *t.inst // the cached record is shared
			// The Forge installation's lifecycle governs Forge calls: a
			// Connect tenant the Forge app superseded (or whose Connect
			// app was uninstalled) still holds the site's data.
			cp.State = tenon.StateEnabled
			inst = &cp
		case tenon.ErrorCode(err) != tenon.ENOTFOUND:
			return nil, tenon.WrapError(tenon.EUNAVAILABLE, "The app cannot check the site right now; try again.", err)
		}
	}
	if inst == nil {
		// A Forge-only site, or a linked tenant whose record was purged:
		// the data stays under the installation's tenant key.
		inst = &tenon.Installation{
			ClientKey:      rec.ClientKey,
			BaseURL:        rec.SiteURL,
			ProductType:    rec.Product,
			InstallationID: rec.InstallationID,
			CloudID:        rec.CloudID,
			State:          tenon.StateEnabled,
			InstalledAt:    rec.FirstSeen,
			UpdatedAt:      rec.LastSeen,
		}
	}
	p := s.principal(inst)
	p.Kind = tenon.TokenForge
	p.Forge = &tenon.ForgeContext{
		InstallationID: rec.InstallationID,
		AppID:          rec.AppID,
		CloudID:        rec.CloudID,
		SiteURL:        rec.SiteURL,
		APIBaseURL:     rec.APIBaseURL,
		Environment:    rec.Environment,
		Linked:         rec.Linked(),
	}
	return p, nil
}

// cacheForgeTokens stores the OAuth tokens of a call in the token cache
// by their exp, so background work can use them after the request. A
// token is written only when none was written yet or the written one is
// about to expire, not on every call. Failures are logged: the call
// itself does not need the cache.
func (s *Server) cacheForgeTokens(ctx context.Context, installationID, accountID, system, user string) {
	st := s.forge
	if st.tokens == nil {
		return
	}
	put := func(key, token string) {
		if token == "" {
			return
		}
		exp, ok := forge.TokenExpiry(token)
		now := s.cfg.Now()
		if !ok || !exp.After(now) {
			return
		}
		st.mu.Lock()
		last, known := st.written[key]
		due := !known || (exp.After(last) && last.Sub(now) < forgeTokenRewriteBefore)
		st.mu.Unlock()
		if !due {
			return
		}
		if err := st.tokens.PutToken(ctx, key, token, exp); err != nil {
			s.log.WarnContext(ctx, "caching a Forge token failed", "installation_id", installationID, "err", err)
			return
		}
		st.mu.Lock()
		if len(st.written) >= forgeMemoMax {
			clear(st.written)
		}
		st.written[key] = exp
		st.mu.Unlock()
	}
	put(tenon.ForgeSystemTokenKey(installationID), system)
	if accountID != "" {
		put(tenon.ForgeUserTokenKey(installationID, accountID), user)
	}
}

// ForgePrincipal returns a Principal for background work on a Forge
// installation: bound to the site's tenant (as resolved now, so a link
// made since the work was queued counts), Kind tenon.TokenForge, with the
// cached system token and, when accountID is given, that user's cached
// token (each "" when none is valid). An unknown installation gives
// ENOTFOUND.
func (s *Server) ForgePrincipal(ctx context.Context, installationID, accountID string) (*tenon.Principal, error) {
	if s.forge == nil {
		return nil, tenon.Errorf(tenon.ENOTFOUND, "Forge is not configured on this server.")
	}
	rec, err := s.forge.store.ForgeInstallation(ctx, installationID)
	if err != nil {
		return nil, err
	}
	p, err := s.forgePrincipal(ctx, rec)
	if err != nil {
		return nil, err
	}
	p.AccountID = accountID
	var system, user string
	if tc := s.forge.tokens; tc != nil {
		now := s.cfg.Now()
		system, _, _ = tc.Token(ctx, tenon.ForgeSystemTokenKey(installationID), now)
		if accountID != "" {
			user, _, _ = tc.Token(ctx, tenon.ForgeUserTokenKey(installationID, accountID), now)
		}
	}
	p.Forge.SetTokens(system, user)
	return p, nil
}
