package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/storeutil"
)

// fail is how every method of the store reports a failure of op: the
// one place that decides which failures mean "the database is out of
// reach, retry later" (EUNAVAILABLE, answered with 503 and Retry-After)
// rather than a bug (500). A tenon error already in err's chain keeps its
// code.
func (s *Store) fail(op string, err error) error {
	wrapped := fmt.Errorf("postgres: %s: %w", op, err)
	var te *tenon.Error
	if errors.As(err, &te) {
		return wrapped
	}
	if s.closed.Load() {
		return storeutil.Unavailable(storeutil.MsgClosed, wrapped)
	}
	msg := unavailable(err)
	if msg == "" {
		return wrapped
	}
	if msg == storeutil.MsgUnreachable || msg == storeutil.MsgReadOnly {
		// What broke one connection — a restart, a failover, a network
		// cut — broke the idle ones too, but the pool finds that out
		// only one failed call per connection at a time. Dropping them
		// all now lets the next call connect afresh, to the server that
		// is back or to the new primary.
		s.pool.Reset()
	}
	return storeutil.Unavailable(msg, wrapped)
}

// unavailable returns the message for a failure that says the database
// cannot serve now but may again soon, and "" for anything else.
func unavailable(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "25006": // read_only_sql_transaction: a standby, or a failover under way
			return storeutil.MsgReadOnly
		case pe.Code == "53100": // disk_full
			return storeutil.MsgFull
		case strings.HasPrefix(pe.Code, "53"): // too many connections, out of memory
			return storeutil.MsgBusy
		case strings.HasPrefix(pe.Code, "08"), // connection exceptions
			strings.HasPrefix(pe.Code, "57P"): // admin or crash shutdown, cannot connect now
			return storeutil.MsgUnreachable
		case pe.Code == "57014" && strings.Contains(pe.Message, "statement timeout"): // query_canceled by statement_timeout
			return storeutil.MsgTimeout
		}
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		// Whatever stopped the connection — refused, shutting down,
		// starting up, too many clients — a new one is tried on the
		// next call.
		return storeutil.MsgUnreachable
	}
	if pe != nil {
		return "" // the server answered: the statement itself failed
	}
	if errors.Is(err, context.Canceled) {
		return "" // the caller gave up; nothing is wrong with the database
	}
	if errors.Is(err, pgconn.ErrConnClosed) {
		return storeutil.MsgUnreachable
	}
	if pgconn.Timeout(err) {
		return storeutil.MsgTimeout
	}
	return storeutil.ConnectionLost(err)
}
