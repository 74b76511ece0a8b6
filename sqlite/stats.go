package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/storeutil"
)

var (
	_ tenon.Pinger        = (*Store)(nil)
	_ tenon.PoolStatser   = (*Store)(nil)
	_ tenon.TenantCounter = (*Store)(nil)
)

// Ping implements tenon.Pinger: a reader answers and the schema is at
// least at the newest migration this program carries.
func (s *Store) Ping(ctx context.Context) error {
	want, err := storeutil.LatestMigration(migrationFiles, "migrations")
	if err != nil {
		return s.fail("ping", err)
	}
	var got sql.NullInt64
	err = s.reader.QueryRowContext(ctx, `SELECT max(version_id) FROM `+migrationTable+` WHERE is_applied`).Scan(&got)
	if err != nil {
		return s.fail("ping", err)
	}
	if got.Int64 < want {
		return fmt.Errorf("sqlite: ping: schema version %d, want at least %d", got.Int64, want)
	}
	return nil
}

// PoolStats implements tenon.PoolStatser: the single writer connection,
// the pool of readers and the connections of the point lookups.
func (s *Store) PoolStats() []tenon.PoolStats {
	return []tenon.PoolStats{poolStats("writer", s.writer.Stats()), poolStats("reader", s.reader.Stats()), s.lookups.stats()}
}

func poolStats(name string, st sql.DBStats) tenon.PoolStats {
	return tenon.PoolStats{
		Name:         name,
		MaxOpen:      st.MaxOpenConnections,
		Open:         st.OpenConnections,
		InUse:        st.InUse,
		Idle:         st.Idle,
		WaitCount:    st.WaitCount,
		WaitDuration: st.WaitDuration,
	}
}

// CountInstallations implements tenon.TenantCounter.
func (s *Store) CountInstallations(ctx context.Context) (map[tenon.State]int, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT state, count(*) FROM installations GROUP BY state`)
	if err != nil {
		return nil, s.fail("count installations", err)
	}
	defer rows.Close()
	out := map[tenon.State]int{}
	for rows.Next() {
		var state string
		var n int
		if err := rows.Scan(&state, &n); err != nil {
			return nil, s.fail("count installations", err)
		}
		out[tenon.State(state)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("count installations", err)
	}
	return out, nil
}
