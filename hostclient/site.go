package hostclient

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// The breaker and the retry budget are written here rather than taken
// from a library: both must run on the Policy's clock, so that tests prove
// "opens after N failures, lets one probe through after the cooldown,
// closes on its success" without sleeping, and a breaker library that
// reads the wall clock itself cannot do that.

type breakerState int

const (
	breakerClosed breakerState = iota
	breakerOpen
	breakerHalfOpen
)

func (b breakerState) String() string {
	switch b {
	case breakerOpen:
		return "open"
	case breakerHalfOpen:
		return "half-open"
	}
	return "closed"
}

// verdict is what one attempt says about a site's health.
type verdict int

const (
	success verdict = iota // an answer that is not a server failure (4xx and 429 included)
	failure                // 500, 502, 503, 504, unreachable, timed out
	neutral                // says nothing: the caller gave up, or the call was refused locally
)

// site is the state a Resilience keeps per site.
type site struct {
	sem chan struct{} // concurrency slots; nil when unlimited

	mu           sync.Mutex
	state        breakerState
	fails        int       // failures in a row
	openUntil    time.Time // while open
	probing      bool      // half-open: the one probe is in flight
	limitedUntil time.Time // the product asked to be left alone until then
	limitReason  string    // and named this limit (RateLimit-Reason)
	tokens       float64   // retry budget
	floor        *rate.Limiter
	inFlight     int
	lastUsed     time.Time
}

func newSite(p Policy) *site {
	s := &site{tokens: retryBudgetBurst, lastUsed: p.Now()}
	if p.MaxConcurrent > 0 {
		s.sem = make(chan struct{}, p.MaxConcurrent)
	}
	if p.MinRetriesPerSecond > 0 {
		s.floor = rate.NewLimiter(rate.Limit(p.MinRetriesPerSecond), max(1, int(p.MinRetriesPerSecond)))
	}
	return s
}

// acquire takes a concurrency slot, waiting until ctx ends.
func (s *site) acquire(ctx context.Context) error {
	if s.sem != nil {
		select {
		case s.sem <- struct{}{}:
		default:
			select {
			case s.sem <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	s.mu.Lock()
	s.inFlight++
	s.mu.Unlock()
	return nil
}

func (s *site) release() {
	s.mu.Lock()
	s.inFlight--
	s.mu.Unlock()
	if s.sem != nil {
		<-s.sem
	}
}

// isOpen reports whether the breaker would refuse a call now, and until
// when (zero while a probe decides).
func (s *site) isOpen(now time.Time) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastUsed = now
	switch {
	case s.state == breakerOpen && now.Before(s.openUntil):
		return s.openUntil, true
	case s.state == breakerHalfOpen && s.probing:
		return time.Time{}, true
	}
	return time.Time{}, false
}

// admit lets a call through the breaker. After the cooldown the first
// call through is the probe; the others are refused until it decides.
func (s *site) admit(now time.Time, p *Policy) (probe bool, until time.Time, ok bool) {
	if p.BreakerThreshold < 0 {
		return false, time.Time{}, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case breakerOpen:
		if now.Before(s.openUntil) {
			return false, s.openUntil, false
		}
		s.state, s.probing = breakerHalfOpen, true
		return true, time.Time{}, true
	case breakerHalfOpen:
		if s.probing {
			return false, time.Time{}, false
		}
		s.probing = true
		return true, time.Time{}, true
	}
	return false, time.Time{}, true
}

// record feeds an attempt's verdict to the breaker.
func (s *site) record(probe bool, v verdict, now time.Time, p *Policy) {
	if p.BreakerThreshold < 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if probe {
		s.probing = false
	}
	switch v {
	case success:
		s.fails, s.state = 0, breakerClosed
	case failure:
		s.fails++
		if s.state == breakerHalfOpen || (s.state == breakerClosed && s.fails >= p.BreakerThreshold) {
			s.state, s.openUntil = breakerOpen, now.Add(p.BreakerCooldown)
		}
	}
}

func (s *site) limitUntil() (time.Time, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.limitedUntil, s.limitReason
}

func (s *site) limitTill(t time.Time, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.After(s.limitedUntil) {
		s.limitedUntil, s.limitReason = t, reason
	}
}

// deposit credits the retry budget for a first attempt.
func (s *site) deposit(p *Policy) {
	s.mu.Lock()
	s.tokens = min(retryBudgetBurst, s.tokens+p.RetryRatio)
	s.mu.Unlock()
}

// withdraw takes one retry from the budget, or from the per-second floor
// when the budget is spent.
func (s *site) withdraw(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tokens >= 1 {
		s.tokens--
		return true
	}
	return s.floor != nil && s.floor.AllowN(now, 1)
}

// forgettable reports whether the site's state holds nothing worth
// keeping: healthy, idle for a while, not rate limited.
func (s *site) forgettable(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == breakerClosed && s.fails == 0 && s.inFlight == 0 &&
		!s.limitedUntil.After(now) && now.Sub(s.lastUsed) > siteIdleTTL
}
