// Package leader chooses the one node of a deployment that does singleton
// work: job purges, backups, drills, retention and scheduled maintenance.
// Work that every node would otherwise repeat runs through a Leader, which
// starts it when this node takes the lease and cancels it when the lease
// is lost.
//
// Two implementations: Always, for a deployment that has one node by
// construction (SQLite), and Postgres, a lease held as a session advisory
// lock on a connection of its own, so that losing the connection loses
// the lease at once on the server's side. The lease engine is
// PostgreSQL's lock manager; this package adds no consensus of its own.
package leader

import (
	"context"
	"time"
)

// Leader tells whether this node leads and runs singleton work while it
// does. Implementations are safe for concurrent use.
type Leader interface {
	// IsLeader reports whether this node holds the lease and may run
	// singleton work now.
	IsLeader() bool
	// Token is the fencing token of the current term: it grows with each
	// term over the whole deployment, and is 0 while this node does not
	// lead. Work that writes somewhere outside the database can record
	// it, so that a write of an older term is recognised as stale.
	Token() int64
	// Run calls work each time this node starts a term, with a context
	// that ends when the term ends (the lease was lost or ctx ended), and
	// waits for work to return before another node can start its term
	// (work must return promptly once its context ends). Run returns
	// when ctx ends.
	Run(ctx context.Context, work func(ctx context.Context))
}

// Clock is the time a Postgres elector lives by, injected so that tests
// can run it without sleeping.
type Clock interface {
	Now() time.Time
	// After is time.After.
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now is time.Now.
func (SystemClock) Now() time.Time { return time.Now() }

// After is time.After.
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Always is the Leader of a deployment of one node: it always leads,
// in one term whose token is 1.
type Always struct{}

var _ Leader = Always{}

// IsLeader is always true.
func (Always) IsLeader() bool { return true }

// Token is always 1.
func (Always) Token() int64 { return 1 }

// Run calls work(ctx) once and returns when it does.
func (Always) Run(ctx context.Context, work func(ctx context.Context)) {
	work(ctx)
	<-ctx.Done()
}
