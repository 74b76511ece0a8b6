package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/storeutil"
)

// Retrying idempotent calls. A failover or a restart of the server breaks
// the connections a call was on; the pool is reset by fail and the next
// attempt connects to the server that is back, or to the new primary. A
// call that is safe to repeat (a read, a put of one value, a delete) is
// repeated while the caller's deadline leaves room, so a request that
// meets the failover is answered late rather than refused; anything else
// answers 503 with Retry-After, as ever.
const (
	retryFirstWait = 50 * time.Millisecond
	retryMaxWait   = 500 * time.Millisecond
	// retryReserve is left of the deadline for the last attempt itself.
	retryReserve = 250 * time.Millisecond
)

// idempotent runs call, and again after a short wait while it fails
// because the database is out of reach or read-only, and ctx has a
// deadline far enough away. Without a deadline it runs call once: work
// without one (jobs) has its own retries.
func (s *Store) idempotent(ctx context.Context, call func() error) error {
	wait := retryFirstWait
	for {
		err := call()
		if err == nil || !retryable(err) {
			return err
		}
		deadline, ok := ctx.Deadline()
		if !ok || time.Until(deadline) < wait+retryReserve || s.closed.Load() {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, retryMaxWait)
	}
}

// retryable reports whether err is a failure another connection may not
// have: the server unreachable, or a read-only server during a failover.
func retryable(err error) bool {
	var te *tenon.Error
	if !errors.As(err, &te) || te.Code != tenon.EUNAVAILABLE {
		return false
	}
	return te.Message == storeutil.MsgUnreachable || te.Message == storeutil.MsgReadOnly
}
