package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/storeutil"
)

var (
	_ tenon.PersonalDataStore = (*Store)(nil)
	_ tenon.AuditStore        = (*Store)(nil)
	_ tenon.TenantPurger      = (*Store)(nil)
	_ tenon.OwnedTokenCache   = (*Store)(nil)
)

const touchAccountSQL = `
	INSERT INTO personal_accounts (client_key, account_id, updated_at) VALUES ($1, $2, $3)
	ON CONFLICT (client_key, account_id) DO UPDATE SET updated_at = excluded.updated_at`

// PutPersonal implements tenon.PersonalDataStore.
func (s *Store) PutPersonal(ctx context.Context, clientKey, accountID, key string, value json.RawMessage) error {
	if err := tenon.ValidateKey(key); err != nil {
		return err
	}
	if err := tenon.ValidateValue(value); err != nil {
		return err
	}
	if err := storeutil.ValidateAccount(clientKey, accountID); err != nil {
		return err
	}
	now := storeutil.Now(s.now)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			INSERT INTO app_data (client_key, key, value, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (client_key, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
			clientKey, key, []byte(value), now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO personal_values (client_key, account_id, key) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING`, clientKey, accountID, key); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, touchAccountSQL, clientKey, accountID, now)
		return err
	})
	if err != nil {
		return s.fail("put personal value", err)
	}
	return nil
}

// TouchAccount implements tenon.PersonalDataStore.
func (s *Store) TouchAccount(ctx context.Context, clientKey, accountID string) error {
	if err := storeutil.ValidateAccount(clientKey, accountID); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, touchAccountSQL, clientKey, accountID, storeutil.Now(s.now)); err != nil {
		return s.fail("touch account", err)
	}
	return nil
}

// PersonalAccounts implements tenon.PersonalDataStore.
func (s *Store) PersonalAccounts(ctx context.Context, clientKey, after string, limit int) ([]tenon.PersonalAccount, error) {
	if !storeutil.ValidClientKey(clientKey) || !storeutil.ValidText(after) {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT account_id, updated_at FROM personal_accounts
		WHERE client_key = $1 AND account_id > $2 ORDER BY account_id LIMIT $3`, clientKey, after, storeutil.ListLimit(limit))
	if err != nil {
		return nil, s.fail("list personal accounts", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (tenon.PersonalAccount, error) {
		a := tenon.PersonalAccount{ClientKey: clientKey}
		err := r.Scan(&a.AccountID, &a.UpdatedAt)
		a.UpdatedAt = a.UpdatedAt.UTC()
		return a, err
	})
	if err != nil {
		return nil, s.fail("list personal accounts", err)
	}
	return out, nil
}

// PersonalTenants implements tenon.PersonalDataStore.
func (s *Store) PersonalTenants(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT client_key FROM personal_accounts ORDER BY client_key`)
	if err != nil {
		return nil, s.fail("list personal tenants", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.fail("list personal tenants", err)
	}
	return out, nil
}

// ErasePersonal implements tenon.PersonalDataStore.
func (s *Store) ErasePersonal(ctx context.Context, clientKey, accountID string) (int, error) {
	if err := storeutil.ValidateAccount(clientKey, accountID); err != nil {
		return 0, err
	}
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM app_data WHERE client_key = $1 AND key IN
			(SELECT key FROM personal_values WHERE client_key = $1 AND account_id = $2)`, clientKey, accountID)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		for _, q := range []string{
			`DELETE FROM personal_values WHERE client_key = $1 AND account_id = $2`,
			`DELETE FROM personal_accounts WHERE client_key = $1 AND account_id = $2`,
			`DELETE FROM token_cache WHERE key IN (SELECT 'forge:user:' || installation_id || ':' || $2
				FROM forge_installations WHERE client_key = $1)`,
		} {
			if _, err := tx.Exec(ctx, q, clientKey, accountID); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `DELETE FROM token_cache WHERE client_key = $1 AND account = $2`,
			clientKey, storeutil.TokenAccount(clientKey, accountID))
		return err
	})
	if err != nil {
		return 0, s.fail("erase personal data", err)
	}
	return int(n), nil
}

// ReportCycle implements tenon.PersonalDataStore.
func (s *Store) ReportCycle(ctx context.Context, clientKey string) (tenon.ReportCycle, error) {
	c := tenon.ReportCycle{ClientKey: clientKey}
	if !storeutil.ValidClientKey(clientKey) {
		return c, nil
	}
	var started, notBefore *time.Time
	var period int64
	var pending []byte
	err := s.pool.QueryRow(ctx, `SELECT started_at, cursor, not_before, period_seconds, pending, reported
		FROM report_cycles WHERE client_key = $1`, clientKey).Scan(&started, &c.Cursor, &notBefore, &period, &pending, &c.Reported)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, nil
	}
	if err != nil {
		return c, s.fail("get report cycle", err)
	}
	c.Period = time.Duration(period) * time.Second
	if started != nil {
		c.StartedAt = started.UTC()
	}
	if notBefore != nil {
		c.NotBefore = notBefore.UTC()
	}
	if c.Pending, err = storeutil.DecodePending(pending); err != nil {
		return c, s.fail("get report cycle", err)
	}
	return c, nil
}

// SaveReportCycle implements tenon.PersonalDataStore.
func (s *Store) SaveReportCycle(ctx context.Context, c tenon.ReportCycle) error {
	if err := storeutil.ValidateCycle(c); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO report_cycles (client_key, started_at, cursor, not_before, period_seconds, pending, reported)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (client_key) DO UPDATE SET started_at = excluded.started_at, cursor = excluded.cursor,
			not_before = excluded.not_before, period_seconds = excluded.period_seconds,
			pending = excluded.pending, reported = excluded.reported`,
		c.ClientKey, nullTime(c.StartedAt), c.Cursor, nullTime(c.NotBefore), int64(c.Period/time.Second),
		storeutil.EncodePending(c.Pending), c.Reported)
	if err != nil {
		return s.fail("save report cycle", err)
	}
	return nil
}

// PutOwnedToken implements tenon.OwnedTokenCache.
func (s *Store) PutOwnedToken(ctx context.Context, key string, owner tenon.TokenOwner, token string, expiresAt time.Time) error {
	if err := storeutil.ValidatePutToken(key, token, expiresAt); err != nil {
		return err
	}
	if owner.ClientKey != "" && !storeutil.ValidClientKey(owner.ClientKey) {
		return tenon.Errorf(tenon.EINVALID, "The token owner's clientKey is not valid.")
	}
	sealed, err := storeutil.SealToken(s.box, key, token)
	if err != nil {
		return s.fail("put token", err)
	}
	_, err = s.pool.Exec(ctx, `
		INSERT INTO token_cache (key, token, expires_at, updated_at, client_key, account) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (key) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at,
			updated_at = excluded.updated_at, client_key = excluded.client_key, account = excluded.account`,
		key, sealed, expiresAt.UTC().Truncate(time.Microsecond), storeutil.Now(s.now),
		owner.ClientKey, storeutil.TokenAccount(owner.ClientKey, owner.AccountID))
	if err != nil {
		return s.fail("put token", err)
	}
	return nil
}

// Audit implements tenon.AuditStore.
func (s *Store) Audit(ctx context.Context, e tenon.AuditEntry) error {
	if err := storeutil.ValidateAudit(&e, storeutil.Now(s.now)); err != nil {
		return err
	}
	if err := s.audit(ctx, s.pool, e); err != nil {
		return s.fail("audit", err)
	}
	return nil
}

// execer is a pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

func (s *Store) audit(ctx context.Context, q execer, e tenon.AuditEntry) error {
	_, err := q.Exec(ctx, `INSERT INTO audit (at, action, client_key, account_id, actor, detail)
		VALUES ($1, $2, $3, $4, $5, $6)`, e.At, e.Action, e.ClientKey, e.AccountID, e.Actor, e.Detail)
	return err
}

// AuditEntries implements tenon.AuditStore.
func (s *Store) AuditEntries(ctx context.Context, f tenon.AuditFilter) ([]tenon.AuditEntry, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, at, action, client_key, account_id, actor, detail FROM audit
		WHERE id > $1 AND ($2 = '' OR client_key = $2) AND ($3 = '' OR action = $3) ORDER BY id LIMIT $4`,
		f.AfterID, f.ClientKey, f.Action, storeutil.ListLimit(f.Limit))
	if err != nil {
		return nil, s.fail("list audit", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (tenon.AuditEntry, error) {
		var e tenon.AuditEntry
		err := r.Scan(&e.ID, &e.At, &e.Action, &e.ClientKey, &e.AccountID, &e.Actor, &e.Detail)
		e.At = e.At.UTC()
		return e, err
	})
	if err != nil {
		return nil, s.fail("list audit", err)
	}
	return out, nil
}

// RetentionDue implements tenon.TenantPurger.
func (s *Store) RetentionDue(ctx context.Context, before time.Time) ([]string, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT client_key FROM installations i
		WHERE state = 'uninstalled' AND uninstalled_at < $1
			AND NOT EXISTS (SELECT 1 FROM forge_installations f WHERE f.client_key = i.client_key AND f.state = 'active')
		UNION
		SELECT client_key FROM forge_installations f
		WHERE client_key >= $2 AND client_key < $3
			AND NOT EXISTS (SELECT 1 FROM installations i WHERE i.client_key = f.client_key)
		GROUP BY client_key
		HAVING count(*) FILTER (WHERE state = 'active') = 0 AND max(coalesce(uninstalled_at, last_seen)) < $1
		ORDER BY 1`, before.UTC(), forgeKeyLow, forgeKeyHigh)
	if err != nil {
		return nil, s.fail("list tenants due for retention", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.fail("list tenants due for retention", err)
	}
	return out, nil
}

// tenantPurgeSQL deletes one table's rows of tenant $1, in storeutil.PurgeTables order.
var tenantPurgeSQL = map[string]string{
	"token_cache": `DELETE FROM token_cache t WHERE t.client_key = $1 OR EXISTS (
		SELECT 1 FROM forge_installations f WHERE f.client_key = $1 AND (t.key = 'forge:system:' || f.installation_id
			OR starts_with(t.key, 'forge:user:' || f.installation_id || ':')))`,
	"personal_values":     `DELETE FROM personal_values WHERE client_key = $1`,
	"personal_accounts":   `DELETE FROM personal_accounts WHERE client_key = $1`,
	"report_cycles":       `DELETE FROM report_cycles WHERE client_key = $1`,
	"app_data":            `DELETE FROM app_data WHERE client_key = $1`,
	"jobs":                `DELETE FROM jobs WHERE client_key = $1`,
	"forge_installations": `DELETE FROM forge_installations WHERE client_key = $1`,
	"installations":       `DELETE FROM installations WHERE client_key = $1`,
}

// PurgeTenant implements tenon.TenantPurger.
func (s *Store) PurgeTenant(ctx context.Context, clientKey string, e tenon.AuditEntry) (map[string]int, error) {
	if !storeutil.ValidClientKey(clientKey) {
		return nil, tenon.Errorf(tenon.EINVALID, "The clientKey is not valid.")
	}
	e.Action, e.ClientKey = tenon.AuditTenantPurged, clientKey
	if err := storeutil.ValidateAudit(&e, storeutil.Now(s.now)); err != nil {
		return nil, err
	}
	counts := make(map[string]int)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var parts []string
		for _, table := range storeutil.PurgeTables {
			tag, err := tx.Exec(ctx, tenantPurgeSQL[table], clientKey)
			if err != nil {
				return err
			}
			counts[table] = int(tag.RowsAffected())
			parts = append(parts, table+"="+strconv.FormatInt(tag.RowsAffected(), 10))
		}
		if e.Detail == "" {
			e.Detail = "deleted rows: " + strings.Join(parts, " ")
		}
		return s.audit(ctx, tx, e)
	})
	if err != nil {
		return nil, s.fail("purge tenant", err)
	}
	return counts, nil
}
