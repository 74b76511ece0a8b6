package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/forge"
	"github.com/tenon-dev/tenon/jobs"
)

// Forge Remote routes.
//
// A Forge app with a remote backend calls it in three ways, each with a
// Forge Invocation Token (FIT) as `Authorization: Bearer`:
//
//   - ForgeRemote: UI invocations (invokeRemote, requestRemote) from the
//     app's front end. Any method; the handler answers like an API route.
//   - ForgeEvent: product and lifecycle events routed to an endpoint.
//   - ForgeTrigger: scheduled triggers routed to an endpoint.
//
// Events and triggers must be answered within Forge's 5 s budget, and
// Forge delivers them again (up to 4 times) when it gets no 2xx. So they
// are verified, stored in the job queue, answered 202, and handed to the
// handler by the job runner (Server.Run), like OnWebhook. A delivery that
// cannot be stored gets 503 and comes again.
//
// The handler receives the same tenon.Principal as Connect handlers: its
// Data is the data of the site's tenant, whichever way the call came (see
// the identity model in tenon.ForgeStore and docs/ARCHITECTURE.md), and
// Principal.Forge describes the Forge side, with the OAuth tokens Forge
// sent along. Those tokens are also cached in the store (tenon.TokenCache)
// by their exp, so background work can call the product after the
// request ended (hostclient.Client.ForgeAsApp).

// Defaults of the Forge side.
const (
	// forgeSeenInterval is how often an installation's LastSeen is
	// written while Forge keeps calling: a coarse record, not a write per
	// request.
	forgeSeenInterval = 15 * time.Minute
	// forgeTokenRewriteBefore: a cached OAuth token is replaced by the
	// fresher one a call brings once it has less than this left.
	forgeTokenRewriteBefore = 15 * time.Minute
	// forgeMemoMax bounds the in-memory maps of the Forge side.
	forgeMemoMax = 100_000
)

// ForgeQueue is the job queue of the Forge event or trigger route mounted
// at path (the route.path of the manifest's endpoint): "forge:" + path.
func ForgeQueue(path string) string { return "forge:" + path }

// ForgeEvent is one Forge event or scheduled trigger, as stored before it
// was acknowledged.
type ForgeEvent struct {
	// Kind is "event" or "trigger".
	Kind string
	// Type is the body's eventType, e.g. "avi:jira:deleted:issue"; "" for
	// a trigger.
	Type string
	// ID identifies the event for deduplication: a hash of its body
	// without Forge's retry information for events (Forge sends no event
	// id, and redelivers an event with a new token), the token's jti for
	// triggers.
	ID string
	// Retry is retryContext.retryCount of the body: how many deliveries
	// Forge had made before this one.
	Retry int
	// ModuleKey is the app.module.key of the token.
	ModuleKey string
	// Body is the JSON body as Forge sent it.
	Body json.RawMessage
	// ReceivedAt is when the delivery was acknowledged.
	ReceivedAt time.Time
	// JobID and Attempt identify this processing attempt.
	JobID   int64
	Attempt int
}

// ForgeEventHandler processes a queued Forge event or trigger for the
// site of p (Principal.Forge set; its tokens are the ones cached for the
// installation, when still valid). Errors retry the event with backoff,
// except EINVALID and jobs.Permanent errors, which bury it. Handlers must
// be idempotent: delivery is at least once.
type ForgeEventHandler func(ctx context.Context, p *tenon.Principal, ev *ForgeEvent) error

// forgeState is the Forge side of a Server; nil when Forge is not
// configured.
type forgeState struct {
	verifier *forge.Verifier
	store    tenon.ForgeStore
	tokens   tenon.TokenCache // nil: tokens live for the request only

	mu       sync.Mutex
	installs map[string]*forgeEntry // by installationId
	gen      uint64                 // bumped by invalidate, like the tenant cache
	written  map[string]time.Time   // token cache key → exp of the token last written
}

type forgeEntry struct {
	rec     *tenon.ForgeInstallation
	expires time.Time
}

// newForge builds the Forge side from the configuration: nothing without
// Config.ForgeAppID. It also links Forge installations to a Connect
// tenant when that tenant installs (see tenon.ForgeStore).
func newForge(s *Server) (*forgeState, error) {
	cfg := &s.cfg
	fs, isForgeStore := cfg.Store.(tenon.ForgeStore)
	if isForgeStore {
		appHook := cfg.Hooks.Installed
		cfg.Hooks.Installed = func(ctx context.Context, in *tenon.Installation) {
			s.linkForge(ctx, fs, in.ClientKey)
			if appHook != nil {
				appHook(ctx, in)
			}
		}
	}
	if cfg.ForgeAppID == "" {
		if cfg.ForgeKeys != nil {
			return nil, errors.New("server: Config.ForgeKeys is set but Config.ForgeAppID is empty: set the Forge app id (app.id of manifest.yml)")
		}
		return nil, nil
	}
	if cfg.ForgeKeys == nil {
		return nil, errors.New("server: Config.ForgeKeys is nil: use a forge.JWKS on the environment's JWKS URL (Environment.Defaults().ForgeJWKSURL)")
	}
	if !isForgeStore {
		return nil, fmt.Errorf("server: Forge needs a store that records Forge installations: Config.Store (%T) does not implement tenon.ForgeStore", cfg.Store)
	}
	v, err := forge.NewVerifier(forge.VerifierOptions{
		AppID: cfg.ForgeAppID, Keys: cfg.ForgeKeys, Now: cfg.Now, Leeway: cfg.Leeway, AllowHTTP: cfg.AllowHTTP,
	})
	if err != nil {
		return nil, fmt.Errorf("server: Config.ForgeAppID: %w", err)
	}
	st := &forgeState{verifier: v, store: fs, installs: map[string]*forgeEntry{}, written: map[string]time.Time{}}
	st.tokens, _ = cfg.Store.(tenon.TokenCache)
	if st.tokens == nil {
		s.log.Warn("the store does not cache tokens (tenon.TokenCache): Forge OAuth tokens are usable during their request only")
	}
	return st, nil
}

// linkForge links the Forge-only installations of a site whose Connect
// tenant just installed. It runs after the install was acknowledged; if
// it fails (or the process dies first), the next recorded Forge call of
// the site links it.
func (s *Server) linkForge(ctx context.Context, fs tenon.ForgeStore, clientKey string) {
	linked, err := fs.LinkForgeInstallations(ctx, clientKey)
	if err != nil {
		s.log.WarnContext(ctx, "linking the site's Forge installations failed; the next Forge call retries", "client_key", clientKey, "err", err)
		return
	}
	if len(linked) == 0 {
		return
	}
	if s.forge != nil {
		s.forge.invalidate()
	}
	s.log.InfoContext(ctx, "Forge installations linked to the Connect tenant", "client_key", clientKey, "installations", len(linked))
}

// ForgeEnabled reports whether Forge routes are served (Config.ForgeAppID
// is set).
func (s *Server) ForgeEnabled() bool { return s.forge != nil }

// forgeRouteKind is what a Forge route accepts.
type forgeRouteKind uint8

const (
	forgeRemote forgeRouteKind = iota + 1
	forgeEventRoute
	forgeTriggerRoute
)

func (k forgeRouteKind) String() string {
	switch k {
	case forgeRemote:
		return "forge-remote"
	case forgeEventRoute:
		return "forge-event"
	}
	return "forge-trigger"
}

// ForgeRemote mounts a route for UI invocations (invokeRemote,
// requestRemote) of the Forge app: pattern is relative to the app's base
// URL, like Module and API patterns, and is what the manifest's remote
// baseUrl plus the invocation's path reaches. Requests need a valid FIT;
// the handler gets the site's Principal (Kind tenon.TokenForge,
// AccountID the invoking user). One handler may serve an API route and a
// Forge route alike. RequireLicense and BodyLimit apply; note that Forge
// sends app.license only for paid apps in production. Without
// Config.ForgeAppID the route is not mounted.
func (s *Server) ForgeRemote(pattern string, h HandlerFunc, opts ...RouteOption) {
	s.record(forgeRemote.String(), pattern, "", "")
	if s.forge == nil {
		s.log.Debug("Forge route not mounted: Config.ForgeAppID is not set", "route", pattern)
		return
	}
	rt := s.forgeRoute(opts)
	if rt.requireLicense {
		s.log.Warn("RequireLicense on a Forge route: Forge sends app.license only for paid apps in production, so other environments are refused", "route", pattern)
	}
	full := s.mountPattern(pattern, "")
	// Maintenance treats UI invocations like browser-API calls.
	gate := s.maintenanceGate(&route{kind: kindAPI})
	s.mux.Handle(full, limitBody(rt.maxBody)(gate(s.forgeAuthenticate(forgeRemote, rt)(s.adapt(h)))))
}

// ForgeEvent mounts pattern (POST; the route.path of the manifest
// endpoint a trigger module's events go to) for Forge product and
// lifecycle events, and registers h for them: each delivery is verified,
// stored and answered 202, then h runs on the job runner (Server.Run).
// A second delivery of the same event is acknowledged and dropped (see
// ForgeEvent.ID). QueueOptions and BodyLimit apply. It panics without a
// job queue, like OnWebhook; without Config.ForgeAppID nothing is mounted.
func (s *Server) ForgeEvent(pattern string, h ForgeEventHandler, opts ...RouteOption) {
	s.forgeQueued(forgeEventRoute, pattern, h, opts)
}

// ForgeTrigger is ForgeEvent for scheduled triggers. A trigger is
// identified by its token's jti: a delivery Forge repeats with a new
// token runs again, so the work of a trigger must be safe to repeat.
func (s *Server) ForgeTrigger(pattern string, h ForgeEventHandler, opts ...RouteOption) {
	s.forgeQueued(forgeTriggerRoute, pattern, h, opts)
}

func (s *Server) forgeQueued(kind forgeRouteKind, pattern string, h ForgeEventHandler, opts []RouteOption) {
	s.record(kind.String(), pattern, http.MethodPost, "")
	if s.forge == nil {
		s.log.Debug("Forge route not mounted: Config.ForgeAppID is not set", "route", pattern)
		return
	}
	if h == nil {
		panic("server: " + kind.String() + " " + pattern + ": nil handler")
	}
	r := s.runner(kind.String())
	full := s.mountPattern(pattern, http.MethodPost)
	method, path, _ := strings.Cut(full, " ")
	if method != http.MethodPost {
		panic(fmt.Sprintf("server: %s %q: Forge delivers events and triggers with POST", kind, pattern))
	}
	rt := s.forgeRoute(opts)
	queue := ForgeQueue(strings.TrimPrefix(path, s.basePath))
	r.Handle(queue, s.forgeJob(h), rt.queue...)
	s.mux.Handle(full, limitBody(rt.maxBody)(s.forgeAuthenticate(kind, rt)(s.adapt(s.acceptForge(kind, queue)))))
}

func (s *Server) forgeRoute(opts []RouteOption) *route {
	rt := &route{kind: kindAPI, maxBody: s.cfg.MaxBodyBytes}
	for _, o := range opts {
		o(rt)
	}
	return rt
}

// forgeAuthenticate verifies the FIT of a request to a Forge route and
// passes the request on with its Principal.
func (s *Server) forgeAuthenticate(kind forgeRouteKind, rt *route) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, err := s.verifyForge(r)
			if err != nil {
				s.refuseForge(w, r, kind, err)
				return
			}
			noteClientKey(r.Context(), p.ClientKey())
			if rt.requireLicense && !p.Licensed() {
				s.log.InfoContext(r.Context(), "request refused", "route", r.Pattern, "kind", kind.String(),
					"client_key", p.ClientKey(), "reason", "no active license")
				writeProblem(w, http.StatusForbidden, tenon.EFORBIDDEN, licenseMessage, false)
				return
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

// verifyForge checks the FIT, records the installation and builds the
// Principal of the call.
func (s *Server) verifyForge(r *http.Request) (*tenon.Principal, error) {
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
	rec, err := s.forgeInstallation(r.Context(), c)
	if err != nil {
		return nil, tenon.WrapError(tenon.EUNAVAILABLE, "The app cannot record the site right now; try again.", err)
	}
	system, user := oauthHeader(r, forge.SystemTokenHeader), oauthHeader(r, forge.UserTokenHeader)
	s.cacheForgeTokens(r.Context(), rec.InstallationID, c.Principal, system, user)
	p, err := s.forgePrincipal(r.Context(), rec)
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
	p.Forge.SetTokens(system, user)
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
	p := tenon.NewPrincipal(inst, s.cfg.Store)
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

// forgeJobRecord is the stored form of a Forge event or trigger. It holds
// no token: background work reads the cached ones.
type forgeJobRecord struct {
	Kind           string          `json:"kind"`
	InstallationID string          `json:"installationId"`
	AccountID      string          `json:"accountId,omitempty"`
	Type           string          `json:"type,omitempty"`
	ID             string          `json:"id"`
	Retry          int             `json:"retry,omitempty"`
	ModuleKey      string          `json:"moduleKey,omitempty"`
	License        string          `json:"license,omitempty"`
	ReceivedAt     time.Time       `json:"receivedAt"`
	Body           json.RawMessage `json:"body,omitempty"`
}

// acceptForge stores a verified event or trigger and acknowledges it.
func (s *Server) acceptForge(kind forgeRouteKind, queue string) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p := tenon.PrincipalFrom(r.Context())
		if p == nil || p.Forge == nil {
			return errors.New("server: Forge delivery without a principal")
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			if err := normalize(err); tenon.ErrorCode(err) == tenon.ETOOLARGE {
				return err
			}
			return tenon.WrapError(tenon.EINVALID, "The request body could not be read.", err)
		}
		var fields struct {
			EventType    string `json:"eventType"`
			RetryContext *struct {
				RetryCount int `json:"retryCount"`
			} `json:"retryContext"`
			Payload *struct {
				EventType    string `json:"eventType"`
				RetryContext *struct {
					RetryCount int `json:"retryCount"`
				} `json:"retryContext"`
			} `json:"payload"`
		}
		if len(bytes.TrimSpace(body)) == 0 {
			body = nil
		} else if err := json.Unmarshal(body, &fields); err != nil {
			return errInvalid("The body must be a JSON object.")
		}
		rec := forgeJobRecord{
			Kind: "event", InstallationID: p.Forge.InstallationID, AccountID: p.AccountID,
			Type: fields.EventType, ModuleKey: p.Forge.ModuleKey, License: p.License,
			ReceivedAt: s.cfg.Now().UTC(), Body: body,
		}
		if fields.Payload != nil {
			if rec.Type == "" {
				rec.Type = fields.Payload.EventType
			}
			if fields.RetryContext == nil {
				fields.RetryContext = fields.Payload.RetryContext
			}
		}
		if fields.RetryContext != nil {
			rec.Retry = fields.RetryContext.RetryCount
		}
		if kind == forgeTriggerRoute {
			rec.Kind, rec.Type = "trigger", ""
			rec.ID = "jti:" + p.Forge.TokenID
		} else {
			rec.ID, err = forgeEventID(p.Forge.InstallationID, body)
			if err != nil {
				return err
			}
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(&rec); err != nil {
			return fmt.Errorf("server: encode Forge job: %w", err)
		}
		nj := tenon.NewJob{
			ClientKey: p.ClientKey(),
			DedupeKey: rec.ID,
			Payload:   bytes.TrimSuffix(buf.Bytes(), []byte("\n")),
		}
		jobID, created, err := s.work.runner.Enqueue(r.Context(), queue, nj)
		if err != nil {
			if code := tenon.ErrorCode(err); code == tenon.EINVALID || code == tenon.ETOOLARGE {
				return err
			}
			return tenon.WrapError(tenon.EUNAVAILABLE, "The event could not be stored; send it again later.", err)
		}
		s.log.DebugContext(r.Context(), "Forge "+rec.Kind+" queued", "type", rec.Type, "client_key", p.ClientKey(),
			"job", jobID, "duplicate", !created, "retry", rec.Retry)
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusAccepted)
		if created {
			_, _ = io.WriteString(w, `{"status":"queued"}`+"\n")
		} else {
			_, _ = io.WriteString(w, `{"status":"duplicate"}`+"\n")
		}
		return nil
	}
}

// forgeEventID identifies an event across Forge's redeliveries: the hash
// of the installation and the body without retryContext (at the top level
// or inside "payload"), the only part that changes between deliveries.
// Keys are sorted by the re-encoding, so the hash does not depend on the
// order Forge wrote them in.
func forgeEventID(installationID string, body []byte) (string, error) {
	h := sha256.New()
	h.Write([]byte(installationID))
	h.Write([]byte{0})
	if len(body) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var v map[string]any
		if err := dec.Decode(&v); err != nil {
			return "", errInvalid("The body must be a JSON object.")
		}
		delete(v, "retryContext")
		if p, ok := v["payload"].(map[string]any); ok {
			delete(p, "retryContext")
		}
		canon, err := json.Marshal(v)
		if err != nil {
			return "", fmt.Errorf("server: canonical Forge event: %w", err)
		}
		h.Write(canon)
	}
	return "event:" + hex.EncodeToString(h.Sum(nil)), nil
}

// forgeJob turns a stored Forge delivery back into a ForgeEvent for h.
func (s *Server) forgeJob(h ForgeEventHandler) jobs.Handler {
	return func(ctx context.Context, j tenon.Job) error {
		var rec forgeJobRecord
		if err := json.Unmarshal(j.Payload, &rec); err != nil {
			return jobs.Permanent(fmt.Errorf("server: Forge job %d: unreadable payload: %w", j.ID, err))
		}
		p, err := s.ForgePrincipal(ctx, rec.InstallationID, rec.AccountID)
		if err != nil {
			if tenon.ErrorCode(err) == tenon.ENOTFOUND {
				return jobs.Permanent(err)
			}
			return err
		}
		p.License = rec.License
		p.Forge.ModuleKey = rec.ModuleKey
		ev := &ForgeEvent{
			Kind: rec.Kind, Type: rec.Type, ID: rec.ID, Retry: rec.Retry, ModuleKey: rec.ModuleKey,
			Body: rec.Body, ReceivedAt: rec.ReceivedAt, JobID: j.ID, Attempt: j.Attempts,
		}
		err = h(tenon.WithPrincipal(ctx, p), p, ev)
		if err != nil && tenon.ErrorCode(err) == tenon.EINVALID && !jobs.IsPermanent(err) {
			err = jobs.Permanent(err)
		}
		return err
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
