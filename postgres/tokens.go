package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/storeutil"
)

var _ tenon.TokenCache = (*Store)(nil)

const (
	getTokenSQL = `SELECT token, expires_at FROM token_cache WHERE key = $1 AND expires_at > $2`
	putTokenSQL = `
		INSERT INTO token_cache (key, token, expires_at, updated_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (key) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at,
			updated_at = excluded.updated_at`
	deleteTokenSQL = `DELETE FROM token_cache WHERE key = $1`
	purgeTokensSQL = `DELETE FROM token_cache WHERE expires_at < $1`
)

// Token implements tenon.TokenCache.
func (s *Store) Token(ctx context.Context, key string, now time.Time) (string, time.Time, error) {
	if err := storeutil.ValidateTokenKey(key); err != nil {
		return "", time.Time{}, err
	}
	var sealed string
	var expiresAt time.Time
	err := s.pool.QueryRow(ctx, getTokenSQL, key, now.UTC().Truncate(time.Microsecond)).Scan(&sealed, &expiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", time.Time{}, storeutil.TokenNotFound()
	}
	if err != nil {
		return "", time.Time{}, s.fail("get token", err)
	}
	token, err := storeutil.OpenToken(s.box, key, sealed)
	if err != nil {
		return "", time.Time{}, s.fail("get token", err)
	}
	return token, expiresAt.UTC(), nil
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
	expires := expiresAt.UTC().Truncate(time.Microsecond)
	if _, err := s.pool.Exec(ctx, putTokenSQL, key, sealed, expires, storeutil.Now(s.now)); err != nil {
		return s.fail("put token", err)
	}
	return nil
}

// DeleteToken implements tenon.TokenCache.
func (s *Store) DeleteToken(ctx context.Context, key string) error {
	if err := storeutil.ValidateTokenKey(key); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, deleteTokenSQL, key); err != nil {
		return s.fail("delete token", err)
	}
	return nil
}

// PurgeTokens implements tenon.TokenCache.
func (s *Store) PurgeTokens(ctx context.Context, before time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, purgeTokensSQL, before.UTC().Truncate(time.Microsecond))
	if err != nil {
		return 0, s.fail("purge tokens", err)
	}
	return int(tag.RowsAffected()), nil
}
