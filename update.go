package tenon

import (
	"context"
	"encoding/json"
	"errors"
)

// ErrUnchanged, returned by the function of an update, stores nothing and
// makes the update succeed: the value was already as wanted.
var ErrUnchanged = errors.New("tenon: unchanged")

// ValueUpdater is an optional DataStore capability: a read-modify-write
// of one value that is atomic across every process and node sharing the
// store, so two nodes adding to one document cannot lose each other's
// change. Both of tenon's stores implement it.
type ValueUpdater interface {
	// UpdateValue calls fn with the value under key (nil when there is
	// none) while no other UpdateValue of the same key can run, and
	// stores what fn returns in the same transaction: a value to put,
	// nil to delete the key. fn's error aborts the update and is
	// returned, except ErrUnchanged, which stores nothing and returns
	// nil. fn may be called again when the store retries the
	// transaction, so it must have no other effect. The returned value is
	// checked like PutValue's.
	UpdateValue(ctx context.Context, clientKey, key string, fn func(old json.RawMessage) (json.RawMessage, error)) error
}

// Update changes the value under key atomically: fn gets the stored JSON
// (nil when there is none) and returns the new JSON, nil to delete the
// key, or ErrUnchanged to leave it. Concurrent Updates of one key, from
// any node, run one after the other, so none is lost; a plain Put
// bypasses that order. fn may run more than once and must have no
// other effect.
func (d *TenantData) Update(ctx context.Context, key string, fn func(old json.RawMessage) (json.RawMessage, error)) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	u, ok := d.store.(ValueUpdater)
	if !ok {
		return Errorf(EINTERNAL, "This store cannot update a value atomically.")
	}
	return u.UpdateValue(ctx, d.clientKey, key, func(old json.RawMessage) (json.RawMessage, error) {
		v, err := fn(old)
		if err != nil || v == nil {
			return v, err
		}
		if err := ValidateValue(v); err != nil {
			return nil, err
		}
		return v, nil
	})
}
