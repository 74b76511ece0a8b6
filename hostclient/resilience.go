package hostclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tenon-dev/tenon"
)

// Defaults of Policy.
const (
	DefaultMaxAttempts         = 3
	DefaultBaseDelay           = 200 * time.Millisecond
	DefaultMaxDelay            = 5 * time.Second
	DefaultMaxRetryAfter       = 60 * time.Second
	DefaultRetryRatio          = 0.2
	DefaultMinRetriesPerSecond = 1.0
	DefaultBreakerThreshold    = 5
	DefaultBreakerCooldown     = 10 * time.Second
	DefaultMaxConcurrent       = 16
	// DefaultMaxSites bounds the per-site state a Resilience keeps; idle
	// sites beyond it are forgotten.
	DefaultMaxSites = 10000

	// retryBudgetBurst is how many retries a site's budget holds when full
	// (and holds at the start): a short burst of failures may be retried
	// before the ratio rules.
	retryBudgetBurst = 10
	// minAttemptTime is the least time a retry must leave for its own
	// attempt before the call's deadline; otherwise it is not started.
	minAttemptTime = 100 * time.Millisecond
	// siteIdleTTL is how long an idle, healthy site's state is kept once
	// there are more than MaxSites.
	siteIdleTTL = 10 * time.Minute
	// drainBytes is how much of a discarded response is read so its
	// connection can be reused.
	drainBytes = 64 << 10
)

// Policy says how a Resilience treats calls. The zero value means the
// defaults; fields are read once by NewResilience.
type Policy struct {
	// MaxAttempts bounds the attempts of one call, the first included.
	// Default DefaultMaxAttempts; 1 turns retries off.
	MaxAttempts int
	// BaseDelay and MaxDelay shape the back-off: the n-th retry waits a
	// random time between half and all of min(MaxDelay, BaseDelay·2ⁿ⁻¹).
	// BaseDelay is also the jitter added to a product's Retry-After, so
	// that callers told the same time do not return at the same instant.
	BaseDelay, MaxDelay time.Duration
	// MaxRetryAfter is the longest wait a product may impose through
	// Retry-After or X-RateLimit-Reset that a call sits out; a longer one
	// ends the call with a *RateLimitedError at once. Default 60 s.
	MaxRetryAfter time.Duration
	// RetryRatio and MinRetriesPerSecond form each site's retry budget:
	// retries may add at most RetryRatio of the site's first attempts,
	// plus MinRetriesPerSecond, so a failing site sees at most about
	// 1+RetryRatio times its normal load instead of MaxAttempts times.
	// Defaults 0.2 and 1. A negative RetryRatio means no ratio allowance.
	RetryRatio          float64
	MinRetriesPerSecond float64
	// BreakerThreshold is how many failures in a row (5xx, unreachable,
	// timeouts) open a site's circuit breaker. Default 5; negative turns
	// breakers off.
	BreakerThreshold int
	// BreakerCooldown is how long an open breaker refuses calls before it
	// lets one probe through; the probe's success closes it, its failure
	// opens it again. Default 10 s.
	BreakerCooldown time.Duration
	// MaxConcurrent bounds the calls in flight to one site; further calls
	// wait for a slot until their deadline. Default 16; negative means no
	// limit.
	MaxConcurrent int
	// MaxSites bounds how many sites' state is kept. Default DefaultMaxSites.
	MaxSites int
	// Timeout is the deadline of a call whose context has none (or a later
	// one). Default DefaultTimeout.
	Timeout time.Duration
	// Observer receives one tenon.OutboundCall per attempt, and one per
	// call refused without an attempt. Default tenon.NopObserver.
	Observer tenon.Observer
	// Budget configures the Governor, which keeps the app within the
	// products' points-based rate limits across tenants and nodes; see
	// BudgetPolicy.
	Budget BudgetPolicy
	// Now, Sleep and Rand are the clock, the wait between attempts and the
	// jitter source ([0,1)); tests replace them. Sleep must return early
	// with ctx's error when ctx ends.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	Rand  func() float64
}

func (p Policy) withDefaults() Policy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = DefaultBaseDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = DefaultMaxDelay
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if p.RetryRatio == 0 {
		p.RetryRatio = DefaultRetryRatio
	}
	p.RetryRatio = max(p.RetryRatio, 0)
	if p.MinRetriesPerSecond == 0 {
		p.MinRetriesPerSecond = DefaultMinRetriesPerSecond
	}
	p.MinRetriesPerSecond = max(p.MinRetriesPerSecond, 0)
	if p.BreakerThreshold == 0 {
		p.BreakerThreshold = DefaultBreakerThreshold
	}
	if p.BreakerCooldown <= 0 {
		p.BreakerCooldown = DefaultBreakerCooldown
	}
	if p.MaxConcurrent == 0 {
		p.MaxConcurrent = DefaultMaxConcurrent
	}
	if p.MaxSites <= 0 {
		p.MaxSites = DefaultMaxSites
	}
	if p.Timeout <= 0 {
		p.Timeout = DefaultTimeout
	}
	if p.Observer == nil {
		p.Observer = tenon.NopObserver{}
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if p.Sleep == nil {
		p.Sleep = sleep
	}
	if p.Rand == nil {
		p.Rand = rand.Float64
	}
	return p
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Target names where a request goes, for a Resilience: Site keys the
// per-site state (breaker, concurrency limit, retry budget, rate-limit
// wait) and appears in errors; Product labels the tenon.OutboundCall.
type Target struct {
	Site    string
	Product string
}

type targetKey struct{}

// WithTarget returns a copy of ctx whose requests a Resilience accounts to
// t. Without one, a request's site is its scheme and host — right for a
// product whose sites have their own hosts, wrong for a gateway that
// serves many sites on one host (api.atlassian.com/ex/jira/<cloudId>):
// callers of such a gateway must name the site, e.g. by its cloudId.
// Tenants of this package set it themselves.
func WithTarget(ctx context.Context, t Target) context.Context {
	return context.WithValue(ctx, targetKey{}, t)
}

func targetOf(r *http.Request) Target {
	if t, ok := r.Context().Value(targetKey{}).(Target); ok && t.Site != "" {
		return t
	}
	return Target{Site: strings.ToLower(r.URL.Scheme + "://" + r.URL.Host)}
}

type idempotentKey struct{}

// MarkIdempotent returns a copy of ctx whose requests a Resilience may
// retry whatever their method: for POSTs that only read, such as a JQL
// search. A request with an Idempotency-Key or X-Idempotency-Key header
// counts as idempotent too.
func MarkIdempotent(ctx context.Context) context.Context {
	return context.WithValue(ctx, idempotentKey{}, true)
}

// idempotent reports whether r may be sent twice, and can be: its body can
// be produced again.
func idempotent(r *http.Request) bool {
	if r.Body != nil && r.Body != http.NoBody && r.GetBody == nil {
		return false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	if marked, _ := r.Context().Value(idempotentKey{}).(bool); marked {
		return true
	}
	_, ok1 := r.Header["Idempotency-Key"]
	_, ok2 := r.Header["X-Idempotency-Key"]
	return ok1 || ok2
}

// Resilience keeps calls to product sites from hanging, hammering a site
// that is rate limiting or down, or letting one broken site slow the
// others. It holds per-site state — a circuit breaker, a concurrency
// limit, a retry budget and the time until which the site asked to be
// left alone — and applies it to every request sent through a transport
// from Wrap:
//
//   - Every call gets a deadline: the earlier of its context's and
//     Policy.Timeout. Waits (for a slot, between attempts) never go past
//     it; a retry that could not finish before it is not started.
//   - Idempotent calls (GET, HEAD, OPTIONS, PUT, DELETE, MarkIdempotent,
//     an Idempotency-Key header) are retried on 429, 502, 503, 504 and
//     transport failures, with exponential back-off and jitter, or after
//     the product's Retry-After / X-RateLimit-Reset, at most
//     Policy.MaxAttempts times, and only while the site's retry budget
//     allows. Other calls are sent once.
//   - A 429 that names a time makes every call to that site wait for it
//     (when the wait fits the call's deadline and Policy.MaxRetryAfter) or
//     fail at once with a *RateLimitedError, instead of adding to the
//     load that caused the limit.
//   - Policy.BreakerThreshold failures in a row open the site's breaker:
//     calls then fail at once with an *UnavailableError (ErrBreakerOpen)
//     until BreakerCooldown has passed and a probe succeeds.
//   - At most Policy.MaxConcurrent calls per site are in flight.
//
// When a call gets an answer, the transport returns it, even a final 429
// or 503, like any http.RoundTripper; errors are returned only when no
// answer came (*RateLimitedError, *UnavailableError, wrapped in *url.Error
// by http.Client). A Resilience is safe for concurrent use; share one per
// process and product API so its view of each site is complete.
type Resilience struct {
	p   Policy
	gov *Governor // nil when Policy.Budget.Off

	mu      sync.Mutex
	sites   map[string]*site
	created int // sites created since the last sweep
}

// NewResilience returns a Resilience applying p.
func NewResilience(p Policy) *Resilience {
	rs := &Resilience{p: p.withDefaults(), sites: make(map[string]*site)}
	if !rs.p.Budget.Off {
		rs.gov = newGovernor(rs.p.Budget, rs.p.Now, rs.p.Observer)
	}
	return rs
}

// Governor returns the Resilience's Governor, nil when Policy.Budget.Off.
func (rs *Resilience) Governor() *Governor { return rs.gov }

// Policy returns the policy in force, defaults filled in.
func (rs *Resilience) Policy() Policy { return rs.p }

// Wrap returns a transport that sends requests through next (nil means
// http.DefaultTransport) under rs's rules. Every transport from one
// Resilience shares its per-site state.
func (rs *Resilience) Wrap(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return &resilientTransport{rs: rs, next: next}
}

// SiteState describes one site as a Resilience sees it, for health pages
// and tests.
type SiteState struct {
	Breaker      string    // "closed", "open" or "half-open"
	OpenUntil    time.Time // while open
	LimitedUntil time.Time // the site's last rate-limit reset still ahead; zero when none
	InFlight     int
}

// State returns what rs knows of site (as named by Target.Site).
func (rs *Resilience) State(siteName string) SiteState {
	rs.mu.Lock()
	s := rs.sites[siteName]
	rs.mu.Unlock()
	if s == nil {
		return SiteState{Breaker: "closed"}
	}
	now := rs.p.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := SiteState{Breaker: s.state.String(), InFlight: s.inFlight}
	if s.state == breakerOpen {
		st.OpenUntil = s.openUntil
	}
	if s.limitedUntil.After(now) {
		st.LimitedUntil = s.limitedUntil
	}
	return st
}

// Sites returns how many sites rs keeps state for.
func (rs *Resilience) Sites() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return len(rs.sites)
}

func (rs *Resilience) site(name string) *site {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if s := rs.sites[name]; s != nil {
		return s
	}
	if len(rs.sites) >= rs.p.MaxSites && rs.created > 0 {
		rs.sweepLocked()
	}
	s := newSite(rs.p)
	rs.sites[name] = s
	rs.created++
	return s
}

// sweepLocked forgets sites that are idle and healthy. It runs when the
// map is full and a new site arrives, at most once per MaxSites/8 new
// sites, so its cost is spread thin.
func (rs *Resilience) sweepLocked() {
	if rs.created < max(1, rs.p.MaxSites/8) && len(rs.sites) < 2*rs.p.MaxSites {
		return
	}
	rs.created = 0
	now := rs.p.Now()
	for name, s := range rs.sites {
		if s.forgettable(now) {
			delete(rs.sites, name)
		}
	}
}

type resilientTransport struct {
	rs   *Resilience
	next http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t *resilientTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	p := &t.rs.p
	tgt := targetOf(req)
	s := t.rs.site(tgt.Site)
	c := call{p: p, s: s, gov: t.rs.gov, tgt: tgt, next: t.next, req: req}

	ctx := req.Context()
	var cancel context.CancelFunc
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > p.Timeout {
		ctx, cancel = context.WithTimeout(ctx, p.Timeout)
	}
	c.ctx = ctx
	resp, err := c.run()
	switch {
	case cancel == nil:
	case err != nil:
		cancel()
	default:
		// The deadline covers reading the body; it ends when the body
		// is closed.
		resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	}
	return resp, err
}

// call is one RoundTrip in progress.
type call struct {
	p    *Policy
	s    *site
	gov  *Governor
	tgt  Target
	next http.RoundTripper
	req  *http.Request
	ctx  context.Context
}

func (c *call) observe(attempt int, status int, d time.Duration, outcome string) {
	c.p.Observer.ObserveOutbound(tenon.OutboundCall{
		Product: c.tgt.Product, Method: c.req.Method, Status: status, Attempt: attempt, Duration: d, Outcome: outcome,
	})
}

func (c *call) run() (*http.Response, error) {
	p := c.p
	retryable := idempotent(c.req)
	bodyUsed := false
	defer func() {
		// RoundTrip owns the request body: close it if no attempt did.
		if !bodyUsed && c.req.Body != nil {
			c.req.Body.Close()
		}
	}()

	// A site that asked to be left alone until a time is not called
	// before it; waiting is fine when it fits the deadline.
	if until, reason := c.s.limitUntil(); !until.IsZero() {
		wait := until.Sub(p.Now())
		if wait > 0 {
			wait += c.jitter()
			if wait > p.MaxRetryAfter || !c.fits(wait) {
				c.observe(1, 0, 0, "rate_limited")
				return nil, &RateLimitedError{Site: c.tgt.Site, Until: until, Reason: reason}
			}
			if err := p.Sleep(c.ctx, wait); err != nil {
				c.observe(1, 0, 0, "timeout")
				return nil, c.waitError(ReasonTimeout, err)
			}
		}
	}

	c.s.deposit(p)
	for attempt := 1; ; attempt++ {
		// A quick look first, so that calls do not queue for a slot of a
		// site whose breaker would refuse them anyway.
		if until, open := c.s.isOpen(p.Now()); open {
			c.observe(attempt, 0, 0, "breaker_open")
			return nil, &UnavailableError{Site: c.tgt.Site, Reason: ReasonBreakerOpen, Until: until}
		}
		release, err := c.govern(attempt)
		if err != nil {
			return nil, err
		}
		if err := c.s.acquire(c.ctx); err != nil {
			release()
			c.observe(attempt, 0, 0, "timeout")
			return nil, c.waitError(ReasonBusy, err)
		}
		probe, until, ok := c.s.admit(p.Now(), p)
		if !ok {
			c.s.release()
			release()
			c.observe(attempt, 0, 0, "breaker_open")
			return nil, &UnavailableError{Site: c.tgt.Site, Reason: ReasonBreakerOpen, Until: until}
		}
		req, err := c.attemptRequest(attempt)
		if err != nil {
			c.s.release()
			release()
			c.s.record(probe, neutral, p.Now(), p)
			return nil, err
		}

		start := p.Now()
		bodyUsed = true
		resp, err := c.next.RoundTrip(req)
		elapsed := p.Now().Sub(start)
		c.s.release()
		release()

		v := c.verdict(resp, err)
		c.s.record(probe, v, p.Now(), p)
		switch {
		case resp != nil && c.gov != nil:
			if g := c.gov.observe(c.ctx, c.tgt, req, resp); !g.siteUntil.IsZero() {
				c.s.limitTill(g.siteUntil, g.reason)
			}
		case resp != nil && resp.StatusCode == http.StatusTooManyRequests:
			if ra := RetryAfter(resp.Header, p.Now()); ra > 0 {
				c.s.limitTill(p.Now().Add(ra), resp.Header.Get("RateLimit-Reason"))
			}
		}
		outcome, status := c.outcome(resp, err)
		c.observe(attempt, status, elapsed, outcome)

		wait, again := c.retry(attempt, retryable, resp, err)
		if !again {
			if err != nil {
				return nil, c.transportError(err)
			}
			return resp, nil
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainBytes))
			resp.Body.Close()
		}
		if err := p.Sleep(c.ctx, wait); err != nil {
			return nil, c.waitError(ReasonTimeout, err)
		}
	}
}

// govern asks the Governor whether the attempt may go, waiting for it
// when that fits the deadline and the governor's bound. It returns the
// function that frees what the attempt holds (an issue's write gate).
func (c *call) govern(attempt int) (func(), error) {
	if c.gov == nil {
		return nop, nil
	}
	var notBefore time.Time
	var last admission
	for range 3 {
		adm, err := c.gov.admit(c.ctx, c.tgt, c.req, c.p.MaxRetryAfter, notBefore)
		if err != nil {
			c.observe(attempt, 0, 0, "timeout")
			return nil, c.waitError(ReasonTimeout, err)
		}
		wait := adm.until.Sub(later(c.p.Now(), notBefore))
		if adm.until.IsZero() || wait <= 0 {
			return adm.release, nil
		}
		last = adm
		if wait > adm.maxWait || !c.fits(wait) {
			c.observe(attempt, 0, 0, "rate_limited")
			return nil, &RateLimitedError{Site: c.tgt.Site, Until: adm.until, Reason: adm.reason}
		}
		if err := c.p.Sleep(c.ctx, wait+c.jitter()); err != nil {
			c.observe(attempt, 0, 0, "timeout")
			return nil, c.waitError(ReasonTimeout, err)
		}
		notBefore = adm.until
	}
	c.observe(attempt, 0, 0, "rate_limited")
	return nil, &RateLimitedError{Site: c.tgt.Site, Until: last.until, Reason: last.reason}
}

// waitError is the error of a wait (for a slot, a rate limit, a back-off)
// cut short: the caller's cancellation as it is, a deadline as
// unavailability.
func (c *call) waitError(reason string, err error) error {
	if errors.Is(c.req.Context().Err(), context.Canceled) {
		return c.req.Context().Err()
	}
	return &UnavailableError{Site: c.tgt.Site, Reason: reason, Err: err}
}

// attemptRequest is the request of one attempt: the caller's for the
// first, a copy with a fresh body for the others.
func (c *call) attemptRequest(attempt int) (*http.Request, error) {
	if attempt == 1 {
		return c.req.WithContext(c.ctx), nil
	}
	req := c.req.Clone(c.ctx)
	if c.req.Body != nil && c.req.Body != http.NoBody {
		body, err := c.req.GetBody()
		if err != nil {
			return nil, fmt.Errorf("hostclient: rereading the request body for a retry: %w", err)
		}
		req.Body = body
	}
	return req, nil
}

// retry decides whether attempt is followed by another, and after what
// wait.
func (c *call) retry(attempt int, retryable bool, resp *http.Response, err error) (time.Duration, bool) {
	p := c.p
	if !retryable || attempt >= p.MaxAttempts || c.ctx.Err() != nil {
		return 0, false
	}
	var ra time.Duration
	switch {
	case err != nil:
		var rf *refusedError
		if errors.As(err, &rf) {
			return 0, false
		}
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		ra = RetryAfter(resp.Header, p.Now())
	case resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusGatewayTimeout:
	default:
		return 0, false
	}
	var wait time.Duration
	if ra > 0 {
		if ra > p.MaxRetryAfter {
			return 0, false
		}
		wait = ra + c.jitter()
	} else {
		d := min(p.MaxDelay, p.BaseDelay<<min(attempt-1, 30))
		wait = d/2 + time.Duration(p.Rand()*float64(d/2))
	}
	if !c.fits(wait) || !c.s.withdraw(p.Now()) {
		return 0, false
	}
	return wait, true
}

func (c *call) jitter() time.Duration {
	return time.Duration(c.p.Rand() * float64(c.p.BaseDelay))
}

// fits reports whether waiting d still leaves an attempt time before the
// call's deadline.
func (c *call) fits(d time.Duration) bool {
	deadline, ok := c.ctx.Deadline()
	return !ok || time.Until(deadline) >= d+minAttemptTime
}

// verdict is what an attempt says about the site's health.
func (c *call) verdict(resp *http.Response, err error) verdict {
	if err != nil {
		var rf *refusedError
		switch {
		case errors.As(err, &rf):
			return neutral
		case errors.Is(c.req.Context().Err(), context.Canceled):
			return neutral // the caller went away; the site may be fine
		}
		return failure
	}
	switch resp.StatusCode {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return failure
	}
	return success
}

func (c *call) outcome(resp *http.Response, err error) (string, int) {
	if err != nil {
		if c.ctx.Err() != nil && !errors.Is(c.req.Context().Err(), context.Canceled) {
			return "timeout", 0
		}
		var rf *refusedError
		if errors.As(err, &rf) || errors.Is(err, context.Canceled) {
			return "error", 0
		}
		return "unavailable", 0
	}
	switch s := resp.StatusCode; {
	case s == http.StatusTooManyRequests:
		return "rate_limited", s
	case s >= 500:
		return "unavailable", s
	case s >= 400:
		return "error", s
	default:
		return "ok", s
	}
}

// transportError types the error of an attempt that got no answer.
func (c *call) transportError(err error) error {
	var rf *refusedError
	if errors.As(err, &rf) || errors.Is(c.req.Context().Err(), context.Canceled) {
		return err
	}
	reason := ReasonUnreachable
	if c.ctx.Err() != nil {
		reason = ReasonTimeout
	}
	return &UnavailableError{Site: c.tgt.Site, Reason: reason, Err: err}
}

// cancelOnClose ends a call's context once its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
