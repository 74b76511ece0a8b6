package storeutil

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/tenon-dev/tenon"
)

// ValidateKVKey checks a KVStore key or Locker name.
func ValidateKVKey(key string) error {
	if key == "" || len(key) > tenon.MaxKVKeyLength || !ValidText(key) {
		return tenon.Errorf(tenon.EINVALID, "The key must be 1 to %d bytes of UTF-8 without NUL.", tenon.MaxKVKeyLength)
	}
	return nil
}

// ValidateKVValue checks a KVStore value.
func ValidateKVValue(value []byte) error {
	if len(value) > tenon.MaxKVValueSize {
		return tenon.Errorf(tenon.ETOOLARGE, "The value is larger than %d bytes.", tenon.MaxKVValueSize)
	}
	return nil
}

// KVRange validates the prefix and after of a ListKV call and returns the
// range to scan, as ListRange does for app data.
func KVRange(prefix, after string) (KeyRange, error) {
	if len(prefix) > tenon.MaxKVKeyLength || !ValidText(prefix) {
		return KeyRange{}, tenon.Errorf(tenon.EINVALID, "The prefix must be at most %d bytes of UTF-8 without NUL.", tenon.MaxKVKeyLength)
	}
	if len(after) > tenon.MaxKVKeyLength || !ValidText(after) {
		return KeyRange{}, tenon.Errorf(tenon.EINVALID, "The `after` key must be at most %d bytes of UTF-8 without NUL.", tenon.MaxKVKeyLength)
	}
	var r KeyRange
	if after >= prefix {
		r.Lower, r.LowerStrict = after, true
	} else {
		r.Lower = prefix
	}
	r.Upper, r.HasUpper = PrefixEnd(prefix)
	return r, nil
}

// ValidateLock checks the arguments of Locker.TryLock and Unlock.
func ValidateLock(name, owner string) error {
	if err := ValidateKVKey(name); err != nil {
		return tenon.Errorf(tenon.EINVALID, "The lock name must be 1 to %d bytes of UTF-8 without NUL.", tenon.MaxKVKeyLength)
	}
	if owner == "" || len(owner) > 256 || !ValidText(owner) {
		return tenon.Errorf(tenon.EINVALID, "The lock owner must be 1 to 256 bytes of UTF-8 without NUL.")
	}
	return nil
}

// ValidateTTL checks a lock lease.
func ValidateTTL(ttl time.Duration) error {
	if ttl <= 0 {
		return tenon.Errorf(tenon.EINVALID, "The lock TTL must be positive.")
	}
	return nil
}

// SealKV encrypts a KV value together with the key it is stored under, so
// that someone able to write the table cannot move one value (a private
// key, say) under another key: OpenKV would refuse it.
func SealKV(box tenon.SecretBox, key string, value []byte) (string, error) {
	plain := make([]byte, 0, len(key)+1+len(value))
	plain = append(append(append(plain, key...), 0), value...)
	sealed, err := box.Seal(plain)
	if err != nil {
		return "", fmt.Errorf("seal value: %w", err)
	}
	return sealed, nil
}

var errKVKeyMismatch = errors.New("the sealed value belongs to another key")

// OpenKV decrypts a sealed value stored under key. Errors carry nothing
// of the value.
func OpenKV(box tenon.SecretBox, key, sealed string) ([]byte, error) {
	plain, err := box.Open(sealed)
	if err != nil {
		return nil, fmt.Errorf("open value of %q: %w", key, err)
	}
	k, value, ok := bytes.Cut(plain, []byte{0})
	if !ok || string(k) != key {
		return nil, fmt.Errorf("open value of %q: %w", key, errKVKeyMismatch)
	}
	return value, nil
}

// KVNotFound is the error for a missing KV key.
func KVNotFound(key string) error {
	return tenon.Errorf(tenon.ENOTFOUND, "No entry under key %q.", key)
}

// LatestMigration returns the highest version among the goose migration
// files (NNNNN_name.sql) in dir of fsys: the schema version a store's
// Ping expects at least.
func LatestMigration(fsys fs.FS, dir string) (int64, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return 0, err
	}
	var latest int64
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		if !ok || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		v, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			continue
		}
		latest = max(latest, v)
	}
	return latest, nil
}
