package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/storeutil"
)

var _ tenon.TokenCache = (*Store)(nil)

// Token implements tenon.TokenCache.
func (s *Store) Token(ctx context.Context, key string, now time.Time) (string, time.Time, error) {
	if err := storeutil.ValidateTokenKey(key); err != nil {
		return "", time.Time{}, err
	}
	var sealed, expires string
	err := s.reader.QueryRowContext(ctx,
		`SELECT token, expires_at FROM token_cache WHERE key = ? AND expires_at > ?`,
		key, formatTime(now),
	).Scan(&sealed, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return "", time.Time{}, storeutil.TokenNotFound()
	}
	if err != nil {
		return "", time.Time{}, s.fail("get token", err)
	}
	expiresAt, err := parseTime(expires)
	if err != nil {
		return "", time.Time{}, s.fail("get token", err)
	}
	token, err := storeutil.OpenToken(s.box, key, sealed)
	if err != nil {
		return "", time.Time{}, s.fail("get token", err)
	}
	return token, expiresAt, nil
}

// PutToken implements tenon.TokenCache.
func (s *Store) PutToken(ctx context.Context, key, token string, expiresAt time.Time) error {
	if err := storeutil.ValidatePutToken(key, token, expiresAt); err != nil {
		return err
	}
	sealed, err := storeutil.SealToken(s.box, key, token)
	if err != nil {
		return s.fail("put token", err)
	}
	_, err = s.writer.ExecContext(ctx, `
		INSERT INTO token_cache (key, token, expires_at, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at,
			updated_at = excluded.updated_at`,
		key, sealed, formatTime(expiresAt), formatTime(storeutil.Now(s.now)))
	if err != nil {
		return s.fail("put token", err)
	}
	return nil
}

// DeleteToken implements tenon.TokenCache.
func (s *Store) DeleteToken(ctx context.Context, key string) error {
	if err := storeutil.ValidateTokenKey(key); err != nil {
		return err
	}
	if _, err := s.writer.ExecContext(ctx, `DELETE FROM token_cache WHERE key = ?`, key); err != nil {
		return s.fail("delete token", err)
	}
	return nil
}

// PurgeTokens implements tenon.TokenCache.
func (s *Store) PurgeTokens(ctx context.Context, before time.Time) (int, error) {
	res, err := s.writer.ExecContext(ctx, `DELETE FROM token_cache WHERE expires_at < ?`, formatTime(before))
	if err != nil {
		return 0, s.fail("purge tokens", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, s.fail("purge tokens", err)
	}
	return int(n), nil
}
