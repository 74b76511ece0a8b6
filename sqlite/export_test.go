package sqlite

import (
	"context"
	"fmt"

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
