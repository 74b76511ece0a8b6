package tenon

import (
	"context"
	"encoding/json"
	"unicode/utf8"
)

// Limits on tenant-scoped app data. Both store implementations enforce
// them, so an app behaves the same on SQLite and PostgreSQL.
const (
	MaxKeyLength = 512       // bytes of a data key
	MaxValueSize = 256 << 10 // bytes of one JSON value
	MaxListLimit = 1000      // values returned by one List call
)

// InstallationStore keeps tenant records. Implementations are safe for
// concurrent use and durable: once a method returns nil, the change
// survives a crash of the process.
type InstallationStore interface {
	// Installation returns the tenant with clientKey, or an ENOTFOUND error.
	Installation(ctx context.Context, clientKey string) (*Installation, error)

	// Installations lists tenants ordered by clientKey. An empty state
	// lists every state.
	Installations(ctx context.Context, state State) ([]*Installation, error)

	// SaveInstallation records a verified `installed` callback. It inserts
	// the tenant or replaces, in one atomic step, its shared secret, base
	// URL, payload and the other descriptive fields. InstalledAt of an
	// existing tenant is kept. The resulting state is StateDisabled when
	// the tenant was disabled (an upgrade must not re-enable what an admin
	// disabled) and StateEnabled otherwise, including after an uninstall.
	// in.State is ignored; in is updated with the stored values.
	SaveInstallation(ctx context.Context, in *Installation) error

	// SetState moves a tenant to state and returns the stored record.
	// StateUninstalled always wins: moving an uninstalled tenant to
	// enabled or disabled changes nothing and returns a ECONFLICT error,
	// so concurrent `disabled` and `uninstalled` callbacks end uninstalled
	// in either order. Unknown tenants give ENOTFOUND.
	SetState(ctx context.Context, clientKey string, state State) (*Installation, error)
}

// KeyValue is one stored app value.
type KeyValue struct {
	Key   string
	Value json.RawMessage
}

// DataStore keeps app data scoped by tenant. Handlers never see it
// directly: they reach their own tenant's data through Principal.Data.
// Implementations are safe for concurrent use and durable once a method
// returns nil.
type DataStore interface {
	// GetValue returns the value under key, or ENOTFOUND.
	GetValue(ctx context.Context, clientKey, key string) (json.RawMessage, error)
	// PutValue stores value (valid JSON, at most MaxValueSize bytes) under
	// key, replacing any previous value. Bad keys or values give EINVALID
	// or ETOOLARGE.
	PutValue(ctx context.Context, clientKey, key string, value json.RawMessage) error
	// DeleteValue removes key. Deleting a missing key is not an error.
	DeleteValue(ctx context.Context, clientKey, key string) error
	// ListValues returns up to limit values whose keys start with prefix
	// and sort after `after`, in key order (byte-wise). limit <= 0 or
	// above MaxListLimit means MaxListLimit.
	ListValues(ctx context.Context, clientKey, prefix, after string, limit int) ([]KeyValue, error)
	// DeleteTenantData removes every value of a tenant.
	DeleteTenantData(ctx context.Context, clientKey string) error
}

// Store is everything tenon persists. sqlite.Store and postgres.Store
// implement it and pass the same conformance suite (storetest).
type Store interface {
	InstallationStore
	DataStore
	// Close releases connections. The Store must not be used afterwards.
	Close() error
}

// SecretBox seals secrets (shared secrets, install payloads) before a
// store writes them and opens them after it reads them. The keyring
// package implements it with AES-256-GCM and key rotation.
type SecretBox interface {
	Seal(plaintext []byte) (string, error)
	Open(sealed string) ([]byte, error)
}

// InstallationWatcher is an optional Store capability: a store shared by
// several nodes (PostgreSQL) reports installation changes made by any node,
// so every node can drop its cached copy. Watch calls fn with the changed
// clientKey until ctx ends; it returns when ctx ends or the watch fails.
type InstallationWatcher interface {
	WatchInstallations(ctx context.Context, fn func(clientKey string)) error
}

// ValidateKey checks a data key: non-empty, valid UTF-8, no NUL bytes, at
// most MaxKeyLength bytes.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return Errorf(EINVALID, "The key is empty.")
	case len(key) > MaxKeyLength:
		return Errorf(EINVALID, "The key is longer than %d bytes.", MaxKeyLength)
	case !utf8.ValidString(key):
		return Errorf(EINVALID, "The key is not valid UTF-8.")
	}
	for i := 0; i < len(key); i++ {
		if key[i] == 0 {
			return Errorf(EINVALID, "The key contains a NUL byte.")
		}
	}
	return nil
}

// ValidateValue checks a data value: valid JSON of at most MaxValueSize bytes.
func ValidateValue(value json.RawMessage) error {
	if len(value) > MaxValueSize {
		return Errorf(ETOOLARGE, "The value is larger than %d bytes.", MaxValueSize)
	}
	if !json.Valid(value) {
		return Errorf(EINVALID, "The value is not valid JSON.")
	}
	return nil
}
