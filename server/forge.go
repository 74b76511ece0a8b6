package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/forge"
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
	installs map[string]*forgeEntry       // by installationId
	gen      uint64                       // bumped by invalidate, like the tenant cache
	written  map[string]time.Time         // token cache key → exp of the token last written
	licenses map[string]forgeLicenseEntry // by installationId
	// lifecycle is set once ForgeLifecycle mounted the lifecycle route:
	// events of installations not yet installed are then sent back.
	lifecycle bool
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
	st := &forgeState{verifier: v, store: fs, installs: map[string]*forgeEntry{}, written: map[string]time.Time{},
		licenses: map[string]forgeLicenseEntry{}}
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
	forgeLifecycleRoute
)

func (k forgeRouteKind) String() string {
	switch k {
	case forgeRemote:
		return "forge-remote"
	case forgeEventRoute:
		return "forge-event"
	case forgeLifecycleRoute:
		return "forge-lifecycle"
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
