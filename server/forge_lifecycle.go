package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"

	"github.com/tenon-dev/tenon"
)

// Forge lifecycle events. A trigger module subscribed to
// avi:forge:installed:app and avi:forge:upgraded:app (and to
// avi:forge:uninstalled:app, should Forge deliver one; where it does not,
// the reconciliation job finds uninstalled installations) routes them to
// the endpoint ForgeLifecycle mounts. Each delivery changes the
// installation's state durably and idempotently before it is answered,
// like Connect's lifecycle callbacks, and the hooks run after the commit
// for changes only: a redelivery is answered 204 and calls nothing.

// Forge lifecycle event types.
const (
	ForgeInstalledEvent   = "avi:forge:installed:app"
	ForgeUpgradedEvent    = "avi:forge:upgraded:app"
	ForgeUninstalledEvent = "avi:forge:uninstalled:app"
)

// ForgeLifecycleHooks are called after a Forge lifecycle change is
// committed, with a copy of the stored installation. Like Hooks, they
// cannot fail the change; a panic is recovered and logged.
type ForgeLifecycleHooks struct {
	Installed   func(ctx context.Context, in *tenon.ForgeInstallation)
	Upgraded    func(ctx context.Context, in *tenon.ForgeInstallation)
	Uninstalled func(ctx context.Context, in *tenon.ForgeInstallation)
	// Superseded is called for each Connect tenant the installation
	// replaced (Config.ForgeOnly).
	Superseded func(ctx context.Context, clientKey string, by *tenon.ForgeInstallation)
}

// ForgeLifecycle mounts pattern (POST; the route.path of the endpoint the
// lifecycle trigger module names) for Forge's lifecycle events. Once it
// is mounted, events and triggers of installations the server has not
// seen installed are answered 503, so Forge delivers them again after
// the installed event. Without Config.ForgeAppID nothing is mounted.
func (s *Server) ForgeLifecycle(pattern string, hooks ForgeLifecycleHooks) {
	s.record(forgeLifecycleRoute.String(), pattern, http.MethodPost, "")
	if s.forge == nil {
		s.log.Debug("Forge route not mounted: Config.ForgeAppID is not set", "route", pattern)
		return
	}
	full := s.mountPattern(pattern, http.MethodPost)
	if method, _, _ := strings.Cut(full, " "); method != http.MethodPost {
		panic(fmt.Sprintf("server: %s %q: Forge delivers lifecycle events with POST", forgeLifecycleRoute, pattern))
	}
	s.forge.mu.Lock()
	s.forge.lifecycle = true
	s.forge.mu.Unlock()
	h := &forgeLifecycleHandler{s: s, hooks: hooks}
	s.mux.Handle(full, limitBody(LifecycleMaxBodyBytes)(http.HandlerFunc(h.serve)))
}

type forgeLifecycleHandler struct {
	s     *Server
	hooks ForgeLifecycleHooks
}

// forgeLifecycleBody holds the fields of a lifecycle event tenon reads,
// at the top level or inside "payload".
type forgeLifecycleBody struct {
	EventType string `json:"eventType"`
	ID        string `json:"id"`
	App       struct {
		ID      string `json:"id"`
		Version string `json:"version"`
	} `json:"app"`
}

func (h *forgeLifecycleHandler) serve(w http.ResponseWriter, r *http.Request) {
	s := h.s
	call, err := s.verifyFIT(r)
	var ev *forgeLifecycleBody
	if err == nil {
		ev, err = readForgeLifecycle(r)
	}
	var in *tenon.ForgeInstallation
	var changed bool
	var superseded []string
	if err == nil {
		in, changed, superseded, err = h.apply(r.Context(), call, ev)
	}
	if err != nil {
		s.refuseForge(w, r, forgeLifecycleRoute, err)
		return
	}
	noteClientKey(r.Context(), in.ClientKey)
	s.log.InfoContext(r.Context(), "Forge lifecycle event", "event", ev.EventType, "installation_id", in.InstallationID,
		"client_key", in.ClientKey, "changed", changed, "superseded", len(superseded))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	if !changed {
		return
	}
	ctx := context.WithoutCancel(r.Context())
	switch ev.EventType {
	case ForgeInstalledEvent:
		h.run(ctx, ev.EventType, func(ctx context.Context) { call1(h.hooks.Installed, ctx, in) })
	case ForgeUpgradedEvent:
		h.run(ctx, ev.EventType, func(ctx context.Context) { call1(h.hooks.Upgraded, ctx, in) })
	case ForgeUninstalledEvent:
		h.run(ctx, ev.EventType, func(ctx context.Context) { call1(h.hooks.Uninstalled, ctx, in) })
	}
	for _, key := range superseded {
		if h.hooks.Superseded != nil {
			h.run(ctx, "superseded", func(ctx context.Context) { c := *in; h.hooks.Superseded(ctx, key, &c) })
		}
	}
}

func call1(hook func(context.Context, *tenon.ForgeInstallation), ctx context.Context, in *tenon.ForgeInstallation) {
	if hook != nil {
		c := *in
		hook(ctx, &c)
	}
}

func (h *forgeLifecycleHandler) run(ctx context.Context, what string, f func(context.Context)) {
	defer func() {
		if v := recover(); v != nil {
			h.s.log.Error("Forge lifecycle hook panicked", "event", what, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	f(ctx)
}

// readForgeLifecycle reads the body of a lifecycle delivery.
func readForgeLifecycle(r *http.Request) (*forgeLifecycleBody, error) {
	body, err := readDelivery(r)
	if err != nil {
		return nil, err
	}
	var b struct {
		forgeLifecycleBody
		Payload *forgeLifecycleBody `json:"payload"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, errInvalid("The body must be a JSON object.")
	}
	ev := b.forgeLifecycleBody
	if b.Payload != nil {
		if ev.EventType == "" {
			ev.EventType = b.Payload.EventType
		}
		if ev.App.Version == "" {
			ev.App.Version = b.Payload.App.Version
		}
	}
	switch ev.EventType {
	case ForgeInstalledEvent, ForgeUpgradedEvent, ForgeUninstalledEvent:
		return &ev, nil
	}
	return nil, errInvalid("This endpoint takes Forge lifecycle events (avi:forge:installed:app, avi:forge:upgraded:app) only.")
}

// apply commits the event and then admits the call (records it and
// caches its tokens), so the installation is recorded in the same state
// the event left it.
func (h *forgeLifecycleHandler) apply(ctx context.Context, call *forgeCall, ev *forgeLifecycleBody) (*tenon.ForgeInstallation, bool, []string, error) {
	s := h.s
	st := s.forge
	ls, ok := st.store.(tenon.ForgeLifecycleStore)
	if !ok {
		return nil, false, nil, fmt.Errorf("server: the store (%T) does not implement tenon.ForgeLifecycleStore", st.store)
	}
	now := s.cfg.Now()
	if ev.EventType == ForgeUninstalledEvent {
		id := call.claims.App.InstallationID
		changed, err := ls.ForgeUninstalled(ctx, id, now)
		switch {
		case tenon.ErrorCode(err) == tenon.ENOTFOUND:
			return nil, false, nil, tenon.Errorf(tenon.ENOTFOUND, "The app has no record of this installation.")
		case err != nil:
			return nil, false, nil, tenon.WrapError(tenon.EUNAVAILABLE, "The app cannot record the event right now; try again.", err)
		}
		st.invalidate()
		in, err := st.store.ForgeInstallation(ctx, id)
		if err != nil {
			return nil, false, nil, tenon.WrapError(tenon.EUNAVAILABLE, "The app cannot record the event right now; try again.", err)
		}
		return in, changed, nil, nil
	}
	in := call.claims.Installation()
	in.AppVersion = ev.App.Version
	if in.AppVersion == "" {
		in.AppVersion = call.claims.App.AppVersion
	}
	changed, superseded, err := ls.ForgeInstalled(ctx, in, ev.EventType == ForgeUpgradedEvent, s.cfg.ForgeOnly, now)
	switch code := tenon.ErrorCode(err); {
	case code == tenon.ECONFLICT:
		return nil, false, nil, tenon.Errorf(tenon.ECONFLICT, "The app is uninstalled from this site; a reinstall comes with a new installation.")
	case code == tenon.EINVALID:
		return nil, false, nil, err
	case err != nil:
		return nil, false, nil, tenon.WrapError(tenon.EUNAVAILABLE, "The app cannot record the event right now; try again.", err)
	}
	st.invalidate()
	for _, key := range superseded {
		s.tenants.invalidate(key)
	}
	s.cacheForgeTokens(ctx, in.InstallationID, "", call.system, "")
	return in, changed, superseded, nil
}
