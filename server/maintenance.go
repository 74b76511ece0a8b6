package server

import (
	"context"
	"encoding/json"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenon-dev/tenon"
)

// Maintenance mode and notices are settings kept in the store
// (tenon.SettingsStore), so an operator switches them once for every node.
// The server reads them through a short cache: a change is seen within
// Config.SettingsCacheTTL, or at once on a store that reports changes
// (PostgreSQL, through Server.WatchSettings).
//
// While maintenance is on, Module routes answer 503 with a page that shows
// inside the product's iframe, API routes 503 with a JSON error, both with
// Retry-After. Webhooks, lifecycle callbacks and public routes are served
// as usual: what the product sends during maintenance is not lost.

// Defaults of maintenance mode.
const (
	DefaultSettingsCacheTTL = 5 * time.Second
	// DefaultMaintenanceRetryAfter is the Retry-After of a maintenance
	// window without an end.
	DefaultMaintenanceRetryAfter = 2 * time.Minute
	// settingsRetry is how soon a failed read of the settings is tried
	// again; meanwhile the last known settings stay in force.
	settingsRetry = time.Second
	// settingsReadTimeout bounds one read of the settings, so a slow
	// store delays one request, not every request.
	settingsReadTimeout = 2 * time.Second
)

const defaultMaintenanceMessage = "The app is down for maintenance. Please try again later."

// settingsSnapshot is the settings as read at one time. It is never
// modified once published.
type settingsSnapshot struct {
	maintenance *tenon.Maintenance // nil when none is stored
	global      *tenon.Notice      // nil when none is stored
	tenants     map[string]*tenon.Notice
	expires     time.Time
}

// hasNotices reports whether any notice is stored, so requests carry no
// notice lookup when there is nothing to show.
func (s *settingsSnapshot) hasNotices() bool { return s.global != nil || len(s.tenants) > 0 }

// settingsReader is the part of tenon.SettingsStore the server needs.
type settingsReader interface {
	ListSettings(ctx context.Context, prefix string) ([]tenon.KeyValue, error)
}

// settingsWatcher is implemented by stores that report setting changes
// made by any node (postgres.Store).
type settingsWatcher interface {
	WatchSettings(ctx context.Context, fn func(name string)) error
}

// settingsCache holds the current snapshot. Requests read it without
// locking; the first request after it expired reloads it while the others
// keep using the old one.
type settingsCache struct {
	store settingsReader // nil: the store keeps no settings
	ttl   time.Duration
	log   *slog.Logger

	cur    atomic.Pointer[settingsSnapshot]
	gen    atomic.Uint64 // counts invalidations
	loadMu sync.Mutex
}

var emptySettings = &settingsSnapshot{}

func newSettingsCache(cfg *Config) *settingsCache {
	c := &settingsCache{ttl: cfg.SettingsCacheTTL, log: cfg.Logger}
	if c.ttl == 0 {
		c.ttl = DefaultSettingsCacheTTL
	}
	if ss, ok := cfg.Store.(settingsReader); ok {
		c.store = ss
	}
	return c
}

// get returns the settings in force at now.
func (c *settingsCache) get(ctx context.Context, now time.Time) *settingsSnapshot {
	if c.store == nil {
		return emptySettings
	}
	snap := c.cur.Load()
	if snap != nil && now.Before(snap.expires) {
		return snap
	}
	if snap == nil {
		// Nothing known yet: every request waits for the first read.
		c.loadMu.Lock()
	} else if !c.loadMu.TryLock() {
		return snap // another request is reading; the old settings will do
	}
	defer c.loadMu.Unlock()
	if cur := c.cur.Load(); cur != nil && now.Before(cur.expires) {
		return cur
	}
	return c.load(ctx, now)
}

// load reads the settings from the store and publishes them. On failure
// the last known settings stay in force and are retried soon.
func (c *settingsCache) load(ctx context.Context, now time.Time) *settingsSnapshot {
	gen := c.gen.Load()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settingsReadTimeout)
	defer cancel()
	kvs, err := c.store.ListSettings(ctx, "")
	if err != nil {
		c.log.Warn("reading maintenance and notice settings failed; keeping the last known ones", "err", err)
		old := c.cur.Load()
		if old == nil {
			old = emptySettings
		}
		next := *old
		next.expires = now.Add(min(c.ttl, settingsRetry))
		c.cur.Store(&next)
		return &next
	}
	snap := c.parse(kvs)
	if c.ttl > 0 && c.gen.Load() == gen {
		snap.expires = now.Add(c.ttl)
	}
	// Published even when invalidated meanwhile, with expires zero: the
	// next request reads again.
	c.cur.Store(snap)
	return snap
}

func (c *settingsCache) parse(kvs []tenon.KeyValue) *settingsSnapshot {
	snap := &settingsSnapshot{}
	for _, kv := range kvs {
		switch {
		case kv.Key == tenon.SettingMaintenance:
			var m tenon.Maintenance
			if err := json.Unmarshal(kv.Value, &m); err != nil {
				c.log.Warn("the stored maintenance setting is not valid; ignored", "err", err)
				continue
			}
			snap.maintenance = &m
		case kv.Key == tenon.SettingNotice:
			if n := c.parseNotice(kv); n != nil {
				snap.global = n
			}
		case strings.HasPrefix(kv.Key, tenon.SettingTenantNoticePrefix):
			n := c.parseNotice(kv)
			if n == nil {
				continue
			}
			n.ClientKey = strings.TrimPrefix(kv.Key, tenon.SettingTenantNoticePrefix)
			if snap.tenants == nil {
				snap.tenants = make(map[string]*tenon.Notice)
			}
			snap.tenants[n.ClientKey] = n
		}
	}
	return snap
}

func (c *settingsCache) parseNotice(kv tenon.KeyValue) *tenon.Notice {
	var n tenon.Notice
	if err := json.Unmarshal(kv.Value, &n); err != nil || n.Message == "" {
		c.log.Warn("a stored notice is not valid; ignored", "setting", clip(kv.Key), "err", err)
		return nil
	}
	return &n
}

// invalidate makes the next request read the settings again.
func (c *settingsCache) invalidate() {
	c.gen.Add(1)
	if snap := c.cur.Load(); snap != nil {
		next := *snap
		next.expires = time.Time{}
		c.cur.Store(&next)
	}
}

// InvalidateSettings makes the next request read maintenance mode and
// notices from the store again.
func (s *Server) InvalidateSettings() { s.settings.invalidate() }

// WatchSettings follows setting changes reported by the store, when it
// can report them (PostgreSQL), so maintenance mode and notices switch on
// every node at once rather than within Config.SettingsCacheTTL. Like
// Watch, it blocks until ctx ends, restarts a failed watch with backoff,
// and returns nil at once for a store that cannot watch.
func (s *Server) WatchSettings(ctx context.Context) error {
	w, ok := s.cfg.Store.(settingsWatcher)
	if !ok {
		return nil
	}
	return s.retryWatch(ctx, "settings", func(ctx context.Context) error {
		// Changes made while no watch ran were missed: read afresh.
		s.settings.invalidate()
		return w.WatchSettings(ctx, func(string) { s.settings.invalidate() })
	})
}

// retryWatch runs watch until ctx ends, waiting between failures with a
// backoff that doubles up to 30 s and starts over after a long run.
func (s *Server) retryWatch(ctx context.Context, what string, watch func(context.Context) error) error {
	const maxBackoff = 30 * time.Second
	backoff := time.Second
	for {
		started := s.cfg.Now()
		err := watch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if s.cfg.Now().Sub(started) > maxBackoff {
			backoff = time.Second
		}
		s.log.Warn(what+" watch ended; restarting", "err", err, "retry_in", backoff)
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

// Maintenance returns the maintenance window in force now, if any.
func (s *Server) Maintenance(ctx context.Context) (tenon.Maintenance, bool) {
	now := s.cfg.Now()
	m := s.settings.get(ctx, now).maintenance
	if !m.Active(now) {
		return tenon.Maintenance{}, false
	}
	return *m, true
}

// maintenanceGate answers requests to Module and API routes while
// maintenance is on, and makes notices available to handlers otherwise.
// It runs before authentication: during maintenance the tenant records
// are not even read, and the page says nothing that is not public.
// Webhooks and every other route kind pass untouched: they are the
// product's deliveries and must not be lost.
func (s *Server) maintenanceGate(rt *route) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		switch rt.kind {
		case kindModule, kindAPI:
		default:
			// Webhooks and anything else the product delivers.
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			now := s.cfg.Now()
			snap := s.settings.get(r.Context(), now)
			if snap.maintenance.Active(now) {
				s.writeMaintenance(w, rt.kind == kindModule, snap.maintenance, now)
				return
			}
			if snap.hasNotices() {
				r = r.WithContext(context.WithValue(r.Context(), noticesKey{}, &noticeView{snap: snap, now: now}))
			}
			next.ServeHTTP(w, r)
		})
	}
}

type noticesKey struct{}

type noticeView struct {
	snap *settingsSnapshot
	now  time.Time
}

// Notices returns the notices an app page should show to the caller of r:
// the one for its tenant first, then the one for every tenant, each only
// while active. It works in handlers of Module and API routes and returns
// nil elsewhere and when there is nothing to show. Messages are the
// operator's plain text: escape them like any text (html/template does).
func Notices(r *http.Request) []tenon.Notice {
	v, _ := r.Context().Value(noticesKey{}).(*noticeView)
	if v == nil {
		return nil
	}
	var out []tenon.Notice
	if p := tenon.PrincipalFrom(r.Context()); p != nil {
		if n := v.snap.tenants[p.ClientKey()]; n.Active(v.now) {
			out = append(out, *n)
		}
	}
	if n := v.snap.global; n.Active(v.now) {
		out = append(out, *n)
	}
	return out
}

// retryAfter is the Retry-After of a maintenance window at now, in whole
// seconds: until its end, or the default for a window without one.
func retryAfter(m *tenon.Maintenance, now time.Time) int64 {
	if m.Until.IsZero() {
		return int64(DefaultMaintenanceRetryAfter / time.Second)
	}
	d := m.Until.Sub(now)
	return max(1, int64((d+time.Second-1)/time.Second))
}

// writeMaintenance answers a request during maintenance: a page that
// shows inside the product's iframe for Module routes, JSON otherwise.
func (s *Server) writeMaintenance(w http.ResponseWriter, page bool, m *tenon.Maintenance, now time.Time) {
	msg := m.Message
	if msg == "" {
		msg = defaultMaintenanceMessage
	}
	until := ""
	if !m.Until.IsZero() {
		until = m.Until.UTC().Format(time.RFC3339)
	}
	h := w.Header()
	h.Set("Retry-After", strconv.FormatInt(retryAfter(m, now), 10))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if !page {
		h.Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		body := struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
				Until   string `json:"until,omitempty"`
			} `json:"error"`
		}{}
		body.Error.Code, body.Error.Message, body.Error.Until = "maintenance", msg, until
		_ = json.NewEncoder(w).Encode(&body)
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src "+s.allJSOrigin+"; style-src 'unsafe-inline'; connect-src 'none'")
	w.WriteHeader(http.StatusServiceUnavailable)
	data := struct{ Message, AllJS, Until, UntilText string }{Message: msg, AllJS: s.cfg.AllJSURL, Until: until}
	if until != "" {
		data.UntilText = m.Until.UTC().Format("Monday 2 January 2006, 15:04 UTC")
	}
	_ = maintenancePage.Execute(w, data)
}

// maintenancePage loads all.js like the license page, so the product
// completes its iframe handshake and shows the page instead of a "the app
// did not load" timeout.
var maintenancePage = template.Must(template.New("maintenance").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Down for maintenance</title>
<script src="{{.AllJS}}" async></script>
<style>body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,sans-serif;color:#172b4d;margin:2em}h1{font-size:1.25em}</style>
</head><body><h1>Down for maintenance</h1><p class="message">{{.Message}}</p>
{{- if .Until}}<p>Expected back by <time datetime="{{.Until}}">{{.UntilText}}</time>.</p>{{end}}
</body></html>
`))
