package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/storeutil"
)

var _ tenon.BudgetStore = (*Store)(nil)

// MergeRateBudget implements tenon.BudgetStore: one transaction that locks
// the budget's row, merges b into it with tenon.MergeRateBudgets, records
// node as seen at now, and counts the nodes seen within ttl. Nodes not
// seen for ten times ttl are forgotten on the way.
func (s *Store) MergeRateBudget(ctx context.Context, key, node string, b tenon.RateBudget, now time.Time, ttl time.Duration) (tenon.RateBudget, error) {
	if err := storeutil.ValidateKVKey(key); err != nil {
		return tenon.RateBudget{}, err
	}
	if node == "" || len(node) > 200 {
		return tenon.RateBudget{}, tenon.Errorf(tenon.EINVALID, "A budget node name is 1 to 200 bytes.")
	}
	if ttl <= 0 {
		return tenon.RateBudget{}, tenon.Errorf(tenon.EINVALID, "The node liveness window must be positive.")
	}
	var out tenon.RateBudget
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		unknown, _ := json.Marshal(tenon.RateBudget{Remaining: -1})
		if _, err := tx.Exec(ctx, `INSERT INTO rate_budgets (key, state, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING`,
			key, unknown, now); err != nil {
			return err
		}
		var raw []byte
		if err := tx.QueryRow(ctx, `SELECT state FROM rate_budgets WHERE key = $1 FOR UPDATE`, key).Scan(&raw); err != nil {
			return err
		}
		cur := tenon.RateBudget{Remaining: -1}
		if err := json.Unmarshal(raw, &cur); err != nil {
			return fmt.Errorf("decoding the stored budget: %w", err)
		}
		out = tenon.MergeRateBudgets(cur, b)
		state, err := json.Marshal(out)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE rate_budgets SET state = $2, updated_at = $3 WHERE key = $1`, key, state, now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO rate_budget_nodes (key, node, seen_at) VALUES ($1, $2, $3)
			ON CONFLICT (key, node) DO UPDATE SET seen_at = GREATEST(rate_budget_nodes.seen_at, excluded.seen_at)`,
			key, node, now); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM rate_budget_nodes WHERE key = $1 AND seen_at < $2`, key, now.Add(-10*ttl)); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT count(*) FROM rate_budget_nodes WHERE key = $1 AND seen_at > $2`, key, now.Add(-ttl)).Scan(&out.Nodes)
	})
	if err != nil {
		return tenon.RateBudget{}, s.fail("merge rate budget", err)
	}
	return out, nil
}
