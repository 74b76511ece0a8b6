package tenon

import (
	"context"
	"encoding/json"
)

// TenantData is the app data of one verified tenant. It is obtained from
// Principal.Data, which binds it to the tenant the request was verified
// for; there is no way to point it at another tenant.
type TenantData struct {
	store     DataStore
	clientKey string
}

// Get decodes the value under key into v. A missing key gives ENOTFOUND.
func (d *TenantData) Get(ctx context.Context, key string, v any) error {
	raw, err := d.GetRaw(ctx, key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return WrapError(EINTERNAL, "The stored value cannot be read.", err)
	}
	return nil
}

// GetRaw returns the JSON stored under key, or ENOTFOUND.
func (d *TenantData) GetRaw(ctx context.Context, key string) (json.RawMessage, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	return d.store.GetValue(ctx, d.clientKey, key)
}

// Put stores v, encoded as JSON, under key.
func (d *TenantData) Put(ctx context.Context, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return WrapError(EINVALID, "The value cannot be encoded as JSON.", err)
	}
	return d.PutRaw(ctx, key, raw)
}

// PutRaw stores raw JSON under key.
func (d *TenantData) PutRaw(ctx context.Context, key string, raw json.RawMessage) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if err := ValidateValue(raw); err != nil {
		return err
	}
	return d.store.PutValue(ctx, d.clientKey, key, raw)
}

// Delete removes key; a missing key is not an error.
func (d *TenantData) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	return d.store.DeleteValue(ctx, d.clientKey, key)
}

// List returns up to limit values whose keys start with prefix and sort
// after `after`, in key order. Pass the last key of one page as `after` to
// get the next.
func (d *TenantData) List(ctx context.Context, prefix, after string, limit int) ([]KeyValue, error) {
	return d.store.ListValues(ctx, d.clientKey, prefix, after, limit)
}

// PutPersonal stores v under key like Put and records that the value is
// personal data of accountID: the reporting cycle reports the account to
// Atlassian, and when Atlassian says the account was closed, tenon erases
// the value. The store must keep personal data (both stores do).
func (d *TenantData) PutPersonal(ctx context.Context, accountID, key string, v any) error {
	ps, ok := d.store.(PersonalDataStore)
	if !ok {
		return Errorf(EINTERNAL, "This store does not keep a personal data inventory.")
	}
	if err := ValidateKey(key); err != nil {
		return err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return WrapError(EINVALID, "The value cannot be encoded as JSON.", err)
	}
	if err := ValidateValue(raw); err != nil {
		return err
	}
	return ps.PutPersonal(ctx, d.clientKey, accountID, key, raw)
}

// TouchAccount records that the app stores personal data of accountID in
// a form of its own (a name in an item, an author field): the account
// index tenon reports from. When the account is closed, the app's erase
// hook removes that data (see package personal).
func (d *TenantData) TouchAccount(ctx context.Context, accountID string) error {
	ps, ok := d.store.(PersonalDataStore)
	if !ok {
		return Errorf(EINTERNAL, "This store does not keep a personal data inventory.")
	}
	return ps.TouchAccount(ctx, d.clientKey, accountID)
}
