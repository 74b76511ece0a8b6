package fakeatlassian

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Atlassian's points-based rate limits, as the fake models them. Jira and
// Confluence enforce three independent limits at once:
//
//   - an hourly points quota: one pool per app shared by all its tenants
//     ("global-app-quota"), or for apps on a tenant-based quota one pool
//     per app and tenant ("tenant-app-quota");
//   - a per-second burst limit per tenant, endpoint and method;
//   - a per-issue write limit.
//
// Every REST answer under limits describes the quota pools in
// Beta-RateLimit-Policy ("global-app-quota";q=<points>;w=<seconds>) and
// Beta-RateLimit ("global-app-quota";r=<remaining>;t=<seconds to reset>),
// says X-Beta-RateLimit-NearLimit: true when less than NearLimit of a pool
// is left, and keeps the older X-RateLimit-Limit / X-RateLimit-Remaining
// (and X-RateLimit-NearLimit) for the burst bucket of the endpoint. A 429
// names its limit in RateLimit-Reason (<product>-quota-global-based,
// -quota-tenant-based, -burst-based, -per-issue-on-write; the quota ones
// also in X-Beta-RateLimit-Reason), says how long to wait in Retry-After
// (whole seconds) and when in X-RateLimit-Reset, in Atlassian's
// minute-precision form 2006-01-02T15:04Z. A refused request costs no
// points.

// Policy names of Beta-RateLimit-Policy and Beta-RateLimit.
const (
	PolicyGlobalQuota = "global-app-quota"
	PolicyTenantQuota = "tenant-app-quota"
)

// Limit kinds, the suffix of a RateLimit-Reason after "<product>-".
const (
	LimitGlobalQuota   = "quota-global-based"
	LimitTenantQuota   = "quota-tenant-based"
	LimitBurst         = "burst-based"
	LimitPerIssueWrite = "per-issue-on-write"
)

// resetFormat is how Atlassian writes X-RateLimit-Reset: ISO 8601 to the
// minute.
const resetFormat = "2006-01-02T15:04Z"

// RateLimits configure the fake's points-based rate limits. The zero value
// turns them off. Set them with Fake.SetRateLimits.
type RateLimits struct {
	// GlobalPoints is the points quota of each app per Window, one pool
	// for all its tenants. 0: no global quota.
	GlobalPoints int64
	// TenantPoints is the points quota of each app on each site per
	// Window (a tenant-based quota). 0: none.
	TenantPoints int64
	// Window is the quota period; windows start at multiples of Window on
	// the fake's clock (the top of the hour). Default one hour.
	Window time.Duration
	// Cost is the points a request costs, by the endpoint the fake routes
	// it to: "METHOD pattern", e.g. "GET /rest/api/{v}/search/jql".
	// Endpoints not listed cost DefaultCost (default 1).
	Cost        map[string]int64
	DefaultCost int64
	// BurstRate (requests per second) and Burst (bucket size, default
	// the rate rounded up) limit each (site, endpoint, method). 0: none.
	BurstRate float64
	Burst     int
	// IssueWriteRate (writes per second) and IssueWriteBurst (default 1)
	// limit the writes to one issue. 0: none.
	IssueWriteRate  float64
	IssueWriteBurst int
	// NearLimit is the share of a quota under which answers carry the
	// near-limit signal. Default 0.2.
	NearLimit float64
	// HideQuotaHeaders leaves the Beta-RateLimit headers out of answers
	// that are not 429s, as Atlassian does at times: clients then learn
	// of the quota only when it is spent.
	HideQuotaHeaders bool
}

// RateLimitStats count what the rate limits did since SetRateLimits.
type RateLimitStats struct {
	Admitted int64            // requests let through
	Points   int64            // points charged, all apps
	Refused  map[string]int64 // 429s by limit kind (LimitGlobalQuota, ...)
}

// rateLimiter is the state of the limits. Guarded by Fake.mu.
type rateLimiter struct {
	cfg     RateLimits
	on      bool
	windows map[string]*quotaWindow // "g|app" or "t|app|site"
	buckets map[string]*bucket      // "b|app|site|endpoint", "i|app|site|issue"
	stats   RateLimitStats
}

type quotaWindow struct {
	start time.Time
	spent int64
}

type bucket struct {
	tokens float64
	last   time.Time
}

// take refills b at rate up to size and takes one token if there is one.
func (b *bucket) take(now time.Time, rate float64, size int) bool {
	if b.last.IsZero() {
		b.tokens = float64(size)
	} else if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = math.Min(float64(size), b.tokens+dt*rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// wait is how long until b has a token again.
func (b *bucket) wait(rate float64) time.Duration {
	return time.Duration((1 - b.tokens) / rate * float64(time.Second))
}

// SetRateLimits replaces the rate limits and resets their counters.
func (f *Fake) SetRateLimits(rl RateLimits) {
	if rl.Window <= 0 {
		rl.Window = time.Hour
	}
	if rl.DefaultCost <= 0 {
		rl.DefaultCost = 1
	}
	if rl.BurstRate > 0 && rl.Burst <= 0 {
		rl.Burst = int(math.Ceil(rl.BurstRate))
	}
	if rl.IssueWriteRate > 0 && rl.IssueWriteBurst <= 0 {
		rl.IssueWriteBurst = 1
	}
	if rl.NearLimit <= 0 || rl.NearLimit >= 1 {
		rl.NearLimit = 0.2
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limits = rateLimiter{
		cfg:     rl,
		on:      rl.GlobalPoints > 0 || rl.TenantPoints > 0 || rl.BurstRate > 0 || rl.IssueWriteRate > 0,
		windows: map[string]*quotaWindow{}, buckets: map[string]*bucket{},
		stats: RateLimitStats{Refused: map[string]int64{}},
	}
}

// RateLimitStats returns the counters of the rate limits.
func (f *Fake) RateLimitStats() RateLimitStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.limits.stats
	st.Refused = make(map[string]int64, len(f.limits.stats.Refused))
	for k, v := range f.limits.stats.Refused {
		st.Refused[k] = v
	}
	return st
}

// quotaState is one pool as an answer describes it.
type quotaState struct {
	policy      string
	limit, left int64
	reset       time.Time
}

// applyRateLimits charges a routed REST request (endpoint is the pattern
// it matched, rel its path) against the limits of app on site s, writes
// the limit headers, and answers 429 when a limit is spent. It reports
// whether it answered.
func (f *Fake) applyRateLimits(w http.ResponseWriter, r *http.Request, s *siteState, app, endpoint, rel string) bool {
	now := f.now()
	f.mu.Lock()
	rl := &f.limits
	if !rl.on {
		f.mu.Unlock()
		return false
	}
	cfg := rl.cfg
	cost := cfg.DefaultCost
	if c, ok := cfg.Cost[endpoint]; ok {
		cost = c
	}
	start := now.Truncate(cfg.Window)
	reset := start.Add(cfg.Window)
	window := func(key string) *quotaWindow {
		q := rl.windows[key]
		if q == nil || !q.start.Equal(start) {
			q = &quotaWindow{start: start}
			rl.windows[key] = q
		}
		return q
	}
	var pools []quotaState
	var global, tenant *quotaWindow
	if cfg.GlobalPoints > 0 {
		global = window("g|" + app)
	}
	if cfg.TenantPoints > 0 {
		tenant = window("t|" + app + "|" + s.info.Name)
	}

	var refused string
	var wait time.Duration
	var burst *bucket
	if cfg.BurstRate > 0 {
		key := "b|" + app + "|" + s.info.Name + "|" + endpoint
		if burst = rl.buckets[key]; burst == nil {
			burst = &bucket{}
			rl.buckets[key] = burst
		}
	}
	issue := issueOf(r.Method, endpoint, rel)
	switch {
	case burst != nil && !burst.take(now, cfg.BurstRate, cfg.Burst):
		refused, wait = LimitBurst, burst.wait(cfg.BurstRate)
	case issue != "" && cfg.IssueWriteRate > 0 && !f.takeIssue(now, app, s.info.Name, issue):
		b := rl.buckets["i|"+app+"|"+s.info.Name+"|"+issue]
		refused, wait = LimitPerIssueWrite, b.wait(cfg.IssueWriteRate)
	case tenant != nil && tenant.spent+cost > cfg.TenantPoints:
		refused, wait = LimitTenantQuota, reset.Sub(now)
	case global != nil && global.spent+cost > cfg.GlobalPoints:
		refused, wait = LimitGlobalQuota, reset.Sub(now)
	default:
		if tenant != nil {
			tenant.spent += cost
		}
		if global != nil {
			global.spent += cost
		}
		rl.stats.Admitted++
		rl.stats.Points += cost
	}
	if refused != "" {
		rl.stats.Refused[refused]++
		if burst != nil && refused != LimitBurst {
			burst.tokens++ // the request was not served
		}
	}
	if global != nil {
		pools = append(pools, quotaState{PolicyGlobalQuota, cfg.GlobalPoints, max(cfg.GlobalPoints-global.spent, 0), reset})
	}
	if tenant != nil {
		pools = append(pools, quotaState{PolicyTenantQuota, cfg.TenantPoints, max(cfg.TenantPoints-tenant.spent, 0), reset})
	}
	var burstLeft int
	if burst != nil {
		burstLeft = int(burst.tokens)
	}
	f.mu.Unlock()

	h := w.Header()
	h.Set("Date", now.UTC().Format(http.TimeFormat))
	if len(pools) > 0 && (refused != "" || !cfg.HideQuotaHeaders) {
		var policy, state []string
		near := false
		for _, p := range pools {
			policy = append(policy, fmt.Sprintf("%q;q=%d;w=%d", p.policy, p.limit, int64(cfg.Window/time.Second)))
			state = append(state, fmt.Sprintf("%q;r=%d;t=%d", p.policy, p.left, int64(math.Ceil(p.reset.Sub(now).Seconds()))))
			near = near || float64(p.left) < cfg.NearLimit*float64(p.limit)
		}
		h.Set("Beta-RateLimit-Policy", strings.Join(policy, ", "))
		h.Set("Beta-RateLimit", strings.Join(state, ", "))
		if near {
			h.Set("X-Beta-RateLimit-NearLimit", "true")
		}
	}
	if burst != nil {
		h.Set("X-RateLimit-Limit", strconv.Itoa(cfg.Burst))
		h.Set("X-RateLimit-Remaining", strconv.Itoa(burstLeft))
		if float64(burstLeft) < cfg.NearLimit*float64(cfg.Burst) {
			h.Set("X-RateLimit-NearLimit", "true")
		}
	}
	if refused == "" {
		return false
	}
	reason := s.info.Product + "-" + refused
	secs := max(int64(math.Ceil(wait.Seconds())), 1)
	h.Set("Retry-After", strconv.FormatInt(secs, 10))
	h.Set("RateLimit-Reason", reason)
	h.Set("X-RateLimit-Reset", now.Add(time.Duration(secs)*time.Second).UTC().Format(resetFormat))
	if refused == LimitGlobalQuota || refused == LimitTenantQuota {
		h.Set("X-Beta-RateLimit-Reason", reason)
		h.Set("X-Beta-RateLimit-Reset", reset.UTC().Format(resetFormat))
	}
	noteOf(r).err = "rate limited: " + reason
	writeProductError(w, s.info.Product, http.StatusTooManyRequests, "Rate limit exceeded.")
	return true
}

// takeIssue takes a write token of one issue. Called with f.mu held.
func (f *Fake) takeIssue(now time.Time, app, site, issue string) bool {
	rl := &f.limits
	key := "i|" + app + "|" + site + "|" + issue
	b := rl.buckets[key]
	if b == nil {
		b = &bucket{}
		rl.buckets[key] = b
	}
	return b.take(now, rl.cfg.IssueWriteRate, rl.cfg.IssueWriteBurst)
}

// issueOf is the issue a write to endpoint changes ("" for reads and for
// endpoints that are not about one issue): the segment after /issue/ in
// rel.
func issueOf(method, endpoint, rel string) string {
	if method == http.MethodGet || method == http.MethodHead || !strings.Contains(endpoint, "/issue/{key}") {
		return ""
	}
	segs := strings.Split(rel, "/")
	for i := 0; i+1 < len(segs); i++ {
		if segs[i] == "issue" {
			return strings.ToUpper(segs[i+1])
		}
	}
	return ""
}
