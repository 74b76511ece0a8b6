package tenon

import (
	"context"
	"time"
)

// RateBudget is what the nodes of an app share about one product's
// rate-limit quota pool (Atlassian's hourly points quota, one pool for all
// of an app's tenants): what the product last said was left, when the pool
// refills, and whether calls are paused.
type RateBudget struct {
	Limit       int64     `json:"limit,omitempty"`       // points per window; 0 when unknown
	Remaining   int64     `json:"remaining"`             // points left when observed; -1 when unknown
	ResetAt     time.Time `json:"resetAt,omitzero"`      // when the pool refills; zero when unknown
	ObservedAt  time.Time `json:"observedAt,omitzero"`   // when Remaining was read from an answer
	PausedUntil time.Time `json:"pausedUntil,omitzero"`  // no node calls the product before then
	PauseReason string    `json:"pauseReason,omitempty"` // the RateLimit-Reason that caused the pause
	// Nodes is how many nodes merged into the budget within the liveness
	// window; set by BudgetStore.MergeRateBudget, ignored on input.
	Nodes int `json:"-"`
}

// sameWindowSlack is how far apart two nodes may put the reset of one
// quota window: each computes it from a relative time on its own clock.
const sameWindowSlack = 5 * time.Minute

// MergeRateBudgets is the one rule by which views of a budget combine, in
// every BudgetStore: a later window replaces an earlier one; within one
// window the lower remaining count wins (the product's count only goes
// down); the later pause wins. It is commutative and idempotent, so nodes
// may merge in any order and any number of times.
func MergeRateBudgets(a, b RateBudget) RateBudget {
	out := a
	switch {
	case b.ResetAt.IsZero() || b.Remaining < 0:
	case a.ResetAt.IsZero() || a.Remaining < 0 || b.ResetAt.Sub(a.ResetAt) > sameWindowSlack:
		out.Limit, out.Remaining, out.ResetAt, out.ObservedAt = b.Limit, b.Remaining, b.ResetAt, b.ObservedAt
	case a.ResetAt.Sub(b.ResetAt) > sameWindowSlack:
	default:
		if b.Remaining < a.Remaining || (b.Remaining == a.Remaining && b.ResetAt.After(a.ResetAt)) {
			out.Remaining, out.ResetAt = b.Remaining, b.ResetAt
		}
		out.Limit = max(a.Limit, b.Limit)
		if b.ObservedAt.After(a.ObservedAt) {
			out.ObservedAt = b.ObservedAt
		}
	}
	if b.PausedUntil.After(a.PausedUntil) || (b.PausedUntil.Equal(a.PausedUntil) && b.PauseReason > a.PauseReason) {
		out.PausedUntil, out.PauseReason = b.PausedUntil, b.PauseReason
	}
	out.Nodes = 0
	return out
}

// BudgetStore is an optional Store capability, found by type assertion:
// rate-limit budgets shared by every node of an app, so that five nodes
// do not spend five times the product's pool, and a pause one node learns
// of holds for all. The PostgreSQL store implements it; a single node
// (SQLite) needs none.
//
// Implementations are safe for concurrent use by many nodes. Keys follow
// the rules of KV keys; node names are at most 200 bytes.
type BudgetStore interface {
	// MergeRateBudget merges b, node's view of the budget key, into the
	// shared one with MergeRateBudgets, atomically, records that node was
	// alive at now, and returns the merged budget with Nodes set to the
	// number of nodes (node included) seen within ttl before now. A
	// budget never merged before starts unknown (Remaining -1).
	MergeRateBudget(ctx context.Context, key, node string, b RateBudget, now time.Time, ttl time.Duration) (RateBudget, error)
}

// RateBudgetStats is a product's quota pool as one answer described it,
// for metrics.
type RateBudgetStats struct {
	Product   string
	Policy    string // e.g. "global-app-quota", "tenant-app-quota"
	Limit     int64  // 0 when the answer did not say
	Remaining int64
	NearLimit bool // the product said it is near the limit
}

// RatePause is a pause of calls that starts or ends, for metrics.
type RatePause struct {
	Product string
	Scope   string // "product" (all tenants), "tenant", "endpoint" or "issue"
	Reason  string // the RateLimit-Reason, e.g. "jira-quota-global-based"
	Until   time.Time
	Start   bool // false: the pause ended
}

// TenantShare is how much of the points spent in the current window one
// tenant spent, 0 to 1.
type TenantShare struct {
	Tenant string
	Used   float64
}

// RateObserver is an optional Observer capability, found by type
// assertion: what the client learns of the products' rate limits. Like
// Observer, implementations must be fast and safe for concurrent use.
type RateObserver interface {
	ObserveRateBudget(RateBudgetStats)
	ObserveRatePause(RatePause)
	// ObserveTenantShares reports the tenants that spent most of the
	// product's pool this window, largest first, at most a handful: never
	// every tenant.
	ObserveTenantShares(product string, top []TenantShare)
}

type backgroundKey struct{}

// WithBackgroundWork marks ctx as background work (jobs, schedules): calls
// to products made with it yield to interactive ones when the rate-limit
// budget runs low.
func WithBackgroundWork(ctx context.Context) context.Context {
	return context.WithValue(ctx, backgroundKey{}, true)
}

// IsBackgroundWork reports whether ctx was marked by WithBackgroundWork.
func IsBackgroundWork(ctx context.Context) bool {
	b, _ := ctx.Value(backgroundKey{}).(bool)
	return b
}
