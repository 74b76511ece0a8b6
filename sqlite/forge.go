package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/storeutil"
)

var _ tenon.ForgeStore = (*Store)(nil)

// forgeRecordColumns are written by RecordForgeInstallation; forgeColumns
// add the lifecycle the lifecycle methods write.
const (
	forgeRecordColumns = `installation_id, app_id, cloud_id, client_key, api_base_url, site_url, product,
	environment_type, environment_id, first_seen, last_seen`
	forgeColumns = forgeRecordColumns + `, state, app_version, installed_at, upgraded_at, uninstalled_at`
)

// forgeKeyLow and forgeKeyHigh bound the Forge tenant keys in byte order,
// so a range on client_key selects them without LIKE.
const (
	forgeKeyLow  = tenon.ForgeTenantKeyPrefix
	forgeKeyHigh = "forge;" // ':' + 1
)

// queryer is what both *sql.DB and *sql.Tx offer.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func scanForge(row scanner) (*tenon.ForgeInstallation, error) {
	var in tenon.ForgeInstallation
	var first, last, state string
	var installed, upgraded, uninstalled sql.NullString
	err := row.Scan(&in.InstallationID, &in.AppID, &in.CloudID, &in.ClientKey, &in.APIBaseURL, &in.SiteURL,
		&in.Product, &in.Environment.Type, &in.Environment.ID, &first, &last,
		&state, &in.AppVersion, &installed, &upgraded, &uninstalled)
	if err != nil {
		return nil, err
	}
	in.State = tenon.ForgeState(state)
	for _, t := range []struct {
		src sql.NullString
		dst *time.Time
	}{{installed, &in.InstalledAt}, {upgraded, &in.UpgradedAt}, {uninstalled, &in.UninstalledAt}} {
		if t.src.Valid {
			if *t.dst, err = parseTime(t.src.String); err != nil {
				return nil, err
			}
		}
	}
	if in.FirstSeen, err = parseTime(first); err != nil {
		return nil, err
	}
	if in.LastSeen, err = parseTime(last); err != nil {
		return nil, err
	}
	return &in, nil
}

// RecordForgeInstallation implements tenon.ForgeStore. The whole decision
// (keep the link, find a Connect tenant, or use the Forge tenant key) and
// the write run in one IMMEDIATE transaction, so no concurrent install or
// record can interleave.
func (s *Store) RecordForgeInstallation(ctx context.Context, in *tenon.ForgeInstallation) error {
	if err := storeutil.ValidateForgeInstallation(in); err != nil {
		return err
	}
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return s.fail("record forge installation", err)
	}
	defer tx.Rollback()
	stored, err := s.recordForge(ctx, tx, in)
	if err != nil {
		return s.fail("record forge installation", err)
	}
	if err := tx.Commit(); err != nil {
		return s.fail("record forge installation", err)
	}
	*in = *stored
	return nil
}

// recordForge is RecordForgeInstallation inside tx; it returns the stored
// row.
func (s *Store) recordForge(ctx context.Context, tx *sql.Tx, in *tenon.ForgeInstallation) (*tenon.ForgeInstallation, error) {
	now := formatTime(storeutil.Now(s.now))
	var current string
	err := tx.QueryRowContext(ctx, `SELECT client_key FROM forge_installations WHERE installation_id = ?`,
		in.InstallationID).Scan(&current)
	exists := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	key := current
	if !exists || tenon.IsForgeTenantKey(current) {
		connect, err := connectTenantOf(ctx, tx, in.InstallationID, in.CloudID)
		if err != nil {
			return nil, err
		}
		switch {
		case connect != "":
			if _, err := linkForge(ctx, tx, connect, in.InstallationID, in.CloudID); err != nil {
				return nil, err
			}
			key = connect
		case !exists:
			key = tenon.ForgeTenantKey(in.CloudID, in.InstallationID)
		}
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO forge_installations (`+forgeRecordColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (installation_id) DO UPDATE SET
			app_id = excluded.app_id,
			cloud_id = CASE WHEN excluded.cloud_id <> '' THEN excluded.cloud_id ELSE forge_installations.cloud_id END,
			client_key = excluded.client_key,
			api_base_url = excluded.api_base_url,
			site_url = CASE WHEN excluded.site_url <> '' THEN excluded.site_url ELSE forge_installations.site_url END,
			product = excluded.product,
			environment_type = excluded.environment_type,
			environment_id = excluded.environment_id,
			last_seen = excluded.last_seen`,
		in.InstallationID, in.AppID, in.CloudID, key, in.APIBaseURL, in.SiteURL, in.Product,
		in.Environment.Type, in.Environment.ID, now, now)
	if err != nil {
		return nil, err
	}
	stored, err := scanForge(tx.QueryRowContext(ctx, `SELECT `+forgeColumns+` FROM forge_installations WHERE installation_id = ?`, in.InstallationID))
	return stored, err
}

// connectTenantOf returns the clientKey of the Connect tenant of a site:
// the one whose installed payload named installationID, else one with
// cloudID, preferring enabled over disabled over uninstalled, then the
// most recently changed. "" when there is none.
func connectTenantOf(ctx context.Context, q queryer, installationID, cloudID string) (string, error) {
	var key string
	err := q.QueryRowContext(ctx, `
		SELECT client_key FROM installations
		WHERE (installation_id = ?1 AND ?1 <> '') OR (cloud_id = ?2 AND ?2 <> '')
		ORDER BY CASE WHEN installation_id = ?1 THEN 0 ELSE 1 END,
			CASE state WHEN 'enabled' THEN 0 WHEN 'disabled' THEN 1 ELSE 2 END,
			updated_at DESC, client_key
		LIMIT 1`, installationID, cloudID).Scan(&key)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return key, err
}

// linkForge points the Forge-only installations of a site (installationID
// or cloudID) at the Connect tenant connectKey and moves their data. It
// returns the installations it changed.
func linkForge(ctx context.Context, q queryer, connectKey, installationID, cloudID string) ([]*tenon.ForgeInstallation, error) {
	rows, err := q.QueryContext(ctx, `
		SELECT DISTINCT client_key FROM forge_installations
		WHERE ((installation_id = ?1 AND ?1 <> '') OR (cloud_id = ?2 AND ?2 <> ''))
			AND client_key >= ?3 AND client_key < ?4`,
		installationID, cloudID, forgeKeyLow, forgeKeyHigh)
	if err != nil {
		return nil, err
	}
	var forgeKeys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return nil, err
		}
		forgeKeys = append(forgeKeys, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var linked []*tenon.ForgeInstallation
	for _, fk := range forgeKeys {
		// Values the Connect tenant lacks move over; values it has stay
		// as they are, and the Forge copy stays behind unless identical.
		if _, err := q.ExecContext(ctx, `
			INSERT INTO app_data (client_key, key, value, updated_at)
			SELECT ?1, key, value, updated_at FROM app_data WHERE client_key = ?2
			ON CONFLICT (client_key, key) DO NOTHING`, connectKey, fk); err != nil {
			return nil, err
		}
		if _, err := q.ExecContext(ctx, `
			DELETE FROM app_data WHERE client_key = ?2 AND EXISTS (
				SELECT 1 FROM app_data c WHERE c.client_key = ?1 AND c.key = app_data.key AND c.value = app_data.value)`,
			connectKey, fk); err != nil {
			return nil, err
		}
		rows, err := q.QueryContext(ctx, `
			UPDATE forge_installations SET client_key = ?1 WHERE client_key = ?2
			RETURNING `+forgeColumns, connectKey, fk)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			in, err := scanForge(rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			linked = append(linked, in)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return linked, nil
}

// ForgeInstallation implements tenon.ForgeStore.
func (s *Store) ForgeInstallation(ctx context.Context, installationID string) (*tenon.ForgeInstallation, error) {
	if !storeutil.ValidClientKey(installationID) {
		return nil, storeutil.ForgeNotFound(installationID)
	}
	in, err := scanForge(s.reader.QueryRowContext(ctx,
		`SELECT `+forgeColumns+` FROM forge_installations WHERE installation_id = ?`, installationID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, storeutil.ForgeNotFound(installationID)
	}
	if err != nil {
		return nil, s.fail("get forge installation", err)
	}
	return in, nil
}

// ForgeInstallations implements tenon.ForgeStore.
func (s *Store) ForgeInstallations(ctx context.Context, clientKey string) ([]*tenon.ForgeInstallation, error) {
	if !storeutil.ValidClientKey(clientKey) {
		return nil, nil
	}
	rows, err := s.reader.QueryContext(ctx,
		`SELECT `+forgeColumns+` FROM forge_installations WHERE client_key = ? ORDER BY installation_id`, clientKey)
	if err != nil {
		return nil, s.fail("list forge installations", err)
	}
	defer rows.Close()
	var list []*tenon.ForgeInstallation
	for rows.Next() {
		in, err := scanForge(rows)
		if err != nil {
			return nil, s.fail("list forge installations", err)
		}
		list = append(list, in)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("list forge installations", err)
	}
	return list, nil
}

// LinkForgeInstallations implements tenon.ForgeStore.
func (s *Store) LinkForgeInstallations(ctx context.Context, clientKey string) ([]*tenon.ForgeInstallation, error) {
	if !storeutil.ValidClientKey(clientKey) || tenon.IsForgeTenantKey(clientKey) {
		return nil, storeutil.NotFound(clientKey)
	}
	// Nearly every install has nothing to link: a reader says so, and the
	// install costs no second turn on the writer. A Forge installation
	// recorded after this read links itself when it is recorded.
	var pending bool
	err := s.forgePending.QueryRowContext(ctx, forgeKeyLow, forgeKeyHigh, clientKey).Scan(&pending)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, storeutil.NotFound(clientKey)
	}
	if err != nil {
		return nil, s.fail("link forge installations", err)
	}
	if !pending {
		return nil, nil
	}
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, s.fail("link forge installations", err)
	}
	defer tx.Rollback()
	var installationID, cloudID string
	err = tx.QueryRowContext(ctx, `SELECT installation_id, cloud_id FROM installations WHERE client_key = ?`,
		clientKey).Scan(&installationID, &cloudID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, storeutil.NotFound(clientKey)
	}
	if err != nil {
		return nil, s.fail("link forge installations", err)
	}
	linked, err := linkForge(ctx, tx, clientKey, installationID, cloudID)
	if err != nil {
		return nil, s.fail("link forge installations", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, s.fail("link forge installations", err)
	}
	return linked, nil
}

var _ tenon.ForgeLifecycleStore = (*Store)(nil)

// ForgeInstalled implements tenon.ForgeLifecycleStore, in one IMMEDIATE
// transaction with the record and the links it makes.
func (s *Store) ForgeInstalled(ctx context.Context, in *tenon.ForgeInstallation, upgrade, supersede bool, at time.Time) (bool, []string, error) {
	if err := storeutil.ValidateForgeInstallation(in); err != nil {
		return false, nil, err
	}
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return false, nil, s.fail("record forge lifecycle", err)
	}
	defer tx.Rollback()
	var state string
	err = tx.QueryRowContext(ctx, `SELECT state FROM forge_installations WHERE installation_id = ?`, in.InstallationID).Scan(&state)
	switch {
	case err == nil && tenon.ForgeState(state) == tenon.ForgeUninstalled:
		return false, nil, storeutil.ForgeUninstalledConflict(in.InstallationID)
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return false, nil, s.fail("record forge lifecycle", err)
	}
	version := in.AppVersion
	stored, err := s.recordForge(ctx, tx, in)
	if err != nil {
		return false, nil, s.fail("record forge lifecycle", err)
	}
	changed, upd := storeutil.ForgeLifecycleChange(stored, version, upgrade, at)
	if changed {
		_, err = tx.ExecContext(ctx, `UPDATE forge_installations SET state = 'active', app_version = ?,
			installed_at = ?, upgraded_at = ? WHERE installation_id = ?`,
			upd.AppVersion, nullTime(upd.InstalledAt), nullTime(upd.UpgradedAt), in.InstallationID)
		if err != nil {
			return false, nil, s.fail("record forge lifecycle", err)
		}
		stored.AppVersion, stored.InstalledAt, stored.UpgradedAt = upd.AppVersion, upd.InstalledAt, upd.UpgradedAt
		stored.State = tenon.ForgeActive
	}
	var superseded []string
	if supersede {
		rows, err := tx.QueryContext(ctx, `
			UPDATE installations SET state = 'uninstalled', updated_at = ?3, uninstalled_at = ?3, superseded_by = ?4
			WHERE ((installation_id = ?1 AND ?1 <> '') OR (cloud_id = ?2 AND ?2 <> '')) AND state <> 'uninstalled'
			RETURNING client_key`, stored.InstallationID, stored.CloudID, formatTime(at), stored.InstallationID)
		if err != nil {
			return false, nil, s.fail("supersede connect tenant", err)
		}
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return false, nil, s.fail("supersede connect tenant", err)
			}
			superseded = append(superseded, k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return false, nil, s.fail("supersede connect tenant", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, nil, s.fail("record forge lifecycle", err)
	}
	*in = *stored
	return changed || len(superseded) > 0, superseded, nil
}

// ForgeUninstalled implements tenon.ForgeLifecycleStore.
func (s *Store) ForgeUninstalled(ctx context.Context, installationID string, at time.Time) (bool, error) {
	if !storeutil.ValidClientKey(installationID) {
		return false, storeutil.ForgeNotFound(installationID)
	}
	res, err := s.writer.ExecContext(ctx, `UPDATE forge_installations SET state = 'uninstalled', uninstalled_at = ?
		WHERE installation_id = ? AND state <> 'uninstalled'`, formatTime(at), installationID)
	if err != nil {
		return false, s.fail("uninstall forge installation", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return false, s.fail("uninstall forge installation", err)
	} else if n > 0 {
		return true, nil
	}
	if _, err := s.ForgeInstallation(ctx, installationID); err != nil {
		return false, err
	}
	return false, nil
}

// ActiveForgeInstallations implements tenon.ForgeLifecycleStore.
func (s *Store) ActiveForgeInstallations(ctx context.Context, after string, limit int) ([]*tenon.ForgeInstallation, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT `+forgeColumns+` FROM forge_installations
		WHERE state = 'active' AND installation_id > ? ORDER BY installation_id LIMIT ?`, after, limit)
	if err != nil {
		return nil, s.fail("list active forge installations", err)
	}
	defer rows.Close()
	var list []*tenon.ForgeInstallation
	for rows.Next() {
		in, err := scanForge(rows)
		if err != nil {
			return nil, s.fail("list active forge installations", err)
		}
		list = append(list, in)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("list active forge installations", err)
	}
	return list, nil
}

// nullTime is t as stored, or NULL for the zero time.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return formatTime(t)
}
