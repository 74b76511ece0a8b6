package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/storeutil"
)

var (
	_ tenon.KVStore = (*Store)(nil)
	_ tenon.Locker  = (*Store)(nil)
)

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
	_, err = s.pool.Exec(ctx, `
		INSERT INTO kv (key, value, size, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, size = excluded.size, updated_at = excluded.updated_at`,
		key, sealed, int64(len(value)), storeutil.Now(s.now))
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
	var sealed string
	info := tenon.KVInfo{Key: key}
	err := s.pool.QueryRow(ctx, `SELECT value, size, updated_at FROM kv WHERE key = $1`, key).
		Scan(&sealed, &info.Size, &info.Modified)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tenon.KVInfo{}, storeutil.KVNotFound(key)
	}
	if err != nil {
		return nil, tenon.KVInfo{}, s.fail("get kv", err)
	}
	info.Modified = info.Modified.UTC()
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
	info := tenon.KVInfo{Key: key}
	err := s.pool.QueryRow(ctx, `SELECT size, updated_at FROM kv WHERE key = $1`, key).Scan(&info.Size, &info.Modified)
	if errors.Is(err, pgx.ErrNoRows) {
		return tenon.KVInfo{}, storeutil.KVNotFound(key)
	}
	if err != nil {
		return tenon.KVInfo{}, s.fail("stat kv", err)
	}
	info.Modified = info.Modified.UTC()
	return info, nil
}

// DeleteKV implements tenon.KVStore.
func (s *Store) DeleteKV(ctx context.Context, key string) error {
	if err := storeutil.ValidateKVKey(key); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM kv WHERE key = $1`, key); err != nil {
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
	q, args := `DELETE FROM kv WHERE key >= $1`, []any{r.Lower}
	if r.HasUpper {
		q, args = q+` AND key < $2`, append(args, r.Upper)
	}
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil {
		return 0, s.fail("delete kv prefix", err)
	}
	return int(tag.RowsAffected()), nil
}

// ListKV implements tenon.KVStore.
func (s *Store) ListKV(ctx context.Context, prefix, after string, limit int) ([]tenon.KVInfo, error) {
	r, err := storeutil.KVRange(prefix, after)
	if err != nil {
		return nil, err
	}
	op := ">="
	if r.LowerStrict {
		op = ">"
	}
	q, args := `SELECT key, size, updated_at FROM kv WHERE key `+op+` $1`, []any{r.Lower, storeutil.ListLimit(limit)}
	if r.HasUpper {
		q, args = q+` AND key < $3`, append(args, r.Upper)
	}
	rows, err := s.pool.Query(ctx, q+` ORDER BY key LIMIT $2`, args...)
	if err != nil {
		return nil, s.fail("list kv", err)
	}
	defer rows.Close()
	var out []tenon.KVInfo
	for rows.Next() {
		var info tenon.KVInfo
		if err := rows.Scan(&info.Key, &info.Size, &info.Modified); err != nil {
			return nil, s.fail("list kv", err)
		}
		info.Modified = info.Modified.UTC()
		out = append(out, info)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("list kv", err)
	}
	return out, nil
}

// TryLock implements tenon.Locker. The upsert takes a free or expired
// lock or extends the caller's own in one statement; concurrent callers
// serialize on the row, so exactly one of them wins a free lock.
func (s *Store) TryLock(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	if err := storeutil.ValidateLock(name, owner); err != nil {
		return false, err
	}
	if err := storeutil.ValidateTTL(ttl); err != nil {
		return false, err
	}
	now := storeutil.Now(s.now)
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO kv_locks (name, owner, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
		WHERE kv_locks.owner = excluded.owner OR kv_locks.expires_at <= $4`,
		name, owner, now.Add(ttl), now)
	if err != nil {
		return false, s.fail("try lock", err)
	}
	return tag.RowsAffected() == 1, nil
}

// Unlock implements tenon.Locker.
func (s *Store) Unlock(ctx context.Context, name, owner string) error {
	if err := storeutil.ValidateLock(name, owner); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM kv_locks WHERE name = $1 AND owner = $2`, name, owner); err != nil {
		return s.fail("unlock", err)
	}
	return nil
}
