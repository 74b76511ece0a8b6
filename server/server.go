// Package server is the HTTP side of a Connect app: it serves the app
// descriptor, handles the signed lifecycle callbacks that create and
// change tenants, authenticates every request from the product before an
// app handler sees it, and writes every error the same short way.
//
// Routes come in four kinds, and the kind decides which token is accepted:
//
//   - Module: iframe pages and server-to-server calls. HS256 with the
//     tenant's shared secret, qsh equal to the hash of this very request.
//   - Webhook: like Module, for the product's webhook deliveries. With
//     OnWebhook a delivery is stored in the job queue before it is
//     acknowledged and processed afterwards, with retries (webhooks.go).
//   - API: routes called by the app's own browser code with a context
//     token from AP.context.getToken. HS256, qsh exactly "context-qsh".
//   - Public: no authentication (static files, health checks).
//
// Lifecycle routes are mounted from the descriptor. installed and
// uninstalled must be signed by Atlassian with RS256 (signed install),
// with the key looked up by kid on the configured key server; enabled and
// disabled are HS256 with the tenant's current shared secret.
//
// Every route is mounted under the path of Config.BaseURL, and every qsh
// is computed relative to it, as the product does.
//
// New starts no goroutines; Server.Run runs the background work next to
// serving: the job runner, and Server.Watch, which follows tenant changes
// a store shared by several nodes reports through
// tenon.InstallationWatcher (without it, changes made by another node are
// seen within Config.TenantCacheTTL).
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/connectjwt"
	"github.com/tenon-dev/tenon/jobs"
)

// Server serves a Connect app. Create it with New, register routes, then
// use it as an http.Handler. Routes must be registered before serving
// starts.
type Server struct {
	cfg        Config
	basePath   string // path of BaseURL without trailing slash; "" at the root
	desc       *descriptor
	descriptor []byte // served bytes, baseUrl spliced in
	mux        *http.ServeMux
	tenants    *tenantCache
	settings   *settingsCache // maintenance mode and notices
	work       *work          // queued webhooks and jobs (webhooks.go)
	forge      *forgeState    // Forge routes (forge.go); nil when not configured
	verifier   connectjwt.Verifier
	log        *slog.Logger
	// allJSOrigin is the origin of Config.AllJSURL, for the license
	// page's Content-Security-Policy.
	allJSOrigin string
	// routes are the app's registrations, in order (Routes); setupErrs
	// the registration mistakes collected instead of panicking
	// (SetupError).
	routes    []Route
	setupErrs []error
}

// Route is one route an app registered, for checks against the
// descriptor and manifest (package lint) and for tooling.
type Route struct {
	// Kind is "module", "api", "webhook", "public", "forge-remote",
	// "forge-event" or "forge-trigger".
	Kind string
	// Pattern is the ServeMux pattern relative to the base URL, with the
	// method the kind implies ("POST /hooks/issue"); "" for an OnWebhook
	// event the descriptor declares no url for.
	Pattern string
	// Event is the webhook event of an OnWebhook route.
	Event string
}

// principal is the one constructor of the principals the server hands to
// handlers: bound to inst's data and to the product clients.
func (s *Server) principal(inst *tenon.Installation) *tenon.Principal {
	p := tenon.NewPrincipal(inst, s.cfg.Store)
	tenon.BindProducts(p, s.cfg.Products)
	return p
}

// TenantData returns the app data of the tenant clientKey, for work on a
// tenant outside a request that verified it: lifecycle and personal-data
// hooks, jobs. Never pass it a clientKey taken from an unverified request;
// handlers use Principal.Data.
func (s *Server) TenantData(clientKey string) *tenon.TenantData {
	return tenon.NewPrincipal(&tenon.Installation{ClientKey: clientKey}, s.cfg.Store).Data()
}

// Products returns the product clients of Config.Products, for code that
// calls the product outside a request (nil when none is configured).
func (s *Server) Products() tenon.ProductClients { return s.cfg.Products }

// Routes returns the routes registered so far, Forge routes included
// when Forge is off and they are not mounted. The caller must not
// modify the result.
func (s *Server) Routes() []Route { return s.routes }

// SetupError reports the registration mistakes collected so far, nil
// when there is none: OnWebhook for an event the descriptor declares no
// webhook for. Run refuses to start while there is one; the command line
// reports them with their place in the descriptor before serving.
func (s *Server) SetupError() error { return errors.Join(s.setupErrs...) }

// record notes a registration for Routes.
func (s *Server) record(kind, pattern, defaultMethod, event string) {
	method, path := splitPattern(pattern, defaultMethod)
	if method != "" {
		path = method + " " + path
	}
	s.routes = append(s.routes, Route{Kind: kind, Pattern: path, Event: event})
}

// splitPattern splits a route pattern into its method (defaultMethod
// when it names none) and path.
func splitPattern(pattern, defaultMethod string) (method, path string) {
	path = strings.TrimSpace(pattern)
	if i := strings.IndexAny(path, " \t"); i >= 0 {
		method, path = path[:i], strings.TrimLeft(path[i:], " \t")
	}
	if method == "" {
		method = defaultMethod
	}
	return method, path
}

// HandlerFunc is an app handler. A returned error is written by the
// server: a tenon.Error as its code's status and its message, anything
// else as a 500 whose detail is logged, not shown. An error returned
// after the handler started its response is only logged.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// RouteOption adjusts one route.
type RouteOption func(*route)

// RequireLicense refuses requests whose Principal is not licensed
// (lic=active) with 403: a page that shows inside the product's iframe on
// Module routes, JSON elsewhere. On Module routes the license comes from
// the lic parameter, which the qsh covers; on API routes from the context
// token's context.license.active, since the query of a context-token
// request is not signed. The lic parameter is only sent when the
// descriptor sets enableLicensing. It is a fast first check; the
// authoritative one is the product's REST API.
func RequireLicense() RouteOption {
	return func(rt *route) { rt.requireLicense = true }
}

// BodyLimit sets the largest request body of one route, overriding
// Config.MaxBodyBytes.
func BodyLimit(n int64) RouteOption {
	return func(rt *route) {
		if n > 0 {
			rt.maxBody = n
		}
	}
}

type routeKind uint8

const (
	kindModule routeKind = iota + 1
	kindAPI
	kindWebhook
)

func (k routeKind) String() string {
	switch k {
	case kindModule:
		return "module"
	case kindAPI:
		return "api"
	case kindWebhook:
		return "webhook"
	}
	return "unknown"
}

func (k routeKind) tokenKind() tenon.TokenKind {
	switch k {
	case kindAPI:
		return tenon.TokenContext
	case kindWebhook:
		return tenon.TokenWebhook
	}
	return tenon.TokenIframe
}

type route struct {
	kind           routeKind
	requireLicense bool
	maxBody        int64
	queue          []jobs.QueueOption // OnWebhook only
}

// New checks cfg and the descriptor and returns a Server with the
// descriptor and lifecycle routes mounted. Errors say which setting or
// descriptor field to fix.
func New(cfg Config) (*Server, error) {
	base, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	// A pure Forge app has no Connect descriptor: no descriptor is
	// served (404) and no Connect lifecycle route is mounted; only its
	// Forge routes and public ones can be registered.
	desc, served := &descriptor{}, []byte(nil)
	if len(cfg.Descriptor) > 0 {
		if desc, err = parseDescriptor(cfg.Descriptor); err != nil {
			return nil, err
		}
		if served, err = spliceBaseURL(cfg.Descriptor, cfg.BaseURL); err != nil {
			return nil, err
		}
	}
	s := &Server{
		cfg:        cfg,
		basePath:   strings.TrimRight(base.EscapedPath(), "/"),
		desc:       desc,
		descriptor: served,
		mux:        http.NewServeMux(),
		tenants:    newTenantCache(cfg.Store, cfg.TenantCacheTTL, cfg.Now),
		settings:   newSettingsCache(&cfg),
		verifier:   connectjwt.Verifier{Now: cfg.Now, Leeway: cfg.Leeway},
		log:        slog.New(requestIDHandler{cfg.Logger.Handler()}),
	}
	s.work = newWork(&cfg, s.log)
	if s.forge, err = newForge(s); err != nil {
		return nil, err
	}
	if u, err := url.Parse(cfg.AllJSURL); err == nil {
		s.allJSOrigin = u.Scheme + "://" + u.Host
	}

	if served == nil {
		return s, nil
	}
	s.mux.Handle("GET "+s.basePath+"/atlassian-connect.json", limitBody(cfg.MaxBodyBytes)(http.HandlerFunc(s.serveDescriptor)))
	lifecycle := []struct {
		name string
		path string
		h    HandlerFunc
	}{
		{"installed", desc.Lifecycle.Installed, s.handleInstalled},
		{"uninstalled", desc.Lifecycle.Uninstalled, s.handleUninstalled},
		{"enabled", desc.Lifecycle.Enabled, s.handleEnabled},
		{"disabled", desc.Lifecycle.Disabled, s.handleDisabled},
	}
	for _, l := range lifecycle {
		if l.path == "" {
			// The product calls only the lifecycle URLs the descriptor
			// declares; a route nobody calls would only be surface.
			continue
		}
		path, _, _ := strings.Cut(l.path, "?")
		h := limitBody(LifecycleMaxBodyBytes)(s.adapt(l.h))
		if err := s.handle("POST "+s.basePath+path, h); err != nil {
			return nil, fmt.Errorf("server: mounting lifecycle.%s: %w", l.name, err)
		}
	}
	if desc.Lifecycle.Uninstalled == "" {
		s.log.Warn("the descriptor declares no lifecycle.uninstalled: tenants that uninstall the app keep authenticating until removed by hand")
	}
	return s, nil
}

// handle registers on the mux, turning its panic on a bad or conflicting
// pattern into an error.
func (s *Server) handle(pattern string, h http.Handler) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%v", v)
		}
	}()
	s.mux.Handle(pattern, h)
	return nil
}

// AppKey returns the descriptor's app key; "" for a pure Forge app.
func (s *Server) AppKey() string { return s.desc.Key }

// AllJSURL returns where pages load the AP library from (Config.AllJSURL).
func (s *Server) AllJSURL() string { return s.cfg.AllJSURL }

// Descriptor returns the descriptor as served, with Config.BaseURL spliced
// in; nil for a pure Forge app. The caller must not modify it.
func (s *Server) Descriptor() []byte { return s.descriptor }

// Module mounts an iframe or server-to-server route. pattern is a
// net/http ServeMux pattern ("GET /page/{id}" or "/page") relative to the
// app's base URL. Requests need an HS256 token whose qsh is the hash of
// this request. Like http.ServeMux, it panics on an invalid or
// conflicting pattern: that is a programming error found at start-up.
func (s *Server) Module(pattern string, h HandlerFunc, opts ...RouteOption) {
	s.register(kindModule, pattern, "", h, opts)
}

// API mounts a route for the app's browser code. Requests need a context
// token (qsh "context-qsh") from AP.context.getToken; iframe tokens are
// refused, so a token leaked from one page URL cannot call the API.
func (s *Server) API(pattern string, h HandlerFunc, opts ...RouteOption) {
	s.register(kindAPI, pattern, "", h, opts)
}

// Webhook mounts a webhook route. pattern may be the descriptor's webhook
// url, query template included ("/hooks/issue?id={issue.id}"): only its
// path is mounted, and POST is assumed when no method is given. Requests
// need an HS256 token whose qsh is the hash of this request.
func (s *Server) Webhook(pattern string, h HandlerFunc, opts ...RouteOption) {
	pattern, _, _ = strings.Cut(pattern, "?")
	s.register(kindWebhook, pattern, http.MethodPost, h, opts)
}

// Public mounts a route without authentication, for static files and
// health checks. Request bodies are limited to Config.MaxBodyBytes.
func (s *Server) Public(pattern string, h http.Handler) {
	full := s.mountPattern(pattern, "")
	s.record("public", pattern, "", "")
	s.mux.Handle(full, limitBody(s.cfg.MaxBodyBytes)(h))
}

func (s *Server) register(kind routeKind, pattern, defaultMethod string, h HandlerFunc, opts []RouteOption) {
	if s.descriptor == nil && (kind == kindModule || kind == kindAPI || kind == kindWebhook) {
		panic(fmt.Sprintf("server: %s route %q: a pure Forge app (no Connect descriptor) has no Connect routes; use ForgeRemote, ForgeEvent or ForgeTrigger", kind, pattern))
	}
	rt := &route{kind: kind, maxBody: s.cfg.MaxBodyBytes}
	for _, o := range opts {
		o(rt)
	}
	if rt.requireLicense && !s.desc.EnableLicensing {
		s.log.Warn("route requires a license but the descriptor does not set enableLicensing, so the product sends no license and every request is refused",
			"route", pattern)
	}
	full := s.mountPattern(pattern, defaultMethod)
	s.record(kind.String(), pattern, defaultMethod, "")
	s.mux.Handle(full, limitBody(rt.maxBody)(s.maintenanceGate(rt)(s.authenticate(rt)(s.adapt(h)))))
}

// mountPattern puts the base path in front of a pattern's path.
func (s *Server) mountPattern(pattern, defaultMethod string) string {
	method, path := splitPattern(pattern, defaultMethod)
	if !strings.HasPrefix(path, "/") {
		panic(fmt.Sprintf("server: pattern %q: the path must start with '/' and is relative to the app's base URL (host patterns are not supported)", pattern))
	}
	if method != "" {
		return method + " " + s.basePath + path
	}
	return s.basePath + path
}

// limitBody caps the request body, so no route reads an unbounded amount.
// A body known to be too large is refused before anything reads it.
func limitBody(n int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > n {
				WriteError(w, r, tenon.Errorf(tenon.ETOOLARGE, "The request body is larger than %d bytes.", n))
				return
			}
			if r.Body != nil && r.Body != http.NoBody {
				r.Body = http.MaxBytesReader(w, r.Body, n)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// adapt turns a HandlerFunc into an http.Handler that writes its error.
func (s *Server) adapt(h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.handlerError(w, r, err)
		}
	})
}

func (s *Server) handlerError(w http.ResponseWriter, r *http.Request, err error) {
	err = normalize(err)
	if isClientGone(r, err) {
		return
	}
	code := tenon.ErrorCode(err)
	if statusOf(code) >= 500 {
		s.log.ErrorContext(r.Context(), "handler failed", "route", r.Pattern, "code", code, "err", err)
	}
	if rw, ok := w.(*responseWriter); ok && rw.wrote {
		s.log.ErrorContext(r.Context(), "handler returned an error after starting its response", "route", r.Pattern, "code", code)
		return
	}
	WriteError(w, r, err)
}

func (s *Server) serveDescriptor(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(s.descriptor)
}

// ServeHTTP dispatches to the registered routes. Panics are recovered and
// answered with 500; unknown paths and wrong methods get the same error
// format as everything else.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rw := &responseWriter{ResponseWriter: w}
	r = s.beginRequest(rw, r)
	defer s.endRequest(rw, r) // runs last: sees the status a panic left
	defer s.recoverPanic(rw, r)
	if _, pattern := s.mux.Handler(r); pattern == "" {
		s.noRoute(rw, r)
		return
	}
	s.mux.ServeHTTP(rw, r)
}

// noRoute answers a request no pattern matched: 405 with Allow when the
// path exists for other methods, else 404.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	h, _ := s.mux.Handler(r)
	probe := &statusProbe{header: http.Header{}}
	h.ServeHTTP(probe, r)
	if probe.status == http.StatusMethodNotAllowed {
		if allow := probe.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		writeProblem(w, http.StatusMethodNotAllowed, "method_not_allowed", "This method is not allowed here.", wantsHTML(r))
		return
	}
	WriteError(w, r, tenon.Errorf(tenon.ENOTFOUND, "Not found."))
}

func (s *Server) recoverPanic(rw *responseWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	s.log.ErrorContext(r.Context(), "handler panicked", "route", r.Pattern, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	if !rw.wrote {
		writeProblem(rw, http.StatusInternalServerError, tenon.EINTERNAL, "Internal error.", wantsHTML(r))
	}
}

// InvalidateTenant drops the cached record of clientKey, so the next
// request reads it from the store. A store watcher calls it when another
// node changed the tenant; an empty clientKey drops every tenant.
func (s *Server) InvalidateTenant(clientKey string) {
	s.tenants.invalidate(clientKey)
}

// Watch follows installation changes reported by the store, when it
// implements tenon.InstallationWatcher, and drops the changed tenants
// from the cache. It blocks until ctx ends, re-establishing a failed
// watch with backoff, and returns nil at once for a store that cannot
// watch (the cache TTL then bounds staleness). New starts no goroutine
// on purpose: the process that owns the lifetimes decides whether and
// where to run this.
func (s *Server) Watch(ctx context.Context) error {
	watcher, ok := s.cfg.Store.(tenon.InstallationWatcher)
	if !ok {
		return nil
	}
	const maxBackoff = 30 * time.Second
	backoff := time.Second
	for {
		// Changes made while no watch ran were missed: start clean.
		s.tenants.invalidate("")
		started := s.cfg.Now()
		err := watcher.WatchInstallations(ctx, s.InvalidateTenant)
		if ctx.Err() != nil {
			return nil
		}
		if s.cfg.Now().Sub(started) > maxBackoff {
			backoff = time.Second
		}
		s.log.Warn("installation watch ended; restarting", "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// NewHTTPServer returns an http.Server for s with timeouts that keep slow
// or idle clients from holding connections, and the server's own errors
// logged through the configured logger.
func (s *Server) NewHTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		// Iframe URLs carry a JWT and context parameters; 64 KiB leaves
		// room for them and still bounds memory per connection.
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// audienceOK reports whether a signed lifecycle token is addressed to
// this app: its base URL or one of the extra audiences.
func (s *Server) audienceOK(c *connectjwt.Claims) bool {
	if c.HasAudience(s.cfg.BaseURL) {
		return true
	}
	for _, a := range s.cfg.ExtraAudiences {
		if c.HasAudience(a) {
			return true
		}
	}
	return false
}

// responseWriter records whether a response was started, so a late error
// or a panic does not write a second one, and its status, size and start
// for the request log.
type responseWriter struct {
	http.ResponseWriter
	wrote  bool
	status int
	bytes  int64
	start  time.Time
}

func (w *responseWriter) WriteHeader(code int) {
	if code >= 200 {
		w.wrote = true
		if w.status == 0 {
			w.status = code
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	w.wrote = true
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Flush lets handlers stream through the wrapper.
func (w *responseWriter) Flush() {
	w.wrote = true
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// statusProbe captures what the mux's own 404/405 handler would write.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header { return p.header }
func (p *statusProbe) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}
func (p *statusProbe) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}

var _ http.Handler = (*Server)(nil)
