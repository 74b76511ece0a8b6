package postgres

import (
	"context"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/storeutil"
)

var _ tenon.InstallationImporter = (*Store)(nil)

// importInsertSQL writes a record where none is stored; importReplaceSQL
// replaces the stored one only while its updated_at is the expected one.
// Each is one statement, so the check and the write are atomic.
const (
	importColumns = `(client_key, app_key, shared_secret, base_url, display_url, product_type,
		oauth_client_id, installation_id, cloud_id, state, payload, installed_at, updated_at, uninstalled_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`
	importInsertSQL  = `INSERT INTO installations ` + importColumns + ` ON CONFLICT (client_key) DO NOTHING`
	importReplaceSQL = `INSERT INTO installations ` + importColumns + `
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
			uninstalled_at = excluded.uninstalled_at
		WHERE installations.updated_at = $15`
)

// ImportInstallation implements tenon.InstallationImporter.
func (s *Store) ImportInstallation(ctx context.Context, in *tenon.Installation, expect time.Time) error {
	if err := storeutil.PrepareImport(in, storeutil.Now(s.now)); err != nil {
		return err
	}
	sealed, err := storeutil.Seal(s.box, in)
	if err != nil {
		return s.fail("import installation", err)
	}
	var uninstalled *time.Time
	if in.State == tenon.StateUninstalled {
		uninstalled = &in.UninstalledAt
	}
	args := []any{in.ClientKey, in.AppKey, sealed.SharedSecret, in.BaseURL, in.DisplayURL, in.ProductType,
		in.OAuthClientID, in.InstallationID, in.CloudID, string(in.State), sealed.Payload,
		in.InstalledAt, in.UpdatedAt, uninstalled}
	query := importInsertSQL
	if !expect.IsZero() {
		query = importReplaceSQL
		args = append(args, expect.UTC())
	}
	tag, err := s.pool.Exec(ctx, query, args...)
	if err != nil {
		return s.fail("import installation", err)
	}
	if tag.RowsAffected() != 1 {
		return storeutil.ImportConflict(in.ClientKey)
	}
	return nil
}
