package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/storeutil"
)

var (
	_ tenon.KVStore = (*Store)(nil)
	_ tenon.Locker  = (*Store)(nil)
)

// The KV statements are not prepared at Open: operational state is read
// and written a few times a day, not per request.

// PutKV implements tenon.KVStore. The value is sealed with the SecretBox.
func (s *Store) PutKV(ctx context.Context, key string, value []byte) error {
	if err := storeutil.ValidateKVKey(key); err != nil {
		return err
	}
	if err := storeutil.ValidateKVValue(value); err != nil {
		return err
	}
	sealed, err := storeutil.SealKV(s.box, key, value)
	if err != nil {
		return s.fail("put kv", err)
	}
	_, err = s.writer.ExecContext(ctx, `
		INSERT INTO kv (key, value, size, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, size = excluded.size, updated_at = excluded.updated_at`,
		key, sealed, len(value), formatTime(storeutil.Now(s.now)))
	if err != nil {
		return s.fail("put kv", err)
	}
	return nil
}

// GetKV implements tenon.KVStore.
func (s *Store) GetKV(ctx context.Context, key string) ([]byte, tenon.KVInfo, error) {
	if err := storeutil.ValidateKVKey(key); err != nil {
		return nil, tenon.KVInfo{}, err
	}
	var sealed, updated string
	info := tenon.KVInfo{Key: key}
	err := s.reader.QueryRowContext(ctx, `SELECT value, size, updated_at FROM kv WHERE key = ?`, key).
		Scan(&sealed, &info.Size, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tenon.KVInfo{}, storeutil.KVNotFound(key)
	}
	if err != nil {
		return nil, tenon.KVInfo{}, s.fail("get kv", err)
	}
	if info.Modified, err = parseTime(updated); err != nil {
		return nil, tenon.KVInfo{}, s.fail("get kv", err)
	}
	value, err := storeutil.OpenKV(s.box, key, sealed)
	if err != nil {
		return nil, tenon.KVInfo{}, s.fail("get kv", err)
	}
	return value, info, nil
}

// StatKV implements tenon.KVStore.
func (s *Store) StatKV(ctx context.Context, key string) (tenon.KVInfo, error) {
	if err := storeutil.ValidateKVKey(key); err != nil {
		return tenon.KVInfo{}, err
	}
	var updated string
	info := tenon.KVInfo{Key: key}
	err := s.reader.QueryRowContext(ctx, `SELECT size, updated_at FROM kv WHERE key = ?`, key).Scan(&info.Size, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return tenon.KVInfo{}, storeutil.KVNotFound(key)
	}
	if err != nil {
		return tenon.KVInfo{}, s.fail("stat kv", err)
	}
	if info.Modified, err = parseTime(updated); err != nil {
		return tenon.KVInfo{}, s.fail("stat kv", err)
	}
	return info, nil
}

// DeleteKV implements tenon.KVStore.
func (s *Store) DeleteKV(ctx context.Context, key string) error {
	if err := storeutil.ValidateKVKey(key); err != nil {
		return err
	}
	if _, err := s.writer.ExecContext(ctx, `DELETE FROM kv WHERE key = ?`, key); err != nil {
		return s.fail("delete kv", err)
	}
	return nil
}

// DeleteKVPrefix implements tenon.KVStore.
func (s *Store) DeleteKVPrefix(ctx context.Context, prefix string) (int, error) {
	if prefix == "" {
		return 0, tenon.Errorf(tenon.EINVALID, "The prefix is empty.")
	}
	r, err := storeutil.KVRange(prefix, "")
	if err != nil {
		return 0, err
	}
	q, args := `DELETE FROM kv WHERE key >= ?`, []any{r.Lower}
	if r.HasUpper {
		q, args = q+` AND key < ?`, append(args, r.Upper)
	}
	res, err := s.writer.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, s.fail("delete kv prefix", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.fail("delete kv prefix", err)
	}
	return int(n), nil
}

// ListKV implements tenon.KVStore.
func (s *Store) ListKV(ctx context.Context, prefix, after string, limit int) ([]tenon.KVInfo, error) {
	r, err := storeutil.KVRange(prefix, after)
	if err != nil {
		return nil, err
	}
	q, args := `SELECT key, size, updated_at FROM kv WHERE key >= ?`, []any{r.Lower}
	if r.LowerStrict {
		q = `SELECT key, size, updated_at FROM kv WHERE key > ?`
	}
	if r.HasUpper {
		q, args = q+` AND key < ?`, append(args, r.Upper)
	}
	q, args = q+` ORDER BY key LIMIT ?`, append(args, storeutil.ListLimit(limit))
	rows, err := s.reader.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.fail("list kv", err)
	}
	defer rows.Close()
	var out []tenon.KVInfo
	for rows.Next() {
		var info tenon.KVInfo
		var updated string
		if err := rows.Scan(&info.Key, &info.Size, &updated); err != nil {
			return nil, s.fail("list kv", err)
		}
		if info.Modified, err = parseTime(updated); err != nil {
			return nil, s.fail("list kv", err)
		}
		out = append(out, info)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("list kv", err)
	}
	return out, nil
}

// TryLock implements tenon.Locker. One statement takes a free or expired
// lock or extends the caller's own; the single writer makes it atomic.
func (s *Store) TryLock(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	if err := storeutil.ValidateLock(name, owner); err != nil {
		return false, err
	}
	if err := storeutil.ValidateTTL(ttl); err != nil {
		return false, err
	}
	now := storeutil.Now(s.now)
	res, err := s.writer.ExecContext(ctx, `
		INSERT INTO kv_locks (name, owner, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
		WHERE kv_locks.owner = excluded.owner OR kv_locks.expires_at <= ?`,
		name, owner, formatTime(now.Add(ttl)), formatTime(now))
	if err != nil {
		return false, s.fail("try lock", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, s.fail("try lock", err)
	}
	return n == 1, nil
}

// Unlock implements tenon.Locker.
func (s *Store) Unlock(ctx context.Context, name, owner string) error {
	if err := storeutil.ValidateLock(name, owner); err != nil {
		return err
	}
	if _, err := s.writer.ExecContext(ctx, `DELETE FROM kv_locks WHERE name = ? AND owner = ?`, name, owner); err != nil {
		return s.fail("unlock", err)
	}
	return nil
}
