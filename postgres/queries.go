package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/storeutil"
)

// pgx prepares and caches every statement per connection on first use, so
// the queries below are parsed and planned once per connection, not per call.

const installationColumns = `client_key, app_key, shared_secret, base_url, display_url, product_type,
	oauth_client_id, installation_id, cloud_id, state, payload, installed_at, updated_at, uninstalled_at, superseded_by`

const (
	getInstallationSQL   = `SELECT ` + installationColumns + ` FROM installations WHERE client_key = $1`
	lockInstallationSQL  = getInstallationSQL + ` FOR UPDATE`
	listInstallationsSQL = `SELECT ` + installationColumns + ` FROM installations ORDER BY client_key`
	listByStateSQL       = `SELECT ` + installationColumns + ` FROM installations WHERE state = $1 ORDER BY client_key`
	saveInstallationSQL  = `
		INSERT INTO installations (client_key, app_key, shared_secret, base_url, display_url, product_type,
			oauth_client_id, installation_id, cloud_id, state, payload, installed_at, updated_at, uninstalled_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'enabled', $10, $11, $11, NULL)
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
		RETURNING state, installed_at, updated_at`
	updateStateSQL = `UPDATE installations SET state = $2, updated_at = $3, uninstalled_at = $4 WHERE client_key = $1`
	getValueSQL    = `SELECT value FROM app_data WHERE client_key = $1 AND key = $2`
	putValueSQL    = `
		INSERT INTO app_data (client_key, key, value, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (client_key, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`
	deleteValueSQL      = `DELETE FROM app_data WHERE client_key = $1 AND key = $2`
	deleteTenantDataSQL = `DELETE FROM app_data WHERE client_key = $1`
)

// listValuesSQL holds the four shapes of a key range, indexed by
// strict | upper<<1. Separate statements rather than optional conditions
// keep every shape an index range scan, also in generic plans.
var listValuesSQL = [4]string{
	`SELECT key, value FROM app_data WHERE client_key = $1 AND key >= $2 ORDER BY key LIMIT $3`,
	`SELECT key, value FROM app_data WHERE client_key = $1 AND key > $2 ORDER BY key LIMIT $3`,
	`SELECT key, value FROM app_data WHERE client_key = $1 AND key >= $2 AND key < $4 ORDER BY key LIMIT $3`,
	`SELECT key, value FROM app_data WHERE client_key = $1 AND key > $2 AND key < $4 ORDER BY key LIMIT $3`,
}

// scanInstallation reads a row of installationColumns and opens its secrets.
func (s *Store) scanInstallation(row pgx.Row) (*tenon.Installation, error) {
	var (
		in          tenon.Installation
		sealed      storeutil.Sealed
		state       string
		uninstalled *time.Time
	)
	err := row.Scan(&in.ClientKey, &in.AppKey, &sealed.SharedSecret, &in.BaseURL, &in.DisplayURL,
		&in.ProductType, &in.OAuthClientID, &in.InstallationID, &in.CloudID, &state, &sealed.Payload,
		&in.InstalledAt, &in.UpdatedAt, &uninstalled, &in.SupersededBy)
	if err != nil {
		return nil, err
	}
	in.State = tenon.State(state)
	in.InstalledAt, in.UpdatedAt = in.InstalledAt.UTC(), in.UpdatedAt.UTC()
	if uninstalled != nil {
		in.UninstalledAt = uninstalled.UTC()
	}
	if err := storeutil.Open(s.box, sealed, &in); err != nil {
		return nil, err
	}
	return &in, nil
}

// Installation implements tenon.InstallationStore.
func (s *Store) Installation(ctx context.Context, clientKey string) (*tenon.Installation, error) {
	if !storeutil.ValidClientKey(clientKey) {
		return nil, storeutil.NotFound(clientKey)
	}
	var in *tenon.Installation
	err := s.idempotent(ctx, func() (err error) { // retry.go
		in, err = s.scanInstallation(s.pool.QueryRow(ctx, getInstallationSQL, clientKey))
		if errors.Is(err, pgx.ErrNoRows) {
			return storeutil.NotFound(clientKey)
		}
		if err != nil {
			return s.fail("get installation", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return in, nil
}

// Installations implements tenon.InstallationStore.
func (s *Store) Installations(ctx context.Context, state tenon.State) ([]*tenon.Installation, error) {
	var rows pgx.Rows
	var err error
	if state == "" {
		rows, err = s.pool.Query(ctx, listInstallationsSQL)
	} else {
		if err := storeutil.ValidateState(state); err != nil {
			return nil, err
		}
		rows, err = s.pool.Query(ctx, listByStateSQL, string(state))
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

// SaveInstallation implements tenon.InstallationStore. The trigger on the
// table notifies watchers in the same transaction.
func (s *Store) SaveInstallation(ctx context.Context, in *tenon.Installation) error {
	if err := storeutil.ValidateInstallation(in); err != nil {
		return err
	}
	sealed, err := storeutil.Seal(s.box, in)
	if err != nil {
		return s.fail("save installation", err)
	}
	var state string
	var installedAt, updatedAt time.Time
	err = s.pool.QueryRow(ctx, saveInstallationSQL,
		in.ClientKey, in.AppKey, sealed.SharedSecret, in.BaseURL, in.DisplayURL, in.ProductType,
		in.OAuthClientID, in.InstallationID, in.CloudID, sealed.Payload, storeutil.Now(s.now),
	).Scan(&state, &installedAt, &updatedAt)
	if err != nil {
		return s.fail("save installation", err)
	}
	in.State = tenon.State(state)
	in.InstalledAt, in.UpdatedAt, in.UninstalledAt = installedAt.UTC(), updatedAt.UTC(), time.Time{}
	return nil
}

// SetState implements tenon.InstallationStore.
func (s *Store) SetState(ctx context.Context, clientKey string, state tenon.State) (*tenon.Installation, error) {
	if err := storeutil.ValidateState(state); err != nil {
		return nil, err
	}
	if !storeutil.ValidClientKey(clientKey) {
		return nil, storeutil.NotFound(clientKey)
	}
	var in *tenon.Installation
	// FOR UPDATE makes concurrent SetState calls on one tenant take turns,
	// so each decides on the state the previous one committed.
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		in, err = s.scanInstallation(tx.QueryRow(ctx, lockInstallationSQL, clientKey))
		if errors.Is(err, pgx.ErrNoRows) {
			return storeutil.NotFound(clientKey)
		}
		if err != nil {
			return err
		}
		changed, err := storeutil.Transition(in.State, state)
		if err != nil || !changed {
			return err
		}
		now := storeutil.Now(s.now)
		in.State, in.UpdatedAt, in.UninstalledAt = state, now, time.Time{}
		var uninstalledAt *time.Time
		if state == tenon.StateUninstalled {
			in.UninstalledAt = now
			uninstalledAt = &now
		}
		_, err = tx.Exec(ctx, updateStateSQL, clientKey, string(state), now, uninstalledAt)
		return err
	})
	if err != nil {
		var te *tenon.Error
		if errors.As(err, &te) {
			return nil, err
		}
		return nil, s.fail("set state", err)
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
	var v []byte
	err := s.idempotent(ctx, func() error {
		err := s.pool.QueryRow(ctx, getValueSQL, clientKey, key).Scan(&v)
		if errors.Is(err, pgx.ErrNoRows) {
			return storeutil.ValueNotFound(key)
		}
		if err != nil {
			return s.fail("get value", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
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
	// []byte, not json.RawMessage: the column is bytea, stored verbatim.
	// Putting the same value twice is the same as once: safe to retry.
	return s.idempotent(ctx, func() error {
		if _, err := s.pool.Exec(ctx, putValueSQL, clientKey, key, []byte(value), storeutil.Now(s.now)); err != nil {
			return s.fail("put value", err)
		}
		return nil
	})
}

// DeleteValue implements tenon.DataStore.
func (s *Store) DeleteValue(ctx context.Context, clientKey, key string) error {
	if err := tenon.ValidateKey(key); err != nil {
		return err
	}
	if !storeutil.ValidClientKey(clientKey) {
		return nil // nothing can be stored under it
	}
	return s.idempotent(ctx, func() error {
		if _, err := s.pool.Exec(ctx, deleteValueSQL, clientKey, key); err != nil {
			return s.fail("delete value", err)
		}
		return nil
	})
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
	args := []any{clientKey, r.Lower, storeutil.ListLimit(limit)}
	i := 0
	if r.LowerStrict {
		i |= 1
	}
	if r.HasUpper {
		i |= 2
		args = append(args, r.Upper)
	}
	rows, err := s.pool.Query(ctx, listValuesSQL[i], args...)
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
	if _, err := s.pool.Exec(ctx, deleteTenantDataSQL, clientKey); err != nil {
		return s.fail("delete tenant data", err)
	}
	return nil
}
