package tenon

import (
	"context"
	"time"
)

// Pinger is an optional Store capability, found by type assertion, for
// readiness checks: Ping reports whether the database answers and its
// schema is migrated at least as far as this program expects. A newer
// schema, migrated by a newer node during a rolling upgrade, is fine.
type Pinger interface {
	Ping(ctx context.Context) error
}

// PoolStats describe one connection pool of a store, for metrics.
type PoolStats struct {
	Name         string        // e.g. "writer", "reader", "pool"
	MaxOpen      int           // the pool's limit; 0 when unlimited
	Open         int           // connections open now, in use or idle
	InUse        int           // connections running a statement now
	Idle         int           // open connections waiting for work
	WaitCount    int64         // connections waited for since the start
	WaitDuration time.Duration // total time spent waiting for them
}

// PoolStatser is an optional Store capability, found by type assertion:
// the state of its connection pools, for metrics. It must be cheap: it is
// called on every scrape.
type PoolStatser interface {
	PoolStats() []PoolStats
}

// TenantCounter is an optional Store capability, found by type assertion:
// how many installations there are in each state, without reading them.
// States without installations may be missing from the map.
type TenantCounter interface {
	CountInstallations(ctx context.Context) (map[State]int, error)
}
