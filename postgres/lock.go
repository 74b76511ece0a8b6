package postgres

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/pressly/goose/v3/lock"
)

// advisoryLocker is a goose session locker that waits on
// pg_advisory_lock. goose's own Postgres locker polls with
// pg_try_advisory_lock at an interval of at least a second; blocking
// instead lets a node that starts next to a migrating one continue the
// moment the migration commits, and ctx still bounds the wait.
type advisoryLocker struct{ id int64 }

var _ lock.SessionLocker = advisoryLocker{}

func (l advisoryLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", l.id); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	return nil
}

func (l advisoryLocker) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	var released bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_advisory_unlock($1)", l.id).Scan(&released); err != nil {
		return fmt.Errorf("release migration lock: %w", err)
	}
	if !released {
		return fmt.Errorf("release migration lock: it was not held")
	}
	return nil
}
