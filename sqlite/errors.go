package sqlite

import (
	"context"
	"errors"
	"fmt"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/storeutil"
)

// fail is how every method of the store reports a failure of op: the
// one place that decides which failures mean "the database cannot serve
// now, retry later" (EUNAVAILABLE, answered with 503 and Retry-After)
// rather than a bug (500). A tenon error already in err's chain keeps its
// code.
func (s *Store) fail(op string, err error) error {
	wrapped := fmt.Errorf("sqlite: %s: %w", op, err)
	var te *tenon.Error
	if errors.As(err, &te) {
		return wrapped
	}
	if s.closed.Load() {
		return storeutil.Unavailable(storeutil.MsgClosed, wrapped)
	}
	// The driver's errors and the lookup connections' carry the code.
	var se interface{ Code() int }
	if errors.As(err, &se) {
		if msg := codeMessage(se.Code()); msg != "" {
			return storeutil.Unavailable(msg, wrapped)
		}
		return wrapped
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// Waiting for the single writer outlasted the caller's deadline.
		return storeutil.Unavailable(storeutil.MsgTimeout, wrapped)
	}
	return wrapped
}

// codeMessage returns the message for an SQLite result code (primary or
// extended) that says the database cannot serve now but may again later,
// and "" for the others, which are bugs or corruption.
func codeMessage(code int) string {
	switch code & 0xff { // the primary code of an extended one
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_PROTOCOL:
		// Another process (a backup, the sqlite3 shell) held a lock
		// longer than the busy timeout.
		return storeutil.MsgBusy
	case sqlite3.SQLITE_FULL:
		return storeutil.MsgFull
	case sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN:
		return storeutil.MsgIO
	}
	return ""
}
