package hostclient

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tenon-dev/tenon"
)

// Defaults of BudgetPolicy.
const (
	DefaultShareBurst        = 5 * time.Minute
	DefaultActiveWindow      = 10 * time.Minute
	DefaultMaxPause          = 65 * time.Minute
	DefaultQuotaPause        = time.Minute
	DefaultBurstPause        = time.Second
	DefaultBackgroundReserve = 0.1
	DefaultBudgetSync        = time.Second
	DefaultTopTenants        = 5

	// minShareTokens is the least a tenant's bucket holds, so that a
	// tenant with a tiny share can still make a call now and then.
	minShareTokens = 3
	// gateIdle is how long a per-issue write gate outlives its pause.
	gateIdle = time.Minute
	// syncTimeout bounds one exchange with the BudgetStore.
	syncTimeout = 2 * time.Second
)

// Reasons of a *RateLimitedError the client itself gives, besides the
// product's RateLimit-Reason.
const (
	// ReasonFairShare: the tenant spent its share of the app's remaining
	// budget; the call was not sent.
	ReasonFairShare = "fair_share"
	// ReasonBackground: background work yields to interactive calls
	// while little of the budget is left; the call was not sent.
	ReasonBackground = "background_yield"
)

// Limit kinds of a RateLimit-Reason (after "<product>-"), as Atlassian
// names them.
const (
	limitGlobal = "quota-global-based"
	limitTenant = "quota-tenant-based"
	limitBurst  = "burst-based"
	limitIssue  = "per-issue-on-write"
)

// BudgetPolicy configures the Governor, the part of a Resilience that
// keeps an app within the points-based rate limits of Jira and Confluence.
// The zero value means the defaults.
type BudgetPolicy struct {
	// Off turns the governor off: 429s then pause the site that got them,
	// whatever their reason.
	Off bool
	// Weight is a tenant's weight in the fair share, by Target.Site (e.g.
	// by license tier); nil or a value <= 0 means 1.
	Weight func(site string) float64
	// Cost is the points a call is expected to cost, by method and
	// endpoint (the path with its variable segments as {}); nil or a value
	// <= 0 means 1, the base cost of every Atlassian call.
	Cost func(method, endpoint string) float64
	// ShareBurst is how much of its share a tenant may spend at once: its
	// bucket holds that long a refill (at least 3 points). Default 5 min.
	ShareBurst time.Duration
	// ActiveWindow: tenants that called within it share the budget;
	// others' shares go to them. Default 10 min.
	ActiveWindow time.Duration
	// MaxShareWait is how long a call whose tenant spent its share waits
	// for it to refill (within the call's deadline); past it the call
	// fails with a *RateLimitedError (ReasonFairShare). Default 0: no wait.
	MaxShareWait time.Duration
	// MaxPause caps a pause a product asks for: a Retry-After or reset
	// further ahead is cut to it, and logged. Default 65 min.
	MaxPause time.Duration
	// QuotaPause and BurstPause are the pauses after a 429 that names no
	// usable time (missing, malformed or past), for quota limits and for
	// burst and per-issue limits. Defaults 60 s and 1 s.
	QuotaPause, BurstPause time.Duration
	// BackgroundReserve is the share of the pool kept for interactive
	// calls: background work (tenon.WithBackgroundWork) is not sent while
	// less is left, and needs more than half a bucket. Default 0.1;
	// negative means no reserve.
	BackgroundReserve float64
	// Store shares budgets between the nodes of the app. Default: the
	// Client's Options.Tokens when it implements tenon.BudgetStore (the
	// PostgreSQL store), else none: the budget is this node's own.
	Store tenon.BudgetStore
	// Node names this node in Store. Default: random.
	Node string
	// SyncEvery bounds the writes to Store: at most one per product per
	// SyncEvery, plus one when a pause starts. Default 1 s.
	SyncEvery time.Duration
	// TopTenants is how many tenants' shares are reported to a
	// tenon.RateObserver. Default 5.
	TopTenants int
	// Logger receives a line when a pause starts and ends, and when a
	// product's limit headers had to be corrected. Default: discard.
	Logger *slog.Logger
}

func (b BudgetPolicy) withDefaults() BudgetPolicy {
	if b.ShareBurst <= 0 {
		b.ShareBurst = DefaultShareBurst
	}
	if b.ActiveWindow <= 0 {
		b.ActiveWindow = DefaultActiveWindow
	}
	if b.MaxPause <= 0 {
		b.MaxPause = DefaultMaxPause
	}
	if b.QuotaPause <= 0 {
		b.QuotaPause = DefaultQuotaPause
	}
	if b.BurstPause <= 0 {
		b.BurstPause = DefaultBurstPause
	}
	if b.BackgroundReserve == 0 {
		b.BackgroundReserve = DefaultBackgroundReserve
	}
	if b.SyncEvery <= 0 {
		b.SyncEvery = DefaultBudgetSync
	}
	if b.TopTenants <= 0 {
		b.TopTenants = DefaultTopTenants
	}
	if b.Node == "" {
		var r [8]byte
		_, _ = rand.Read(r[:])
		b.Node = hex.EncodeToString(r[:])
	}
	if b.Logger == nil {
		b.Logger = slog.New(slog.DiscardHandler)
	}
	return b
}

// Governor spends an app's rate-limit budget with the products fairly. It
// reads the limit headers of every answer and keeps, per product, the
// app's quota pool (points left, reset time), a pause for all tenants
// after a global-quota 429, and a token bucket per tenant refilled from
// what is left of the pool; per (tenant, endpoint) it keeps a pause after
// a burst 429, and per issue a gate that serialises writes after a
// per-issue 429. A Resilience consults it before every attempt and tells
// it every answer; it runs on the Policy's clock.
type Governor struct {
	b     BudgetPolicy
	now   func() time.Time
	rateO tenon.RateObserver // nil when the Observer has no such capability

	mu        sync.Mutex
	products  map[string]*pool
	endpoints map[string]endpointPause // site + " " + method + " " + endpoint
	gates     map[string]*issueGate
	swept     time.Time
}

// pool is the governor's view of one product's quota pool.
type pool struct {
	product    string
	known      bool // limit, remaining and resetAt come from an answer
	limit      int64
	remaining  int64
	resetAt    time.Time
	observedAt time.Time
	nearLimit  bool

	pausedUntil time.Time
	pauseReason string
	pauseOn     bool // a pause was logged as started and not yet as ended

	shares   map[string]*share
	activeW  float64
	activeAt time.Time // when activeW was computed

	nodes    int
	lastSync time.Time
	syncing  bool
	synced   tenon.RateBudget // what the store last returned
}

// share is one tenant's bucket of a pool.
type share struct {
	tokens     float64
	last       time.Time
	lastActive time.Time
	weight     float64
	spent      float64
	window     time.Time // resetAt of the window spent counts
}

// endpointPause is a pause of one endpoint of one tenant after a burst 429.
type endpointPause struct {
	until  time.Time
	reason string
}

// issueGate serialises the writes to one issue after a per-issue 429.
type issueGate struct {
	sem       chan struct{}
	notBefore time.Time
	reason    string
}

func newGovernor(b BudgetPolicy, now func() time.Time, obs tenon.Observer) *Governor {
	g := &Governor{b: b.withDefaults(), now: now, products: map[string]*pool{},
		endpoints: map[string]endpointPause{}, gates: map[string]*issueGate{}}
	g.rateO, _ = obs.(tenon.RateObserver)
	return g
}

func (g *Governor) pool(product string) *pool {
	if product == "" {
		product = "unknown"
	}
	p := g.products[product]
	if p == nil {
		p = &pool{product: product, remaining: -1, shares: map[string]*share{}, nodes: 1}
		g.products[product] = p
	}
	return p
}

// endpointOf is the endpoint of a path, as the burst limit sees it: its
// segments with a digit in them (ids, issue keys, versions) as {}.
func endpointOf(path string) string {
	segs := strings.Split(path, "/")
	if len(segs) > 12 {
		segs = segs[:12]
	}
	for i, s := range segs {
		if strings.ContainsAny(s, "0123456789") {
			segs[i] = "{}"
		}
	}
	return strings.Join(segs, "/")
}

// issueOf is the issue a write changes, from /issue/<key>; "" for reads.
func issueOf(r *http.Request) string {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return ""
	}
	segs := strings.Split(r.URL.Path, "/")
	for i := 0; i+1 < len(segs); i++ {
		if segs[i] == "issue" && segs[i+1] != "" {
			return strings.ToUpper(segs[i+1])
		}
	}
	return ""
}

func (g *Governor) cost(method, endpoint string) float64 {
	if g.b.Cost != nil {
		if c := g.b.Cost(method, endpoint); c > 0 {
			return c
		}
	}
	return 1
}

func (g *Governor) weight(site string) float64 {
	if g.b.Weight != nil {
		if w := g.b.Weight(site); w > 0 && !math.IsInf(w, 0) {
			return w
		}
	}
	return 1
}

// admission is the governor's answer for one attempt: send now (until
// zero), or not before until, waiting at most maxWait for it.
type admission struct {
	until   time.Time
	reason  string
	maxWait time.Duration
	release func() // frees an issue gate once the attempt is over; never nil
}

func nop() {}

// admit decides whether the attempt of req to tgt may go now: at the
// clock's time, or at notBefore when that is later (the caller has waited
// until then). It may block for an issue gate until ctx ends (then the
// error is ctx's).
func (g *Governor) admit(ctx context.Context, tgt Target, req *http.Request, maxPause time.Duration, notBefore time.Time) (admission, error) {
	now := later(g.now(), notBefore)
	g.syncIfDue(ctx, tgt.Product, now, false)

	g.mu.Lock()
	g.sweepLocked(now)
	p := g.pool(tgt.Product)
	g.endPauseLocked(p, now)
	if now.Before(p.pausedUntil) {
		g.mu.Unlock()
		return admission{until: p.pausedUntil, reason: p.pauseReason, maxWait: maxPause, release: nop}, nil
	}
	endpoint := endpointOf(req.URL.Path)
	if ep, ok := g.endpoints[tgt.Site+" "+req.Method+" "+endpoint]; ok && now.Before(ep.until) {
		g.mu.Unlock()
		return admission{until: ep.until, reason: ep.reason, maxWait: maxPause, release: nop}, nil
	}
	var gate *issueGate
	if issue := issueOf(req); issue != "" {
		gate = g.gates[tgt.Site+" "+issue]
	}
	g.mu.Unlock()

	release := nop
	if gate != nil {
		select {
		case gate.sem <- struct{}{}:
		case <-ctx.Done():
			return admission{}, ctx.Err()
		}
		release = sync.OnceFunc(func() { <-gate.sem })
		g.mu.Lock()
		nb, reason := gate.notBefore, gate.reason
		g.mu.Unlock()
		if now = later(g.now(), notBefore); now.Before(nb) {
			release()
			return admission{until: nb, reason: reason, maxWait: maxPause, release: nop}, nil
		}
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	s := p.shares[tgt.Site]
	if s == nil {
		s = &share{weight: g.weight(tgt.Site)}
		p.shares[tgt.Site] = s
	}
	if s.lastActive.IsZero() || now.Sub(s.lastActive) > g.b.ActiveWindow {
		p.activeAt = time.Time{} // the active set changed
	}
	s.lastActive = now
	cost := g.cost(req.Method, endpoint)
	if !p.known || !now.Before(p.resetAt) {
		s.charge(cost, p.resetAt)
		return admission{release: release}, nil
	}
	rate, capacity := g.refillLocked(p, s, now)
	background := tenon.IsBackgroundWork(req.Context())
	if background && g.b.BackgroundReserve > 0 && p.limit > 0 &&
		float64(p.remaining) < g.b.BackgroundReserve*float64(p.limit) {
		release()
		return admission{until: p.resetAt, reason: ReasonBackground, maxWait: -1, release: nop}, nil
	}
	need := cost
	if background {
		need += capacity / 2
	}
	if s.tokens >= need {
		s.tokens -= cost
		s.charge(cost, p.resetAt)
		return admission{release: release}, nil
	}
	release()
	wait := time.Duration(math.Min((need-s.tokens)/rate, float64(p.resetAt.Sub(now)/time.Second)) * float64(time.Second))
	return admission{until: now.Add(max(wait, time.Millisecond)), reason: ReasonFairShare, maxWait: g.b.MaxShareWait, release: nop}, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (s *share) charge(cost float64, window time.Time) {
	if !s.window.Equal(window) {
		s.window, s.spent = window, 0
	}
	s.spent += cost
}

// refillLocked tops up s from p's remaining budget and returns its rate
// (points per second) and bucket size: the pool's remaining points over
// the time to its reset, split by weight among the active tenants and
// among the nodes.
func (g *Governor) refillLocked(p *pool, s *share, now time.Time) (float64, float64) {
	if p.activeAt.IsZero() || now.Sub(p.activeAt) > time.Second {
		p.activeW = 0
		for _, o := range p.shares {
			if now.Sub(o.lastActive) <= g.b.ActiveWindow {
				p.activeW += o.weight
			}
		}
		p.activeAt = now
	}
	left := math.Max(p.resetAt.Sub(now).Seconds(), 1)
	rate := float64(max(p.remaining, 0)) / left * s.weight / math.Max(p.activeW, s.weight) / float64(max(p.nodes, 1))
	rate = math.Max(rate, 1e-9)
	capacity := math.Max(minShareTokens, rate*g.b.ShareBurst.Seconds())
	if s.last.IsZero() {
		s.tokens = capacity
	} else if dt := now.Sub(s.last).Seconds(); dt > 0 {
		s.tokens = math.Min(capacity, s.tokens+dt*rate)
	}
	s.last = now
	return rate, capacity
}

// sweepLocked forgets idle tenants' shares, ended endpoint pauses and idle
// gates, at most once a minute.
func (g *Governor) sweepLocked(now time.Time) {
	if now.Sub(g.swept) < time.Minute {
		return
	}
	g.swept = now
	for k, ep := range g.endpoints {
		if !now.Before(ep.until) {
			delete(g.endpoints, k)
		}
	}
	for k, gt := range g.gates {
		if now.Sub(gt.notBefore) > gateIdle && len(gt.sem) == 0 {
			delete(g.gates, k)
		}
	}
	for _, p := range g.products {
		for site, s := range p.shares {
			if now.Sub(s.lastActive) > 2*g.b.ActiveWindow {
				delete(p.shares, site)
			}
		}
	}
}

// endPauseLocked logs the end of p's pause once it is over.
func (g *Governor) endPauseLocked(p *pool, now time.Time) {
	if !p.pauseOn || now.Before(p.pausedUntil) {
		return
	}
	p.pauseOn = false
	g.b.Logger.Info("hostclient: calls to the product resume", "product", p.product, "reason", p.pauseReason)
	if g.rateO != nil {
		g.rateO.ObserveRatePause(tenon.RatePause{Product: p.product, Scope: "product", Reason: p.pauseReason, Until: p.pausedUntil})
	}
}

// pauseLocked pauses every call to p's product until until.
func (g *Governor) pauseLocked(p *pool, until time.Time, reason string) bool {
	if !until.After(p.pausedUntil) {
		return false
	}
	p.pausedUntil, p.pauseReason = until, reason
	if !p.pauseOn {
		p.pauseOn = true
		g.b.Logger.Warn("hostclient: the app's quota with the product is spent; no calls to it for any tenant until the reset",
			"product", p.product, "reason", reason, "until", until.UTC().Format(time.RFC3339))
		if g.rateO != nil {
			g.rateO.ObserveRatePause(tenon.RatePause{Product: p.product, Scope: "product", Reason: reason, Until: until, Start: true})
		}
	}
	return true
}

// verdict429 is what the governor made of a 429: the site-wide pause the
// Resilience should keep (a tenant quota, or a 429 whose limit it does
// not know), zero when it handled the 429 itself.
type verdict429 struct {
	siteUntil time.Time
	reason    string
}

// observe reads the limit headers of an answer to req.
func (g *Governor) observe(ctx context.Context, tgt Target, req *http.Request, resp *http.Response) verdict429 {
	now := g.now()
	h := resp.Header
	skew := productSkew(h, now)
	pools := parseRateLimit(h.Get("Beta-RateLimit"))
	limits := parseRateLimitPolicy(h.Get("Beta-RateLimit-Policy"))
	near := strings.EqualFold(strings.TrimSpace(h.Get("X-Beta-RateLimit-NearLimit")), "true") ||
		strings.EqualFold(strings.TrimSpace(h.Get("X-RateLimit-NearLimit")), "true")

	g.mu.Lock()
	p := g.pool(tgt.Product)
	for name, st := range pools {
		limit := limits[name]
		if g.rateO != nil {
			g.rateO.ObserveRateBudget(tenon.RateBudgetStats{Product: p.product, Policy: name, Limit: limit, Remaining: st.remaining, NearLimit: near})
		}
		if !strings.Contains(name, "global") {
			continue
		}
		reset := now.Add(g.capPause(time.Duration(st.reset)*time.Second, p.product, "Beta-RateLimit t"))
		if p.known && now.Before(p.resetAt) && reset.Sub(p.resetAt) < sameWindow && st.remaining > p.remaining && now.Sub(p.observedAt) < 5*time.Second {
			// An answer overtaken by a later one: keep the lower count.
			continue
		}
		p.known, p.remaining, p.resetAt, p.observedAt, p.nearLimit = true, st.remaining, reset, now, near
		if limit > 0 {
			p.limit = limit
		}
	}
	g.mu.Unlock()

	if resp.StatusCode != http.StatusTooManyRequests {
		return verdict429{}
	}
	reason := strings.TrimSpace(h.Get("RateLimit-Reason"))
	if reason == "" {
		reason = strings.TrimSpace(h.Get("X-Beta-RateLimit-Reason"))
	}
	kind := reason
	if i := strings.IndexByte(reason, '-'); i >= 0 {
		kind = reason[i+1:]
	}
	if g.b.Off {
		kind = ""
	}
	switch kind {
	case limitGlobal:
		wait := g.waitOf(h, now, skew, pools, g.b.QuotaPause, p.product, reason)
		g.mu.Lock()
		changed := g.pauseLocked(p, now.Add(wait), reason)
		// The product says when calls may resume: until then the pool is
		// spent, after it unknown until an answer says.
		p.known, p.remaining, p.resetAt = true, 0, now.Add(wait)
		g.mu.Unlock()
		if changed {
			g.syncIfDue(ctx, tgt.Product, now, true)
		}
		return verdict429{}
	case limitBurst:
		wait := g.waitOf(h, now, skew, nil, g.b.BurstPause, p.product, reason)
		key := tgt.Site + " " + req.Method + " " + endpointOf(req.URL.Path)
		g.mu.Lock()
		if until := now.Add(wait); until.After(g.endpoints[key].until) {
			g.endpoints[key] = endpointPause{until: until, reason: reason}
		}
		g.mu.Unlock()
		g.b.Logger.Debug("hostclient: pausing one endpoint of a tenant after a burst limit", "site", tgt.Site, "endpoint", key, "for", wait)
		return verdict429{}
	case limitIssue:
		if issue := issueOf(req); issue != "" {
			wait := g.waitOf(h, now, skew, nil, g.b.BurstPause, p.product, reason)
			key := tgt.Site + " " + issue
			g.mu.Lock()
			gt := g.gates[key]
			if gt == nil {
				gt = &issueGate{sem: make(chan struct{}, 1)}
				g.gates[key] = gt
			}
			if until := now.Add(wait); until.After(gt.notBefore) {
				gt.notBefore, gt.reason = until, reason
			}
			g.mu.Unlock()
			g.b.Logger.Debug("hostclient: serialising the writes to an issue after a per-issue limit", "site", tgt.Site, "issue", issue, "for", wait)
			return verdict429{}
		}
	}
	if kind == limitTenant {
		// The tenant's own pool is spent: its site waits, the others do not.
		wait := g.waitOf(h, now, skew, pools, g.b.QuotaPause, p.product, reason)
		g.b.Logger.Info("hostclient: the app's quota on one tenant is spent; pausing calls to that tenant",
			"site", tgt.Site, "reason", reason, "until", now.Add(wait).UTC().Format(time.RFC3339))
		if g.rateO != nil {
			g.rateO.ObserveRatePause(tenon.RatePause{Product: p.product, Scope: "tenant", Reason: reason, Until: now.Add(wait), Start: true})
		}
		return verdict429{siteUntil: now.Add(wait), reason: reason}
	}
	// A limit the governor does not know: the site that answered waits, as
	// long as the answer says.
	if ra := RetryAfter(h, now); ra > 0 {
		return verdict429{siteUntil: now.Add(g.capPause(ra, p.product, "Retry-After")), reason: reason}
	}
	return verdict429{}
}

// sameWindow is how close two resets must be to be the same window.
const sameWindow = 5 * time.Minute

// waitOf is how long a 429 asks the client to wait: Retry-After (seconds,
// or a date on the product's clock), else the reset of a spent quota pool
// (Beta-RateLimit t, relative), else X-Beta-RateLimit-Reset or
// X-RateLimit-Reset (absolute, on the product's clock), corrected for the
// skew between the product's clock and ours; def when none is usable,
// never more than MaxPause.
func (g *Governor) waitOf(h http.Header, now time.Time, skew time.Duration, pools map[string]rateState, def time.Duration, product, reason string) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs > 0 {
			return g.capPause(time.Duration(min(secs, math.MaxInt64/int64(time.Second)))*time.Second, product, "Retry-After")
		}
		if at, err := http.ParseTime(v); err == nil && at.Add(-skew).After(now) {
			return g.capPause(at.Add(-skew).Sub(now), product, "Retry-After")
		}
		g.b.Logger.Warn("hostclient: the product's Retry-After is not a usable wait; using another", "product", product, "reason", reason, "value", clip(v))
	}
	for _, st := range pools {
		if st.remaining <= 0 && st.reset > 0 {
			return g.capPause(time.Duration(st.reset)*time.Second, product, "Beta-RateLimit t")
		}
	}
	for _, name := range []string{"X-Beta-RateLimit-Reset", "X-RateLimit-Reset"} {
		if at, ok := parseResetTime(h.Get(name)); ok && at.Add(-skew).After(now) {
			return g.capPause(at.Add(-skew).Sub(now), product, name)
		}
	}
	g.b.Logger.Warn("hostclient: a 429 named no usable wait; pausing for the default", "product", product, "reason", reason, "pause", def)
	return def
}

func (g *Governor) capPause(d time.Duration, product, header string) time.Duration {
	if d > g.b.MaxPause {
		g.b.Logger.Warn("hostclient: the product asked for a pause longer than the cap; capping it",
			"product", product, "header", header, "asked", d.String(), "cap", g.b.MaxPause.String())
		return g.b.MaxPause
	}
	return max(d, 0)
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// productSkew is how far the product's clock (its Date header) is ahead of
// ours; zero without a usable Date or when within a second.
func productSkew(h http.Header, now time.Time) time.Duration {
	d, err := http.ParseTime(h.Get("Date"))
	if err != nil {
		return 0
	}
	skew := d.Sub(now.Truncate(time.Second))
	if skew > -time.Second && skew < time.Second {
		return 0
	}
	return skew
}

// parseResetTime reads an absolute reset time: RFC 3339, or Atlassian's
// minute-precision 2006-01-02T15:04Z.
func parseResetTime(v string) (time.Time, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04Z07:00", "2006-01-02T15:04Z"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// rateState is one member of Beta-RateLimit: "policy";r=<left>;t=<secs>.
type rateState struct {
	remaining int64
	reset     int64 // seconds
}

// parseRateLimit reads Beta-RateLimit. Members that do not parse, or have
// negative numbers, are left out.
func parseRateLimit(v string) map[string]rateState {
	out := map[string]rateState{}
	for name, params := range structuredList(v) {
		r, okR := params["r"]
		t, okT := params["t"]
		if okR && okT && r >= 0 && t >= 0 {
			out[name] = rateState{remaining: r, reset: t}
		}
	}
	return out
}

// parseRateLimitPolicy reads Beta-RateLimit-Policy: "policy";q=<points>;w=<secs>.
func parseRateLimitPolicy(v string) map[string]int64 {
	out := map[string]int64{}
	for name, params := range structuredList(v) {
		if q, ok := params["q"]; ok && q > 0 {
			out[name] = q
		}
	}
	return out
}

// structuredList reads the subset of an HTTP structured-field list the
// rate-limit headers use: members `"name";key=int;key=int`, comma
// separated. It bounds what it reads: a product's header is input.
func structuredList(v string) map[string]map[string]int64 {
	if len(v) > 1024 {
		v = v[:1024]
	}
	out := map[string]map[string]int64{}
	for _, member := range strings.Split(v, ",") {
		parts := strings.Split(strings.TrimSpace(member), ";")
		name := strings.Trim(strings.TrimSpace(parts[0]), `"`)
		if name == "" || len(out) >= 8 {
			continue
		}
		params := map[string]int64{}
		for _, kv := range parts[1:] {
			k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
			if !ok {
				continue
			}
			n, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
			if err != nil {
				continue
			}
			params[strings.ToLower(k)] = n
		}
		out[name] = params
	}
	return out
}

// syncIfDue merges the product's pool with the BudgetStore when SyncEvery
// has passed since the last exchange, or at once when force (a pause
// started). One exchange at a time per product; failures are logged and
// the node goes on with its own view.
func (g *Governor) syncIfDue(ctx context.Context, product string, now time.Time, force bool) {
	st := g.b.Store
	g.mu.Lock()
	p := g.pool(product)
	if p.syncing || (!force && now.Sub(p.lastSync) < g.b.SyncEvery) {
		g.mu.Unlock()
		return
	}
	p.lastSync = now
	if st == nil {
		top := g.topLocked(p)
		g.mu.Unlock()
		if g.rateO != nil && len(top) > 0 {
			g.rateO.ObserveTenantShares(p.product, top)
		}
		return
	}
	p.syncing = true
	mine := tenon.RateBudget{Remaining: -1, PausedUntil: p.pausedUntil, PauseReason: p.pauseReason}
	if p.known {
		mine.Limit, mine.Remaining, mine.ResetAt, mine.ObservedAt = p.limit, p.remaining, p.resetAt, p.observedAt
	}
	top := g.topLocked(p)
	g.mu.Unlock()

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), syncTimeout)
	merged, err := st.MergeRateBudget(sctx, "hostclient/budget/"+p.product, g.b.Node, mine, now, 10*g.b.SyncEvery)
	cancel()

	g.mu.Lock()
	p.syncing = false
	if err != nil {
		g.mu.Unlock()
		g.b.Logger.Warn("hostclient: sharing the rate-limit budget with the other nodes failed; going on with this node's view", "product", product, "err", err)
		return
	}
	p.synced = merged
	p.nodes = max(merged.Nodes, 1)
	if merged.Remaining >= 0 && !merged.ResetAt.IsZero() && now.Before(merged.ResetAt) {
		if !p.known || merged.ResetAt.Sub(p.resetAt) > sameWindow || (merged.Remaining < p.remaining && p.resetAt.Sub(merged.ResetAt) <= sameWindow) {
			p.known, p.limit, p.remaining, p.resetAt, p.observedAt = true, merged.Limit, merged.Remaining, merged.ResetAt, merged.ObservedAt
		}
	}
	if now.Before(merged.PausedUntil) {
		g.pauseLocked(p, merged.PausedUntil, merged.PauseReason)
	}
	g.mu.Unlock()
	if g.rateO != nil && len(top) > 0 {
		g.rateO.ObserveTenantShares(p.product, top)
	}
}

// topLocked is the TopTenants tenants that spent most of p this window.
func (g *Governor) topLocked(p *pool) []tenon.TenantShare {
	var total float64
	var all []tenon.TenantShare
	for site, s := range p.shares {
		if s.window.Equal(p.resetAt) && s.spent > 0 {
			total += s.spent
			all = append(all, tenon.TenantShare{Tenant: site, Used: s.spent})
		}
	}
	if total == 0 {
		return nil
	}
	slices.SortFunc(all, func(a, b tenon.TenantShare) int {
		return cmp.Or(cmp.Compare(b.Used, a.Used), strings.Compare(a.Tenant, b.Tenant))
	})
	all = all[:min(len(all), g.b.TopTenants)]
	for i := range all {
		all[i].Used /= total
	}
	return all
}

// BudgetState is a product's pool as a Governor sees it, for health pages
// and tests.
type BudgetState struct {
	Known       bool // Remaining and ResetAt come from the product
	Limit       int64
	Remaining   int64
	ResetAt     time.Time
	NearLimit   bool
	PausedUntil time.Time // zero when not paused
	PauseReason string
	Nodes       int // nodes sharing the budget, this one included
}

// Budget returns what the governor knows of product's pool.
func (g *Governor) Budget(product string) BudgetState {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.pool(product)
	st := BudgetState{Known: p.known, Limit: p.limit, Remaining: p.remaining, ResetAt: p.resetAt, NearLimit: p.nearLimit, Nodes: p.nodes}
	if now.Before(p.pausedUntil) {
		st.PausedUntil, st.PauseReason = p.pausedUntil, p.pauseReason
	}
	return st
}
