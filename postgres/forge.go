package postgres

import (
	"context"
	"errors"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"

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

// forgeKeyLow and forgeKeyHigh bound the Forge tenant keys in byte order
// (the "C" collation), so a range selects them without LIKE.
const (
	forgeKeyLow  = tenon.ForgeTenantKeyPrefix
	forgeKeyHigh = "forge;" // ':' + 1
)

const (
	getForgeSQL      = `SELECT ` + forgeColumns + ` FROM forge_installations WHERE installation_id = $1`
	listForgeSQL     = `SELECT ` + forgeColumns + ` FROM forge_installations WHERE client_key = $1 ORDER BY installation_id`
	currentForgeSQL  = `SELECT client_key FROM forge_installations WHERE installation_id = $1 FOR UPDATE`
	connectTenantSQL = `
		SELECT client_key FROM installations
		WHERE (installation_id = $1 AND $1 <> '') OR (cloud_id = $2 AND $2 <> '')
		ORDER BY CASE WHEN installation_id = $1 THEN 0 ELSE 1 END,
			CASE state WHEN 'enabled' THEN 0 WHEN 'disabled' THEN 1 ELSE 2 END,
			updated_at DESC, client_key
		LIMIT 1`
	recordForgeSQL = `
		INSERT INTO forge_installations (` + forgeRecordColumns + `)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
		ON CONFLICT (installation_id) DO UPDATE SET
			app_id = excluded.app_id,
			cloud_id = CASE WHEN excluded.cloud_id <> '' THEN excluded.cloud_id ELSE forge_installations.cloud_id END,
			client_key = excluded.client_key,
			api_base_url = excluded.api_base_url,
			site_url = CASE WHEN excluded.site_url <> '' THEN excluded.site_url ELSE forge_installations.site_url END,
			product = excluded.product,
			environment_type = excluded.environment_type,
			environment_id = excluded.environment_id,
			last_seen = excluded.last_seen
		RETURNING ` + forgeColumns
	forgeKeysOfSiteSQL = `
		SELECT DISTINCT client_key FROM forge_installations
		WHERE ((installation_id = $1 AND $1 <> '') OR (cloud_id = $2 AND $2 <> ''))
			AND client_key >= $3 AND client_key < $4`
	adoptDataSQL = `
		INSERT INTO app_data (client_key, key, value, updated_at)
		SELECT $1, key, value, updated_at FROM app_data WHERE client_key = $2
		ON CONFLICT (client_key, key) DO NOTHING`
	dropAdoptedSQL = `
		DELETE FROM app_data f USING app_data c
		WHERE f.client_key = $2 AND c.client_key = $1 AND c.key = f.key AND c.value = f.value`
	relinkForgeSQL  = `UPDATE forge_installations SET client_key = $1 WHERE client_key = $2 RETURNING ` + forgeColumns
	siteOfTenantSQL = `SELECT installation_id, cloud_id FROM installations WHERE client_key = $1`
)

func scanForge(row pgx.Row) (*tenon.ForgeInstallation, error) {
	var in tenon.ForgeInstallation
	var state string
	var installed, upgraded, uninstalled *time.Time
	err := row.Scan(&in.InstallationID, &in.AppID, &in.CloudID, &in.ClientKey, &in.APIBaseURL, &in.SiteURL,
		&in.Product, &in.Environment.Type, &in.Environment.ID, &in.FirstSeen, &in.LastSeen,
		&state, &in.AppVersion, &installed, &upgraded, &uninstalled)
	if err != nil {
		return nil, err
	}
	in.State = tenon.ForgeState(state)
	in.FirstSeen, in.LastSeen = in.FirstSeen.UTC(), in.LastSeen.UTC()
	for _, t := range []struct {
		src *time.Time
		dst *time.Time
	}{{installed, &in.InstalledAt}, {upgraded, &in.UpgradedAt}, {uninstalled, &in.UninstalledAt}} {
		if t.src != nil {
			*t.dst = t.src.UTC()
		}
	}
	return &in, nil
}

// lockSite serialises, per site, everything that decides or changes the
// links of Forge installations, so that a Forge call and a Connect install
// of the same site on two nodes cannot both decide on stale reads.
func lockSite(ctx context.Context, tx pgx.Tx, installationID, cloudID string) error {
	h := fnv.New64a()
	site := cloudID
	if site == "" {
		site = installationID
	}
	h.Write([]byte("tenon forge site\x00" + site))
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(h.Sum64()))
	return err
}

// RecordForgeInstallation implements tenon.ForgeStore.
func (s *Store) RecordForgeInstallation(ctx context.Context, in *tenon.ForgeInstallation) error {
	if err := storeutil.ValidateForgeInstallation(in); err != nil {
		return err
	}
	var stored *tenon.ForgeInstallation
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		stored, err = s.recordForge(ctx, tx, in)
		return err
	})
	if err != nil {
		return s.fail("record forge installation", err)
	}
	*in = *stored
	return nil
}

// recordForge is RecordForgeInstallation inside tx, with the site locked;
// it returns the stored row.
func (s *Store) recordForge(ctx context.Context, tx pgx.Tx, in *tenon.ForgeInstallation) (*tenon.ForgeInstallation, error) {
	now := storeutil.Now(s.now)
	if err := lockSite(ctx, tx, in.InstallationID, in.CloudID); err != nil {
		return nil, err
	}
	var current string
	err := tx.QueryRow(ctx, currentForgeSQL, in.InstallationID).Scan(&current)
	exists := err == nil
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	}
	key := current
	if !exists || tenon.IsForgeTenantKey(current) {
		var connect string
		err := tx.QueryRow(ctx, connectTenantSQL, in.InstallationID, in.CloudID).Scan(&connect)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
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
	return scanForge(tx.QueryRow(ctx, recordForgeSQL,
		in.InstallationID, in.AppID, in.CloudID, key, in.APIBaseURL, in.SiteURL, in.Product,
		in.Environment.Type, in.Environment.ID, now))
}

// linkForge points the Forge-only installations of a site at the Connect
// tenant connectKey and moves their data; see tenon.ForgeStore.
func linkForge(ctx context.Context, tx pgx.Tx, connectKey, installationID, cloudID string) ([]*tenon.ForgeInstallation, error) {
	rows, err := tx.Query(ctx, forgeKeysOfSiteSQL, installationID, cloudID, forgeKeyLow, forgeKeyHigh)
	if err != nil {
		return nil, err
	}
	forgeKeys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	var linked []*tenon.ForgeInstallation
	for _, fk := range forgeKeys {
		if _, err := tx.Exec(ctx, adoptDataSQL, connectKey, fk); err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, dropAdoptedSQL, connectKey, fk); err != nil {
			return nil, err
		}
		rows, err := tx.Query(ctx, relinkForgeSQL, connectKey, fk)
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
	in, err := scanForge(s.pool.QueryRow(ctx, getForgeSQL, installationID))
	if errors.Is(err, pgx.ErrNoRows) {
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
	rows, err := s.pool.Query(ctx, listForgeSQL, clientKey)
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
	var linked []*tenon.ForgeInstallation
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var installationID, cloudID string
		err := tx.QueryRow(ctx, siteOfTenantSQL, clientKey).Scan(&installationID, &cloudID)
		if errors.Is(err, pgx.ErrNoRows) {
			return storeutil.NotFound(clientKey)
		}
		if err != nil {
			return err
		}
		if err := lockSite(ctx, tx, installationID, cloudID); err != nil {
			return err
		}
		linked, err = linkForge(ctx, tx, clientKey, installationID, cloudID)
		return err
	})
	if err != nil {
		var te *tenon.Error
		if errors.As(err, &te) {
			return nil, err
		}
		return nil, s.fail("link forge installations", err)
	}
	return linked, nil
}

var _ tenon.ForgeLifecycleStore = (*Store)(nil)

const (
	forgeStateSQL     = `SELECT state FROM forge_installations WHERE installation_id = $1 FOR UPDATE`
	forgeLifecycleSQL = `UPDATE forge_installations SET state = 'active', app_version = $2,
		installed_at = $3, upgraded_at = $4 WHERE installation_id = $1`
	supersedeSQL = `
		UPDATE installations SET state = 'uninstalled', updated_at = $3, uninstalled_at = $3, superseded_by = $1
		WHERE ((installation_id = $1 AND $1 <> '') OR (cloud_id = $2 AND $2 <> '')) AND state <> 'uninstalled'
		RETURNING client_key`
	forgeUninstallSQL = `UPDATE forge_installations SET state = 'uninstalled', uninstalled_at = $2
		WHERE installation_id = $1 AND state <> 'uninstalled'`
	activeForgeSQL = `SELECT ` + forgeColumns + ` FROM forge_installations
		WHERE state = 'active' AND installation_id > $1 ORDER BY installation_id LIMIT $2`
)

// ForgeInstalled implements tenon.ForgeLifecycleStore, in one transaction
// with the record and the links it makes, the site locked.
func (s *Store) ForgeInstalled(ctx context.Context, in *tenon.ForgeInstallation, upgrade, supersede bool, at time.Time) (bool, []string, error) {
	if err := storeutil.ValidateForgeInstallation(in); err != nil {
		return false, nil, err
	}
	var (
		stored     *tenon.ForgeInstallation
		changed    bool
		superseded []string
		conflict   bool
	)
	version := in.AppVersion
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		changed, superseded, conflict = false, nil, false
		if err := lockSite(ctx, tx, in.InstallationID, in.CloudID); err != nil {
			return err
		}
		var state string
		err := tx.QueryRow(ctx, forgeStateSQL, in.InstallationID).Scan(&state)
		switch {
		case err == nil && tenon.ForgeState(state) == tenon.ForgeUninstalled:
			conflict = true
			return nil
		case err != nil && !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		if stored, err = s.recordForge(ctx, tx, in); err != nil {
			return err
		}
		var upd storeutil.ForgeLifecycle
		changed, upd = storeutil.ForgeLifecycleChange(stored, version, upgrade, at)
		if changed {
			if _, err := tx.Exec(ctx, forgeLifecycleSQL, in.InstallationID, upd.AppVersion,
				nullTime(upd.InstalledAt), nullTime(upd.UpgradedAt)); err != nil {
				return err
			}
			stored.AppVersion, stored.InstalledAt, stored.UpgradedAt = upd.AppVersion, upd.InstalledAt, upd.UpgradedAt
			stored.State = tenon.ForgeActive
		}
		if supersede {
			rows, err := tx.Query(ctx, supersedeSQL, stored.InstallationID, stored.CloudID, at.UTC())
			if err != nil {
				return err
			}
			if superseded, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, nil, s.fail("record forge lifecycle", err)
	}
	if conflict {
		return false, nil, storeutil.ForgeUninstalledConflict(in.InstallationID)
	}
	*in = *stored
	return changed || len(superseded) > 0, superseded, nil
}

// ForgeUninstalled implements tenon.ForgeLifecycleStore.
func (s *Store) ForgeUninstalled(ctx context.Context, installationID string, at time.Time) (bool, error) {
	if !storeutil.ValidClientKey(installationID) {
		return false, storeutil.ForgeNotFound(installationID)
	}
	tag, err := s.pool.Exec(ctx, forgeUninstallSQL, installationID, at.UTC())
	if err != nil {
		return false, s.fail("uninstall forge installation", err)
	}
	if tag.RowsAffected() > 0 {
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
	rows, err := s.pool.Query(ctx, activeForgeSQL, after, limit)
	if err != nil {
		return nil, s.fail("list active forge installations", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*tenon.ForgeInstallation, error) { return scanForge(r) })
	if err != nil {
		return nil, s.fail("list active forge installations", err)
	}
	return list, nil
}

// nullTime is t as stored, or NULL for the zero time.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
