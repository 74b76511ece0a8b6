package postgres

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
