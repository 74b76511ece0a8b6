package tenon

import (
	"context"
	"time"
)

// Limits of the operational key-value store (KVStore).
const (
	MaxKVKeyLength = 1024    // bytes of a KV key
	MaxKVValueSize = 1 << 20 // bytes of one KV value
)

// KVInfo describes one KVStore entry.
type KVInfo struct {
	Key      string
	Size     int64     // bytes of the value as it was given to PutKV
	Modified time.Time // when it was last put
}

// KVStore is an optional Store capability, found by type assertion: a
// small key-value store shared by every node, for operational state such
// as TLS certificates, their private keys and ACME accounts. It is not
// for app data, which is tenant-scoped and goes through DataStore.
//
// Much of this state is secret, so implementations seal every value with
// the Store's SecretBox. Keys are UTF-8 without NUL bytes, 1 to
// MaxKVKeyLength bytes, compared byte-wise; values are at most
// MaxKVValueSize bytes. Implementations are safe for concurrent use by
// many nodes and durable once a method returns nil.
type KVStore interface {
	// PutKV stores value under key, replacing any previous value. Bad
	// keys give EINVALID, oversized values ETOOLARGE.
	PutKV(ctx context.Context, key string, value []byte) error
	// GetKV returns the value under key and its info, or ENOTFOUND.
	GetKV(ctx context.Context, key string) ([]byte, KVInfo, error)
	// StatKV returns the info of key without its value, or ENOTFOUND.
	StatKV(ctx context.Context, key string) (KVInfo, error)
	// DeleteKV removes key. Deleting a missing key is not an error.
	DeleteKV(ctx context.Context, key string) error
	// DeleteKVPrefix removes every key that starts with prefix and
	// returns how many it removed. An empty prefix is EINVALID, so a
	// slip cannot wipe the store.
	DeleteKVPrefix(ctx context.Context, prefix string) (int, error)
	// ListKV returns the info of up to limit keys that start with prefix
	// and sort after `after`, in key order. Pass the last key of one
	// page as `after` to get the next. limit <= 0 or above MaxListLimit
	// means MaxListLimit.
	ListKV(ctx context.Context, prefix, after string, limit int) ([]KVInfo, error)
}

// Locker is an optional Store capability, found by type assertion: named
// locks shared by every node, for rare and expensive work that one node
// at a time should do (obtaining a certificate, a scheduled cleanup).
//
// A lock is a lease: it is held until its TTL runs out, so a node that
// dies cannot hold it forever. A holder working longer than the TTL
// extends the lease by calling TryLock again with the same owner. Lease
// times follow the Store's clock. Names follow the rules of KV keys.
type Locker interface {
	// TryLock takes the lock name for owner until ttl from now, when the
	// lock is free, its lease ran out, or owner already holds it (then
	// the lease is extended). It reports whether owner holds the lock
	// afterwards; it never waits for another holder. owner should be
	// unique per holder (node and task), never shared between two
	// holders that must exclude each other. ttl must be positive.
	TryLock(ctx context.Context, name, owner string, ttl time.Duration) (bool, error)
	// Unlock releases name if owner holds it. Releasing a lock owner no
	// longer holds (its lease ran out and another owner took it) is not
	// an error and leaves the other owner's lock in place.
	Unlock(ctx context.Context, name, owner string) error
}
