package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/storeutil"
)

var _ tenon.ValueUpdater = (*Store)(nil)

// UpdateValue implements tenon.ValueUpdater. The writer's IMMEDIATE
// transaction is the order: SQLite has one writer, so the read and the
// write of one update see no other write in between.
func (s *Store) UpdateValue(ctx context.Context, clientKey, key string, fn func(old json.RawMessage) (json.RawMessage, error)) error {
	if err := tenon.ValidateKey(key); err != nil {
		return err
	}
	if !storeutil.ValidClientKey(clientKey) {
		return tenon.Errorf(tenon.EINVALID, "The clientKey is not valid.")
	}
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return s.fail("update value", err)
	}
	defer tx.Rollback()
	var old []byte
	err = tx.QueryRowContext(ctx, `SELECT value FROM app_data WHERE client_key = ? AND key = ?`, clientKey, key).Scan(&old)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return s.fail("update value", err)
	}
	var oldRaw json.RawMessage
	if old != nil {
		oldRaw = json.RawMessage(old)
	}
	v, err := fn(oldRaw)
	switch {
	case errors.Is(err, tenon.ErrUnchanged):
		return nil
	case err != nil:
		return err
	case v == nil:
		_, err = tx.StmtContext(ctx, s.deleteValue).ExecContext(ctx, clientKey, key)
	default:
		if err := tenon.ValidateValue(v); err != nil {
			return err
		}
		_, err = tx.StmtContext(ctx, s.putValue).ExecContext(ctx, clientKey, key, []byte(v), formatTime(storeutil.Now(s.now)))
	}
	if err != nil {
		return s.fail("update value", err)
	}
	if err := tx.Commit(); err != nil {
		return s.fail("update value", err)
	}
	return nil
}
