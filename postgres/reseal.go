package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/storeutil"
)

var _ tenon.Resealer = (*Store)(nil)

// SealedCounts implements tenon.Resealer.
func (s *Store) SealedCounts(ctx context.Context) (map[string]int, error) {
	counts, err := storeutil.SealedCounts(ctx, resealBackend{s}, s.box)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return counts, nil
}

// Reseal implements tenon.Resealer. Each batch is one short transaction
// of conditional updates; a re-sealed installation notifies every node,
// which drops its cached copy and reads the same secret again.
func (s *Store) Reseal(ctx context.Context, batch int, progress func(int)) (int, error) {
	n, err := storeutil.Reseal(ctx, resealBackend{s}, s.box, batch, progress)
	if err != nil {
		return n, fmt.Errorf("postgres: %w", err)
	}
	return n, nil
}

// resealBackend gives storeutil's re-sealing plain access to the sealed
// tables. Table and column names come from storeutil.SealedTables, never
// from input.
type resealBackend struct{ s *Store }

func (b resealBackend) SealedRows(ctx context.Context, t storeutil.SealedTable, after string, limit int) ([]storeutil.SealedRow, error) {
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = c.Name
	}
	q := fmt.Sprintf(`SELECT %s, %s FROM %s WHERE %s > $1 ORDER BY %s LIMIT $2`,
		t.Key, strings.Join(cols, ", "), t.Name, t.Key, t.Key)
	rows, err := b.s.pool.Query(ctx, q, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []storeutil.SealedRow
	for rows.Next() {
		r := storeutil.SealedRow{Values: make([]string, len(cols))}
		dest := []any{&r.Key}
		for i := range r.Values {
			dest = append(dest, &r.Values[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (b resealBackend) SwapSealed(ctx context.Context, t storeutil.SealedTable, swaps []storeutil.SealedSwap) (int, error) {
	n := len(t.Columns)
	set := make([]string, n)
	where := []string{fmt.Sprintf("%s = $%d", t.Key, n+1)}
	for i, c := range t.Columns {
		set[i] = fmt.Sprintf("%s = $%d", c.Name, i+1)
		where = append(where, fmt.Sprintf("%s = $%d", c.Name, n+2+i))
	}
	q := fmt.Sprintf(`UPDATE %s SET %s WHERE %s`, t.Name, strings.Join(set, ", "), strings.Join(where, " AND "))
	tx, err := b.s.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	changed := 0
	for _, sw := range swaps {
		args := make([]any, 0, 1+2*n)
		for _, v := range sw.New {
			args = append(args, v)
		}
		args = append(args, sw.Key)
		for _, v := range sw.Old {
			args = append(args, v)
		}
		tag, err := tx.Exec(ctx, q, args...)
		if err != nil {
			return 0, err
		}
		changed += int(tag.RowsAffected())
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	return changed, nil
}
