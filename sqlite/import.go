package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/storeutil"
)

var _ tenon.InstallationImporter = (*Store)(nil)

// ImportInstallation implements tenon.InstallationImporter.
func (s *Store) ImportInstallation(ctx context.Context, in *tenon.Installation, expect time.Time) error {
	if err := storeutil.PrepareImport(in, storeutil.Now(s.now)); err != nil {
		return err
	}
	sealed, err := storeutil.Seal(s.box, in)
	if err != nil {
		return s.fail("import installation", err)
	}
	// The check of the stored record and the write share one IMMEDIATE
	// transaction, so a lifecycle callback cannot slip between them.
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return s.fail("import installation", err)
	}
	defer tx.Rollback()
	var updated string
	err = tx.QueryRowContext(ctx, `SELECT updated_at FROM installations WHERE client_key = ?`, in.ClientKey).Scan(&updated)
	var stored time.Time
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return s.fail("import installation", err)
	default:
		if stored, err = parseTime(updated); err != nil {
			return s.fail("import installation", err)
		}
	}
	if !stored.Equal(expect) {
		return storeutil.ImportConflict(in.ClientKey)
	}
	var uninstalled sql.NullString
	if in.State == tenon.StateUninstalled {
		uninstalled = sql.NullString{String: formatTime(in.UninstalledAt), Valid: true}
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO installations (client_key, app_key, shared_secret, base_url, display_url, product_type,
			oauth_client_id, installation_id, cloud_id, state, payload, installed_at, updated_at, uninstalled_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (client_key) DO UPDATE SET
			app_key = excluded.app_key,
			shared_secret = excluded.shared_secret,
			base_url = excluded.base_url,
			display_url = excluded.display_url,
			product_type = excluded.product_type,
			oauth_client_id = excluded.oauth_client_id,
			installation_id = excluded.installation_id,
			cloud_id = excluded.cloud_id,
			state = excluded.state,
			payload = excluded.payload,
			installed_at = excluded.installed_at,
			updated_at = excluded.updated_at,
			uninstalled_at = excluded.uninstalled_at`,
		in.ClientKey, in.AppKey, sealed.SharedSecret, in.BaseURL, in.DisplayURL, in.ProductType,
		in.OAuthClientID, in.InstallationID, in.CloudID, string(in.State), sealed.Payload,
		formatTime(in.InstalledAt), formatTime(in.UpdatedAt), uninstalled)
	if err != nil {
		return s.fail("import installation", err)
	}
	if err := tx.Commit(); err != nil {
		return s.fail("import installation", err)
	}
	return nil
}
