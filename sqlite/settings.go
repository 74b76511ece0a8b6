package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/storeutil"
)

var _ tenon.SettingsStore = (*Store)(nil)

// Settings are read a few times a minute per process (the server caches
// them), so their statements are not prepared at Open.

// Setting implements tenon.SettingsStore.
func (s *Store) Setting(ctx context.Context, name string) (json.RawMessage, error) {
	if tenon.ValidateSettingName(name) != nil {
		return nil, tenon.Errorf(tenon.ENOTFOUND, "No such setting.")
	}
	var v []byte
	err := s.reader.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, settingNotFound(name)
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
	_, err := s.writer.ExecContext(ctx, `
		INSERT INTO settings (name, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		name, []byte(value), formatTime(storeutil.Now(s.now)))
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
	if _, err := s.writer.ExecContext(ctx, `DELETE FROM settings WHERE name = ?`, name); err != nil {
		return s.fail("delete setting", err)
	}
	return nil
}

// ListSettings implements tenon.SettingsStore.
func (s *Store) ListSettings(ctx context.Context, prefix string) ([]tenon.KeyValue, error) {
	if len(prefix) > tenon.MaxSettingNameLength || !storeutil.ValidText(prefix) {
		return nil, tenon.Errorf(tenon.EINVALID, "The prefix must be at most %d bytes of UTF-8 without NUL.", tenon.MaxSettingNameLength)
	}
	var rows *sql.Rows
	var err error
	if upper, ok := storeutil.PrefixEnd(prefix); ok {
		rows, err = s.reader.QueryContext(ctx, `SELECT name, value FROM settings WHERE name >= ? AND name < ? ORDER BY name`, prefix, upper)
	} else {
		rows, err = s.reader.QueryContext(ctx, `SELECT name, value FROM settings WHERE name >= ? ORDER BY name`, prefix)
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

func settingNotFound(name string) error {
	return tenon.Errorf(tenon.ENOTFOUND, "No setting %q.", name)
}
