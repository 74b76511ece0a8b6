package postgres

import (
	"context"
	"fmt"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/storeutil"
)

var (
	_ tenon.Pinger        = (*Store)(nil)
	_ tenon.PoolStatser   = (*Store)(nil)
	_ tenon.TenantCounter = (*Store)(nil)
)

// Ping implements tenon.Pinger: the database answers and the schema is
// at least at the newest migration this program carries. A node of a
// newer release may have migrated further; that is fine.
func (s *Store) Ping(ctx context.Context) error {
	want, err := storeutil.LatestMigration(migrationFiles, "migrations")
	if err != nil {
		return s.fail("ping", err)
	}
	var got *int64
	err = s.pool.QueryRow(ctx, `SELECT max(version_id) FROM `+migrationTable+` WHERE is_applied`).Scan(&got)
	if err != nil {
		return s.fail("ping", err)
	}
	if got == nil || *got < want {
		var v int64
		if got != nil {
			v = *got
		}
		return fmt.Errorf("postgres: ping: schema version %d, want at least %d", v, want)
	}
	return nil
}

// PoolStats implements tenon.PoolStatser.
func (s *Store) PoolStats() []tenon.PoolStats {
	st := s.pool.Stat()
	return []tenon.PoolStats{{
		Name:         "pool",
		MaxOpen:      int(st.MaxConns()),
		Open:         int(st.TotalConns()),
		InUse:        int(st.AcquiredConns()),
		Idle:         int(st.IdleConns()),
		WaitCount:    st.EmptyAcquireCount(),
		WaitDuration: st.EmptyAcquireWaitTime(),
	}}
}

// CountInstallations implements tenon.TenantCounter.
func (s *Store) CountInstallations(ctx context.Context) (map[tenon.State]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT state, count(*) FROM installations GROUP BY state`)
	if err != nil {
		return nil, s.fail("count installations", err)
	}
	defer rows.Close()
	out := map[tenon.State]int{}
	for rows.Next() {
		var state string
		var n int64
		if err := rows.Scan(&state, &n); err != nil {
			return nil, s.fail("count installations", err)
		}
		out[tenon.State(state)] = int(n)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("count installations", err)
	}
	return out, nil
}
