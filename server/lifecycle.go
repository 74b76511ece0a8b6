package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime/debug"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/connectjwt"
)

// lifecycleBody holds the fields of a lifecycle payload the server uses.
// The whole payload is stored as received, so fields not listed survive.
type lifecycleBody struct {
	Key            string `json:"key"`
	ClientKey      string `json:"clientKey"`
	SharedSecret   string `json:"sharedSecret"`
	BaseURL        string `json:"baseUrl"`
	DisplayURL     string `json:"displayUrl"`
	ProductType    string `json:"productType"`
	OAuthClientID  string `json:"oauthClientId"`
	InstallationID string `json:"installationId"`
	CloudID        string `json:"cloudId"`
	EventType      string `json:"eventType"`
}

// Bounds on identifiers and secrets from lifecycle bodies. Real values
// are far shorter; the bounds keep junk out of the store and the logs.
const (
	maxClientKeyLen    = 256
	maxSharedSecretLen = 512
)

type lifecycleEvent string

const (
	evInstalled   lifecycleEvent = "installed"
	evUninstalled lifecycleEvent = "uninstalled"
	evEnabled     lifecycleEvent = "enabled"
	evDisabled    lifecycleEvent = "disabled"
)

// readLifecycleBody reads and checks a lifecycle payload: size, JSON,
// required fields, and that it is meant for this app.
func (s *Server) readLifecycleBody(r *http.Request, ev lifecycleEvent) (*lifecycleBody, []byte, error) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		if err := normalize(err); tenon.ErrorCode(err) == tenon.ETOOLARGE {
			return nil, nil, err
		}
		return nil, nil, tenon.WrapError(tenon.EINVALID, "The request body could not be read.", err)
	}
	var b lifecycleBody
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, nil, errInvalid("The body is not a valid JSON lifecycle payload.")
	}
	switch {
	case b.ClientKey == "":
		return nil, nil, errInvalid("The body has no clientKey.")
	case len(b.ClientKey) > maxClientKeyLen:
		return nil, nil, errInvalid("The body's clientKey is too long.")
	case b.Key == "":
		return nil, nil, errInvalid("The body has no key.")
	case b.Key != s.desc.Key:
		return nil, nil, errInvalid("The body's key is not this app's key.")
	}
	if ev == evInstalled || ev == evUninstalled {
		if b.BaseURL == "" {
			return nil, nil, errInvalid("The body has no baseUrl.")
		}
	}
	if ev == evInstalled {
		switch {
		case b.SharedSecret == "":
			return nil, nil, errInvalid("The body has no sharedSecret.")
		case len(b.SharedSecret) > maxSharedSecretLen:
			return nil, nil, errInvalid("The body's sharedSecret is too long.")
		}
	}
	return &b, raw, nil
}

// lifecycleToken returns the token of a lifecycle callback, which the
// product sends in the Authorization header only. A token in the query
// is refused outright instead of ignored, so there is never a second,
// unchecked credential on the request.
func lifecycleToken(r *http.Request) (string, error) {
	if q := scanQuery(r.URL.RawQuery); q.jwts > 0 {
		return "", errUnauthorized("Lifecycle callbacks must carry the token in the Authorization header only.")
	}
	var tok string
	n := 0
	for _, h := range r.Header["Authorization"] {
		if v, ok := cutScheme(h, "JWT"); ok {
			tok = v
			n++
		}
	}
	switch {
	case n == 0:
		return "", errUnauthorized("The callback carries no Authorization: JWT header.")
	case n > 1:
		return "", errUnauthorized("The callback carries more than one token: send the token once.")
	}
	return tok, nil
}

// verifySignedLifecycle checks an installed/uninstalled callback as
// signed by Atlassian: the token from the Authorization header, RS256
// only, then verifyAtlassianToken.
func (s *Server) verifySignedLifecycle(r *http.Request, b *lifecycleBody) error {
	raw, err := lifecycleToken(r)
	if err != nil {
		return err
	}
	tok, err := connectjwt.Parse(raw)
	if err != nil {
		return errUnauthorized("The token is malformed.")
	}
	if tok.Alg != "RS256" {
		return errUnauthorized("Lifecycle callbacks must be signed by Atlassian with RS256 (signed install).")
	}
	return s.verifyAtlassianToken(r, tok, b)
}

// verifyAtlassianToken checks an RS256 lifecycle token: the key from the
// configured key server by kid, signature and expiry, audience, request
// hash, and issuer equal to the body's clientKey, in that order.
func (s *Server) verifyAtlassianToken(r *http.Request, tok *connectjwt.Token, b *lifecycleBody) error {
	if tok.Kid == "" {
		return errUnauthorized("The token has no key id (kid).")
	}
	// The key server is outside our control: bound the wait so a slow one
	// fails this install quickly instead of holding the request.
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.KeyFetchTimeout)
	err := s.verifier.VerifyRS256(ctx, tok, s.cfg.InstallKeys)
	cancel()
	if err != nil {
		return verifyError(err)
	}
	c := &tok.Claims
	if !s.audienceOK(c) {
		return errUnauthorized("The token is not addressed to this app (aud is not its base URL).")
	}
	if err := checkRequestQSH(c.QSH, r, s.basePath); err != nil {
		return err
	}
	// Without this, a site could sign a callback that overwrites
	// another site's tenant.
	if c.Issuer != b.ClientKey {
		return errUnauthorized("The token was issued by a different site than the body's clientKey.")
	}
	return nil
}

func (s *Server) handleInstalled(w http.ResponseWriter, r *http.Request) error {
	b, raw, err := s.readLifecycleBody(r, evInstalled)
	if err != nil {
		return s.lifecycleRefused(r, evInstalled, nil, err)
	}
	if err := s.verifySignedLifecycle(r, b); err != nil {
		return s.lifecycleRefused(r, evInstalled, b, err)
	}
	if err := s.refuseDowngrade(r.Context(), b); err != nil {
		return s.lifecycleRefused(r, evInstalled, b, err)
	}
	if err := s.checkProductURL(b.BaseURL); err != nil {
		return s.lifecycleRefused(r, evInstalled, b, err)
	}
	inst := &tenon.Installation{
		ClientKey:      b.ClientKey,
		AppKey:         b.Key,
		SharedSecret:   b.SharedSecret,
		BaseURL:        b.BaseURL,
		DisplayURL:     b.DisplayURL,
		ProductType:    b.ProductType,
		OAuthClientID:  b.OAuthClientID,
		InstallationID: b.InstallationID,
		CloudID:        b.CloudID,
		Payload:        json.RawMessage(raw),
	}
	// The record before this install, to tell the operator when a site
	// comes back under its clientKey with another baseUrl (a site import,
	// a clone, a rename): never merged or split silently, but seen.
	prev, _ := s.cfg.Store.Installation(r.Context(), inst.ClientKey)
	if err := s.cfg.Store.SaveInstallation(r.Context(), inst); err != nil {
		return s.lifecycleRefused(r, evInstalled, b, storeError("The installation could not be saved; try again.", err))
	}
	if prev != nil && prev.BaseURL != inst.BaseURL {
		s.noteSiteMoved(r.Context(), prev, inst)
	}
	s.tenants.invalidate(inst.ClientKey)
	noteClientKey(r.Context(), inst.ClientKey)
	s.log.InfoContext(r.Context(), "app installed", "client_key", inst.ClientKey, "base_url", inst.BaseURL,
		"product", inst.ProductType, "state", string(inst.State))
	s.acknowledge(w)
	s.runHook(r, evInstalled, s.cfg.Hooks.Installed, inst)
	return nil
}

// noteSiteMoved logs and audits a reinstall that changed the tenant's
// baseUrl. The tenant keeps its data: the same clientKey is the same
// tenant to Atlassian; the operator decides whether that is right
// (tenon tenants show lists the audit row).
func (s *Server) noteSiteMoved(ctx context.Context, prev, inst *tenon.Installation) {
	s.log.WarnContext(ctx, "a reinstall changed the site's base URL; the tenant keeps its data (check tenon tenants show)",
		"client_key", inst.ClientKey, "old_base_url", prev.BaseURL, "base_url", inst.BaseURL)
	if as, ok := s.cfg.Store.(tenon.AuditStore); ok {
		err := as.Audit(ctx, tenon.AuditEntry{Action: tenon.AuditSiteMoved, ClientKey: inst.ClientKey, Actor: "lifecycle",
			Detail: "baseUrl " + prev.BaseURL + " -> " + inst.BaseURL})
		if err != nil {
			s.log.WarnContext(ctx, "the site move could not be audited", "client_key", inst.ClientKey, "error", err)
		}
	}
}

// refuseDowngrade refuses a reinstall that would move a tenant recorded
// with an https baseUrl to plain http, in every environment: even a
// validly signed callback must not make the app send the shared secret
// and its signed calls unencrypted from then on. It runs before the
// scheme policy (checkProductURL), so the answer says why whatever that
// policy allows.
func (s *Server) refuseDowngrade(ctx context.Context, b *lifecycleBody) error {
	if u, err := url.Parse(b.BaseURL); err != nil || u.Scheme != "http" {
		return nil // https, or not a URL: checkProductURL judges it
	}
	cur, err := s.cfg.Store.Installation(ctx, b.ClientKey)
	switch {
	case tenon.ErrorCode(err) == tenon.ENOTFOUND:
		return nil
	case err != nil:
		return storeError("The site could not be looked up; try again.", err)
	}
	if u, err := url.Parse(cur.BaseURL); err == nil && u.Scheme == "https" {
		return errInvalid("The site is installed with an https baseUrl; a reinstall cannot move it to plain http. Reinstall with the https baseUrl.")
	}
	return nil
}

// handleUninstalled marks the tenant uninstalled; its record is kept for
// the retention period. An uninstall of an unknown tenant is answered 204:
// the state the product asks for already holds, and an error would only
// show the site admin a failure nobody can fix.
func (s *Server) handleUninstalled(w http.ResponseWriter, r *http.Request) error {
	b, _, err := s.readLifecycleBody(r, evUninstalled)
	if err != nil {
		return s.lifecycleRefused(r, evUninstalled, nil, err)
	}
	if err := s.verifySignedLifecycle(r, b); err != nil {
		return s.lifecycleRefused(r, evUninstalled, b, err)
	}
	if err := s.checkProductURL(b.BaseURL); err != nil {
		return s.lifecycleRefused(r, evUninstalled, b, err)
	}
	inst, err := s.cfg.Store.SetState(r.Context(), b.ClientKey, tenon.StateUninstalled)
	s.tenants.invalidate(b.ClientKey)
	switch {
	case tenon.ErrorCode(err) == tenon.ENOTFOUND:
		s.log.InfoContext(r.Context(), "uninstall of an unknown site acknowledged", "client_key", b.ClientKey)
		s.acknowledge(w)
		return nil
	case err != nil:
		return s.lifecycleRefused(r, evUninstalled, b, storeError("The uninstall could not be recorded; try again.", err))
	}
	noteClientKey(r.Context(), inst.ClientKey)
	s.log.InfoContext(r.Context(), "app uninstalled", "client_key", inst.ClientKey)
	s.acknowledge(w)
	s.runHook(r, evUninstalled, s.cfg.Hooks.Uninstalled, inst)
	return nil
}

func (s *Server) handleEnabled(w http.ResponseWriter, r *http.Request) error {
	return s.handleStateChange(w, r, evEnabled, tenon.StateEnabled, s.cfg.Hooks.Enabled)
}

func (s *Server) handleDisabled(w http.ResponseWriter, r *http.Request) error {
	return s.handleStateChange(w, r, evDisabled, tenon.StateDisabled, s.cfg.Hooks.Disabled)
}

// handleStateChange handles enabled and disabled. The product signs them
// HS256 with the tenant's current secret, read from the store rather
// than the cache so a secret replaced a moment ago by a reinstall is the
// one checked. An RS256 token is accepted too, verified exactly like a
// signed install, so the callbacks keep working should the product sign
// them the way it signs installs. The store makes uninstalled win: a
// disabled that loses a race with uninstalled is acknowledged without
// bringing the tenant back.
func (s *Server) handleStateChange(w http.ResponseWriter, r *http.Request, ev lifecycleEvent, state tenon.State, hook func(context.Context, *tenon.Installation)) error {
	b, _, err := s.readLifecycleBody(r, ev)
	if err != nil {
		return s.lifecycleRefused(r, ev, nil, err)
	}
	raw, err := lifecycleToken(r)
	if err != nil {
		return s.lifecycleRefused(r, ev, b, err)
	}
	tok, err := connectjwt.Parse(raw)
	if err != nil {
		return s.lifecycleRefused(r, ev, b, errUnauthorized("The token is malformed."))
	}
	switch tok.Alg {
	case "HS256":
		if err := s.verifyTenantToken(r, tok, b); err != nil {
			return s.lifecycleRefused(r, ev, b, err)
		}
	case "RS256":
		if err := s.verifyAtlassianToken(r, tok, b); err != nil {
			return s.lifecycleRefused(r, ev, b, err)
		}
	default:
		return s.lifecycleRefused(r, ev, b, errUnauthorized("This callback must be signed with HS256 and the site's shared secret."))
	}

	inst, err := s.cfg.Store.SetState(r.Context(), b.ClientKey, state)
	s.tenants.invalidate(b.ClientKey)
	switch code := tenon.ErrorCode(err); {
	case code == tenon.ECONFLICT || code == tenon.ENOTFOUND:
		// Uninstalled (or purged) meanwhile: that outcome stands.
		s.log.InfoContext(r.Context(), "state change ignored: the site is uninstalled", "event", string(ev), "client_key", b.ClientKey)
		s.acknowledge(w)
		return nil
	case err != nil:
		return s.lifecycleRefused(r, ev, b, storeError("The state change could not be recorded; try again.", err))
	}
	noteClientKey(r.Context(), inst.ClientKey)
	s.log.InfoContext(r.Context(), "app "+string(ev), "client_key", inst.ClientKey)
	s.acknowledge(w)
	s.runHook(r, ev, hook, inst)
	return nil
}

// verifyTenantToken checks an HS256 lifecycle token against the
// tenant's current shared secret: issuer equal to the body's clientKey,
// a known tenant, signature and expiry, request hash.
func (s *Server) verifyTenantToken(r *http.Request, tok *connectjwt.Token, b *lifecycleBody) error {
	if tok.Claims.Issuer != b.ClientKey {
		return errUnauthorized("The token was issued by a different site than the body's clientKey.")
	}
	cur, err := s.cfg.Store.Installation(r.Context(), b.ClientKey)
	if err != nil {
		if tenon.ErrorCode(err) == tenon.ENOTFOUND {
			return errUnauthorized(msgUnknownTenant)
		}
		return storeError("The site could not be looked up; try again.", err)
	}
	if err := s.verifier.VerifyHS256(tok, []byte(cur.SharedSecret)); err != nil {
		return verifyError(err)
	}
	return checkRequestQSH(tok.Claims.QSH, r, s.basePath)
}

// storeError keeps a store's own tenon error (its message is meant for
// callers) and hides anything else behind msg.
func storeError(msg string, err error) error {
	if code := tenon.ErrorCode(err); code != tenon.EINTERNAL {
		return err
	}
	return tenon.WrapError(tenon.EINTERNAL, msg, err)
}

// lifecycleRefused logs why a lifecycle callback failed and returns err
// for the adapter to write. Only the body's clientKey is logged: the
// body may carry a shared secret and the header a token.
func (s *Server) lifecycleRefused(r *http.Request, ev lifecycleEvent, b *lifecycleBody, err error) error {
	clientKey := ""
	if b != nil {
		clientKey = clip(b.ClientKey)
	}
	attrs := []any{"event", string(ev), "client_key", clientKey, "reason", tenon.ErrorMessage(err)}
	if statusOf(tenon.ErrorCode(err)) >= 500 {
		attrs = append(attrs, "err", err)
		s.log.WarnContext(r.Context(), "lifecycle callback failed", attrs...)
	} else {
		s.log.InfoContext(r.Context(), "lifecycle callback refused", attrs...)
	}
	return err
}

// acknowledge answers 204 and flushes it, so the product has its answer
// before any hook runs.
func (s *Server) acknowledge(w http.ResponseWriter) {
	w.WriteHeader(http.StatusNoContent)
	_ = http.NewResponseController(w).Flush()
}

// runHook calls an app hook after the change was committed and
// acknowledged. Its context outlives the product hanging up, and its
// panic is contained: neither may undo the acknowledged change.
func (s *Server) runHook(r *http.Request, ev lifecycleEvent, hook func(context.Context, *tenon.Installation), inst *tenon.Installation) {
	if hook == nil {
		return
	}
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("lifecycle hook panicked", "event", string(ev), "client_key", inst.ClientKey,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	c := *inst
	hook(context.WithoutCancel(r.Context()), &c)
}
