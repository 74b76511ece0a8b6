package sqlite

import (
	"context"
	"fmt"
	"time"
	"unsafe"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tenon-dev/tenon/internal/storeutil"
)

// SwapSealed exposes the conditional write of re-sealing to the external
// tests, which check that it never replaces a row written since the read.
func SwapSealed(ctx context.Context, s *Store, table, key string, old, new []string) (int, error) {
	for _, t := range storeutil.SealedTables {
		if t.Name == table {
			return resealBackend{s}.SwapSealed(ctx, t, []storeutil.SealedSwap{{Key: key, Old: old, New: new}})
		}
	}
	return 0, fmt.Errorf("no sealed table %q", table)
}

// HoldLookup takes one of the store's lookup connections, as a read in
// progress would, until release is called.
func HoldLookup(ctx context.Context, s *Store) (release func(), err error) {
	c, err := s.lookups.get(ctx)
	if err != nil {
		return nil, err
	}
	return func() { s.lookups.put(c) }, nil
}

// CommitsWaiting says how many writes wait for a group commit.
func CommitsWaiting(s *Store) int {
	s.commits.mu.Lock()
	defer s.commits.mu.Unlock()
	return len(s.commits.waiting)
}

// SlowLookup runs a statement that takes minutes on one of the store's
// lookup connections, for tests of its interruption.
func SlowLookup(ctx context.Context, s *Store) error {
	c, err := s.lookups.get(ctx)
	if err != nil {
		return err
	}
	defer s.lookups.put(c)
	st, err := c.prepare(`WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n LIMIT 10000000000)
		SELECT max(x) FROM n WHERE ? <> ''`)
	if err != nil {
		return err
	}
	defer sqlite3.Xsqlite3_finalize(c.tls, st)
	return c.query(ctx, st, "x", "", func(uintptr) error { return nil })
}

// LookupBusy asks the lookup connections' busy handler whether a call
// under ctx, with busy timeout timeout, waits again after count waits.
func LookupBusy(ctx context.Context, timeout time.Duration, count int32) bool {
	c := &lookupConn{busyTimeout: timeout, ctx: ctx}
	key := uintptr(unsafe.Pointer(c))
	lookupConns.Store(key, c)
	defer lookupConns.Delete(key)
	return lookupBusy(nil, key, count) != 0
}

// OpenLookup opens a lookup connection of its own to the database at
// path, for tests of waits the store's own files never show (a rollback
// journal database, locked by another connection).
func OpenLookup(path string, busyTimeout time.Duration) (get func(ctx context.Context, clientKey, key string) ([]byte, error), close func() error, err error) {
	c, err := openLookupConn(path, busyTimeout)
	if err != nil {
		return nil, nil, err
	}
	get = func(ctx context.Context, clientKey, key string) (v []byte, err error) {
		err = c.query(ctx, c.value, clientKey, key, func(st uintptr) error {
			v = c.blob(st, 0)
			return nil
		})
		return v, err
	}
	return get, c.close, nil
}

// Fail classifies err as the store's methods do.
func Fail(err error) error { return (&Store{}).fail("test", err) }
