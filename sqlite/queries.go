package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/storeutil"
)

// timeFormat is fixed-width UTC so text order is time order.
const timeFormat = "2006-01-02T15:04:05.000000Z"

const installationColumns = `client_key, app_key, shared_secret, base_url, display_url, product_type,
	oauth_client_id, installation_id, cloud_id, state, payload, installed_at, updated_at, uninstalled_at, superseded_by`

// The point reads run on the lookup connections (lookup.go).
const (
	getInstallationSQL = `SELECT ` + installationColumns + ` FROM installations WHERE client_key = ?`
	getValueSQL        = `SELECT value FROM app_data WHERE client_key = ? AND key = ?`
)

func (s *Store) prepare(ctx context.Context) error {
	stmts := []struct {
		dst   **sql.Stmt
		db    *sql.DB
		query string
	}{
		{&s.listInstallations, s.reader, `SELECT ` + installationColumns + ` FROM installations ORDER BY client_key`},
		{&s.listInstallationsBy, s.reader, `SELECT ` + installationColumns + ` FROM installations WHERE state = ? ORDER BY client_key`},
		// Whether a Connect tenant has Forge-only installations to link,
		// asked after every install (forge.go).
		{&s.forgePending, s.reader, `
			SELECT EXISTS (SELECT 1 FROM forge_installations f
				WHERE ((f.installation_id = i.installation_id AND i.installation_id <> '')
					OR (f.cloud_id = i.cloud_id AND i.cloud_id <> ''))
					AND f.client_key >= ? AND f.client_key < ?)
			FROM installations i WHERE i.client_key = ?`},
		{&s.saveInstallation, s.writer, `
			INSERT INTO installations (client_key, app_key, shared_secret, base_url, display_url, product_type,
				oauth_client_id, installation_id, cloud_id, state, payload, installed_at, updated_at, uninstalled_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'enabled', ?, ?, ?, NULL)
			ON CONFLICT (client_key) DO UPDATE SET
				app_key = excluded.app_key,
				shared_secret = excluded.shared_secret,
				base_url = excluded.base_url,
				display_url = excluded.display_url,
				product_type = excluded.product_type,
				oauth_client_id = excluded.oauth_client_id,
				installation_id = excluded.installation_id,
				cloud_id = excluded.cloud_id,
				-- An upgrade must not re-enable what an admin disabled;
				-- a reinstall after an uninstall starts afresh.
				state = CASE WHEN installations.state = 'disabled' THEN 'disabled' ELSE 'enabled' END,
				payload = excluded.payload,
				updated_at = excluded.updated_at,
				uninstalled_at = NULL,
				superseded_by = ''
			RETURNING state, installed_at, updated_at`},
		{&s.lockedInstallation, s.writer, `SELECT ` + installationColumns + ` FROM installations WHERE client_key = ?`},
		{&s.updateState, s.writer, `UPDATE installations SET state = ?, updated_at = ?, uninstalled_at = ? WHERE client_key = ?`},
		{&s.putValue, s.writer, `
			INSERT INTO app_data (client_key, key, value, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (client_key, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`},
		{&s.deleteValue, s.writer, `DELETE FROM app_data WHERE client_key = ? AND key = ?`},
		{&s.deleteTenantData, s.writer, `DELETE FROM app_data WHERE client_key = ?`},
	}
	for i := range s.listValues {
		stmts = append(stmts, struct {
			dst   **sql.Stmt
			db    *sql.DB
			query string
		}{&s.listValues[i], s.reader, listValuesQuery(i&1 != 0, i&2 != 0)})
	}
	for _, st := range stmts {
		var err error
		if *st.dst, err = st.db.PrepareContext(ctx, st.query); err != nil {
			return fmt.Errorf("sqlite: prepare %q: %w", st.query, err)
		}
	}
	return nil
}

// listValuesQuery is one of the four shapes of a key range; each is its own
// statement so SQLite seeks the primary key straight to the first key.
func listValuesQuery(strict, upper bool) string {
	q := `SELECT key, value FROM app_data WHERE client_key = ? AND key >= ?`
	if strict {
		q = `SELECT key, value FROM app_data WHERE client_key = ? AND key > ?`
	}
	if upper {
		q += ` AND key < ?`
	}
	return q + ` ORDER BY key LIMIT ?`
}

type scanner interface{ Scan(dest ...any) error }

// scanInstallation reads a row of installationColumns and opens its secrets.
func (s *Store) scanInstallation(row scanner) (*tenon.Installation, error) {
	var (
		in                 tenon.Installation
		sealed             storeutil.Sealed
		state              string
		installed, updated string
		uninstalled        sql.NullString
	)
	err := row.Scan(&in.ClientKey, &in.AppKey, &sealed.SharedSecret, &in.BaseURL, &in.DisplayURL,
		&in.ProductType, &in.OAuthClientID, &in.InstallationID, &in.CloudID, &state, &sealed.Payload,
		&installed, &updated, &uninstalled, &in.SupersededBy)
	if err != nil {
		return nil, err
	}
	in.State = tenon.State(state)
	if in.InstalledAt, err = parseTime(installed); err != nil {
		return nil, err
	}
	if in.UpdatedAt, err = parseTime(updated); err != nil {
		return nil, err
	}
	if uninstalled.Valid {
		if in.UninstalledAt, err = parseTime(uninstalled.String); err != nil {
			return nil, err
		}
	}
	if err := storeutil.Open(s.box, sealed, &in); err != nil {
		return nil, err
	}
	return &in, nil
}

func parseTime(v string) (time.Time, error) {
	t, err := time.Parse(timeFormat, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad timestamp %q: %w", v, err)
	}
	return t, nil
}

func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

// Installation implements tenon.InstallationStore.
func (s *Store) Installation(ctx context.Context, clientKey string) (*tenon.Installation, error) {
	if !storeutil.ValidClientKey(clientKey) {
		return nil, storeutil.NotFound(clientKey)
	}
	var in *tenon.Installation
	found, err := s.lookupInstallation(ctx, clientKey, func(row scanner) (err error) {
		in, err = s.scanInstallation(row)
		return err
	})
	if err != nil {
		return nil, s.fail("get installation", err)
	}
	if !found {
		return nil, storeutil.NotFound(clientKey)
	}
	return in, nil
}

// Installations implements tenon.InstallationStore.
func (s *Store) Installations(ctx context.Context, state tenon.State) ([]*tenon.Installation, error) {
	var rows *sql.Rows
	var err error
	if state == "" {
		rows, err = s.listInstallations.QueryContext(ctx)
	} else {
		if err := storeutil.ValidateState(state); err != nil {
			return nil, err
		}
		rows, err = s.listInstallationsBy.QueryContext(ctx, string(state))
	}
	if err != nil {
		return nil, s.fail("list installations", err)
	}
	defer rows.Close()
	var list []*tenon.Installation
	for rows.Next() {
		in, err := s.scanInstallation(rows)
		if err != nil {
			return nil, s.fail("list installations", err)
		}
		list = append(list, in)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("list installations", err)
	}
	return list, nil
}

// SaveInstallation implements tenon.InstallationStore. The installation
// is committed with a full fsync before SaveInstallation returns, in a
// commit shared with the other durable writes under way (groupcommit.go):
// a burst of installs costs one fsync per batch. Once queued, the save
// waits for its commit even if ctx ends.
func (s *Store) SaveInstallation(ctx context.Context, in *tenon.Installation) error {
	if err := storeutil.ValidateInstallation(in); err != nil {
		return err
	}
	sealed, err := storeutil.Seal(s.box, in)
	if err != nil {
		return s.fail("save installation", err)
	}
	if err := ctx.Err(); err != nil {
		return s.fail("save installation", err)
	}
	now := formatTime(storeutil.Now(s.now))
	var state, installed, updated string
	err = s.commits.do(func(ctx context.Context, tx *sql.Tx) error {
		return tx.StmtContext(ctx, s.saveInstallation).QueryRowContext(ctx,
			in.ClientKey, in.AppKey, sealed.SharedSecret, in.BaseURL, in.DisplayURL, in.ProductType,
			in.OAuthClientID, in.InstallationID, in.CloudID, sealed.Payload, now, now,
		).Scan(&state, &installed, &updated)
	})
	if err != nil {
		return s.fail("save installation", err)
	}
	in.State = tenon.State(state)
	if in.InstalledAt, err = parseTime(installed); err != nil {
		return s.fail("save installation", err)
	}
	if in.UpdatedAt, err = parseTime(updated); err != nil {
		return s.fail("save installation", err)
	}
	in.UninstalledAt = time.Time{}
	return nil
}

// SetState implements tenon.InstallationStore. Like SaveInstallation it
// shares commits with the other durable writes under way.
func (s *Store) SetState(ctx context.Context, clientKey string, state tenon.State) (*tenon.Installation, error) {
	if err := storeutil.ValidateState(state); err != nil {
		return nil, err
	}
	if !storeutil.ValidClientKey(clientKey) {
		return nil, storeutil.NotFound(clientKey)
	}
	if err := ctx.Err(); err != nil {
		return nil, s.fail("set state", err)
	}
	// The read and the write share one IMMEDIATE transaction, so no other
	// write can slip between the check of the current state and the update.
	// A refused change is the call's answer, not a failure of the batch.
	var (
		in      *tenon.Installation
		refusal error
	)
	err := s.commits.do(func(ctx context.Context, tx *sql.Tx) error {
		var err error
		in, refusal = nil, nil
		in, err = s.scanInstallation(tx.StmtContext(ctx, s.lockedInstallation).QueryRowContext(ctx, clientKey))
		if errors.Is(err, sql.ErrNoRows) {
			in, refusal = nil, storeutil.NotFound(clientKey)
			return nil
		}
		if err != nil {
			return err
		}
		changed, err := storeutil.Transition(in.State, state)
		if err != nil || !changed {
			refusal = err
			return nil
		}
		now := storeutil.Now(s.now)
		in.State, in.UpdatedAt, in.UninstalledAt = state, now, time.Time{}
		var uninstalledAt sql.NullString
		if state == tenon.StateUninstalled {
			in.UninstalledAt = now
			uninstalledAt = sql.NullString{String: formatTime(now), Valid: true}
		}
		_, err = tx.StmtContext(ctx, s.updateState).ExecContext(ctx, string(state), formatTime(now), uninstalledAt, clientKey)
		return err
	})
	if err != nil {
		return nil, s.fail("set state", err)
	}
	return nilIfErr(in, refusal)
}

func nilIfErr(in *tenon.Installation, err error) (*tenon.Installation, error) {
	if err != nil {
		return nil, err
	}
	return in, nil
}

// GetValue implements tenon.DataStore.
func (s *Store) GetValue(ctx context.Context, clientKey, key string) (json.RawMessage, error) {
	if err := tenon.ValidateKey(key); err != nil {
		return nil, err
	}
	if !storeutil.ValidClientKey(clientKey) {
		return nil, storeutil.ValueNotFound(key)
	}
	v, found, err := s.lookupValue(ctx, clientKey, key)
	if err != nil {
		return nil, s.fail("get value", err)
	}
	if !found {
		return nil, storeutil.ValueNotFound(key)
	}
	return v, nil
}

// PutValue implements tenon.DataStore.
func (s *Store) PutValue(ctx context.Context, clientKey, key string, value json.RawMessage) error {
	if err := tenon.ValidateKey(key); err != nil {
		return err
	}
	if err := tenon.ValidateValue(value); err != nil {
		return err
	}
	if !storeutil.ValidClientKey(clientKey) {
		return tenon.Errorf(tenon.EINVALID, "The clientKey is not valid.")
	}
	if _, err := s.putValue.ExecContext(ctx, clientKey, key, []byte(value), formatTime(storeutil.Now(s.now))); err != nil {
		return s.fail("put value", err)
	}
	return nil
}

// DeleteValue implements tenon.DataStore.
func (s *Store) DeleteValue(ctx context.Context, clientKey, key string) error {
	if err := tenon.ValidateKey(key); err != nil {
		return err
	}
	if !storeutil.ValidClientKey(clientKey) {
		return nil // nothing can be stored under it
	}
	if _, err := s.deleteValue.ExecContext(ctx, clientKey, key); err != nil {
		return s.fail("delete value", err)
	}
	return nil
}

// ListValues implements tenon.DataStore.
func (s *Store) ListValues(ctx context.Context, clientKey, prefix, after string, limit int) ([]tenon.KeyValue, error) {
	r, err := storeutil.ListRange(prefix, after)
	if err != nil {
		return nil, err
	}
	if !storeutil.ValidClientKey(clientKey) {
		return nil, nil
	}
	args := []any{clientKey, r.Lower}
	i := 0
	if r.LowerStrict {
		i |= 1
	}
	if r.HasUpper {
		i |= 2
		args = append(args, r.Upper)
	}
	args = append(args, storeutil.ListLimit(limit))
	rows, err := s.listValues[i].QueryContext(ctx, args...)
	if err != nil {
		return nil, s.fail("list values", err)
	}
	defer rows.Close()
	var kvs []tenon.KeyValue
	for rows.Next() {
		var kv tenon.KeyValue
		var v []byte
		if err := rows.Scan(&kv.Key, &v); err != nil {
			return nil, s.fail("list values", err)
		}
		kv.Value = v
		kvs = append(kvs, kv)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("list values", err)
	}
	return kvs, nil
}

// DeleteTenantData implements tenon.DataStore.
func (s *Store) DeleteTenantData(ctx context.Context, clientKey string) error {
	if !storeutil.ValidClientKey(clientKey) {
		return nil
	}
	if _, err := s.deleteTenantData.ExecContext(ctx, clientKey); err != nil {
		return s.fail("delete tenant data", err)
	}
	return nil
}
