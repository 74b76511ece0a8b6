package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"

	"github.com/jackc/pgx/v5"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/storeutil"
)

var _ tenon.ValueUpdater = (*Store)(nil)

// UpdateValue implements tenon.ValueUpdater. A transaction-scoped advisory
// lock on (clientKey, key) orders the updates of one key on every node,
// also while the key does not exist yet (a row lock alone cannot hold a
// row that is missing); it is released by the commit.
func (s *Store) UpdateValue(ctx context.Context, clientKey, key string, fn func(old json.RawMessage) (json.RawMessage, error)) error {
	if err := tenon.ValidateKey(key); err != nil {
		return err
	}
	if !storeutil.ValidClientKey(clientKey) {
		return tenon.Errorf(tenon.EINVALID, "The clientKey is not valid.")
	}
	var fnErr error
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, valueLockID(clientKey, key)); err != nil {
			return err
		}
		var old []byte
		err := tx.QueryRow(ctx, getValueSQL, clientKey, key).Scan(&old)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		var oldRaw json.RawMessage
		if old != nil {
			oldRaw = json.RawMessage(old)
		}
		v, err := fn(oldRaw)
		switch {
		case err != nil:
			fnErr = err
			return err // rolls back
		case v == nil:
			_, err = tx.Exec(ctx, deleteValueSQL, clientKey, key)
		default:
			if err := tenon.ValidateValue(v); err != nil {
				fnErr = err
				return err
			}
			_, err = tx.Exec(ctx, putValueSQL, clientKey, key, []byte(v), storeutil.Now(s.now))
		}
		return err
	})
	switch {
	case errors.Is(fnErr, tenon.ErrUnchanged):
		return nil
	case fnErr != nil:
		return fnErr
	case err != nil:
		return s.fail("update value", err)
	}
	return nil
}

// valueLockID is the advisory lock of one tenant data key.
func valueLockID(clientKey, key string) int64 {
	h := fnv.New64a()
	h.Write([]byte("tenon value\x00" + clientKey + "\x00" + key))
	return int64(h.Sum64())
}
