package sqlite

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// Every commit waits for an fsync (synchronous=FULL), and the fsync, not
// the SQL, is what a durable write costs. Writes that arrive together —
// a burst of webhooks enqueueing jobs, installs from many sites at once —
// therefore share commits: the first caller becomes the leader and runs
// every write queued by then in one transaction on the single writer, so
// a burst costs one fsync per batch instead of one per write. Nobody is
// answered before the commit that holds its write has returned.
//
// At most one caller leads at a time; after its batch it hands the lead
// to the oldest waiting caller, so nobody works for others indefinitely.

// maxCommitBatch bounds one group commit, so a leader's own wait stays
// short under a flood.
const maxCommitBatch = 256

// commitOp is one write of a group commit. It runs inside the batch's
// transaction and records its own results in its closure; it may run
// again, in a transaction of its own, if the batch fails, so it must set
// every result afresh each time. An error it returns rolls the whole
// transaction back.
type commitOp func(ctx context.Context, tx *sql.Tx) error

// groupCommit is the queue of writes waiting for a commit.
type groupCommit struct {
	db      *sql.DB
	timeout time.Duration // bounds one batch: the busy timeout and some

	mu      sync.Mutex
	waiting []*commitReq
	leading bool
}

type commitReq struct {
	op   commitOp
	lead chan struct{} // receives the lead
	done chan struct{} // closed when err is set
	err  error
}

// do runs op in a group commit and returns once the commit holding it
// has returned: nil means op's write is on disk. Once queued, a write
// waits for its commit whatever becomes of the caller's context, so what
// do returns is never ambiguous; callers check their context first.
func (g *groupCommit) do(op commitOp) error {
	req := &commitReq{op: op, done: make(chan struct{}), lead: make(chan struct{}, 1)}
	g.mu.Lock()
	g.waiting = append(g.waiting, req)
	if !g.leading {
		g.leading = true
		req.lead <- struct{}{}
	}
	g.mu.Unlock()
	for {
		select {
		case <-req.done:
			return req.err
		case <-req.lead:
			g.commitBatch()
		}
	}
}

// commitBatch commits the oldest waiting writes, then hands the lead on.
func (g *groupCommit) commitBatch() {
	g.mu.Lock()
	n := min(len(g.waiting), maxCommitBatch)
	batch := g.waiting[:n:n]
	g.waiting = g.waiting[n:]
	g.mu.Unlock()

	// The batch is committed on behalf of callers whose contexts are
	// their own business; only the store's lifetime bounds it.
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	if err := g.run(ctx, batch); err != nil && len(batch) > 1 {
		// One bad write must not fail the others: alone, each gets its
		// own outcome.
		for _, req := range batch {
			req.err = g.run(ctx, []*commitReq{req})
		}
	} else {
		for _, req := range batch {
			req.err = err
		}
	}
	cancel()
	for _, req := range batch {
		close(req.done)
	}

	g.mu.Lock()
	if len(g.waiting) > 0 {
		g.waiting[0].lead <- struct{}{}
	} else {
		g.leading = false
	}
	g.mu.Unlock()
}

// run runs the ops of batch in one transaction and commits it; on error
// nothing is committed.
func (g *groupCommit) run(ctx context.Context, batch []*commitReq) error {
	tx, err := g.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, req := range batch {
		if err := req.op(ctx, tx); err != nil {
			return err
		}
	}
	return tx.Commit()
}
