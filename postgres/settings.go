package postgres

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/storeutil"
)

var (
	_ tenon.SettingsStore = (*Store)(nil)
	// The server looks for this method to hear of setting changes at once.
	_ interface {
		WatchSettings(ctx context.Context, fn func(name string)) error
	} = (*Store)(nil)
)

// Setting implements tenon.SettingsStore.
func (s *Store) Setting(ctx context.Context, name string) (json.RawMessage, error) {
	if tenon.ValidateSettingName(name) != nil {
		return nil, tenon.Errorf(tenon.ENOTFOUND, "No such setting.")
	}
	var v []byte
	err := s.pool.QueryRow(ctx, `SELECT value FROM settings WHERE name = $1`, name).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tenon.Errorf(tenon.ENOTFOUND, "No setting %q.", name)
	}
	if err != nil {
		return nil, s.fail("get setting", err)
	}
	return v, nil
}

// PutSetting implements tenon.SettingsStore.
func (s *Store) PutSetting(ctx context.Context, name string, value json.RawMessage) error {
	if err := tenon.ValidateSettingName(name); err != nil {
		return err
	}
	if err := tenon.ValidateSettingValue(value); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		name, []byte(value), storeutil.Now(s.now))
	if err != nil {
		return s.fail("put setting", err)
	}
	return nil
}

// DeleteSetting implements tenon.SettingsStore.
func (s *Store) DeleteSetting(ctx context.Context, name string) error {
	if err := tenon.ValidateSettingName(name); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM settings WHERE name = $1`, name); err != nil {
		return s.fail("delete setting", err)
	}
	return nil
}

// ListSettings implements tenon.SettingsStore.
func (s *Store) ListSettings(ctx context.Context, prefix string) ([]tenon.KeyValue, error) {
	if len(prefix) > tenon.MaxSettingNameLength || !storeutil.ValidText(prefix) {
		return nil, tenon.Errorf(tenon.EINVALID, "The prefix must be at most %d bytes of UTF-8 without NUL.", tenon.MaxSettingNameLength)
	}
	var rows pgx.Rows
	var err error
	if upper, ok := storeutil.PrefixEnd(prefix); ok {
		rows, err = s.pool.Query(ctx, `SELECT name, value FROM settings WHERE name >= $1 AND name < $2 ORDER BY name`, prefix, upper)
	} else {
		rows, err = s.pool.Query(ctx, `SELECT name, value FROM settings WHERE name >= $1 ORDER BY name`, prefix)
	}
	if err != nil {
		return nil, s.fail("list settings", err)
	}
	defer rows.Close()
	var list []tenon.KeyValue
	for rows.Next() {
		var kv tenon.KeyValue
		var v []byte
		if err := rows.Scan(&kv.Key, &v); err != nil {
			return nil, s.fail("list settings", err)
		}
		kv.Value = v
		list = append(list, kv)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("list settings", err)
	}
	return list, nil
}

// WatchSettings calls fn with the name of every setting changed by any
// node (truncated to 200 bytes) until ctx ends. Like WatchInstallations it
// holds a connection of its own, returns nil when ctx ends, and any other
// return means changes may have been missed. Once it listens it calls
// fn("") once, since changes made before that were not heard.
func (s *Store) WatchSettings(ctx context.Context, fn func(name string)) error {
	// The channel name matches the trigger of migration 00006.
	sum := md5.Sum([]byte(s.schema))
	return s.listen(ctx, "tenon_settings_"+hex.EncodeToString(sum[:])[:8], fn)
}

// listen runs LISTEN on channel on a connection outside the pool and
// calls fn with every payload until ctx ends.
func (s *Store) listen(ctx context.Context, channel string, fn func(payload string)) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return s.fail("listen", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return s.fail("listen", err)
	}
	fn("")
	for {
		n, err := conn.WaitForNotification(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return s.fail("listen", err)
		}
		fn(n.Payload)
	}
}
