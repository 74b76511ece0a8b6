package storeutil

import (
	"context"
	"fmt"

	"github.com/tenon-dev/tenon"
)

// DefaultResealBatch is the number of rows Reseal re-seals per transaction
// when the caller does not say.
const DefaultResealBatch = 100

// SealedTable describes a table with sealed columns: what Reseal and
// SealedCounts walk. Every store has the same tables, so the list lives
// here and a column sealed by a new feature is added in one place.
type SealedTable struct {
	Name    string         // table name
	Key     string         // primary key column, text, walked in order
	Columns []SealedColumn // the sealed columns of a row
}

// SealedColumn is one sealed column and the rule its values are sealed by,
// the same the store's ordinary reads and writes use: a cached token or a
// KV value is bound to the key it is stored under, and re-sealing must
// neither lose nor forge that binding.
type SealedColumn struct {
	Name string
	// Optional columns hold "" when the row has no such value.
	Optional bool
	open     func(box tenon.SecretBox, rowKey, sealed string) ([]byte, error)
	seal     func(box tenon.SecretBox, rowKey string, plain []byte) (string, error)
}

func openPlain(box tenon.SecretBox, _, sealed string) ([]byte, error) { return box.Open(sealed) }
func sealPlain(box tenon.SecretBox, _ string, plain []byte) (string, error) {
	return box.Seal(plain)
}

func openToken(box tenon.SecretBox, key, sealed string) ([]byte, error) {
	t, err := OpenToken(box, key, sealed)
	return []byte(t), err
}

func sealToken(box tenon.SecretBox, key string, plain []byte) (string, error) {
	return SealToken(box, key, string(plain))
}

// SealedTables are every table holding values sealed by the SecretBox.
// App data (app_data) is not sealed, nor are jobs, settings or Forge
// installation records.
var SealedTables = []SealedTable{
	{Name: "installations", Key: "client_key", Columns: []SealedColumn{
		{Name: "shared_secret", open: openPlain, seal: sealPlain},
		{Name: "payload", Optional: true, open: openPlain, seal: sealPlain},
	}},
	{Name: "token_cache", Key: "key", Columns: []SealedColumn{
		{Name: "token", open: openToken, seal: sealToken},
	}},
	{Name: "kv", Key: "key", Columns: []SealedColumn{
		{Name: "value", open: OpenKV, seal: SealKV},
	}},
}

// SealedRow is one row of a SealedTable: its key and its sealed values in
// the order of the table's Columns.
type SealedRow struct {
	Key    string
	Values []string
}

// SealedSwap replaces a row's sealed values Old by New, only if the row
// still holds exactly Old: sealing draws a fresh nonce every time, so any
// write in between makes the values differ.
type SealedSwap struct {
	Key      string
	Old, New []string
}

// ResealBackend is what a store provides to Reseal and SealedCounts: plain
// reads and conditional writes of sealed rows, nothing about keys.
type ResealBackend interface {
	// SealedRows returns up to limit rows of t whose key sorts after
	// after, in key order (byte-wise).
	SealedRows(ctx context.Context, t SealedTable, after string, limit int) ([]SealedRow, error)
	// SwapSealed applies swaps in one short transaction and returns how
	// many rows still held their Old values and were changed.
	SwapSealed(ctx context.Context, t SealedTable, swaps []SealedSwap) (int, error)
}

// keyedBox returns box as a KeyedSecretBox, or an error saying why
// re-sealing cannot work with it.
func keyedBox(box tenon.SecretBox) (tenon.KeyedSecretBox, error) {
	kb, ok := box.(tenon.KeyedSecretBox)
	if !ok || kb.SealingKeyID() == "" {
		return nil, fmt.Errorf("the SecretBox (%T) does not name its keys, which re-sealing needs (use a keyring)", box)
	}
	return kb, nil
}

// opened is a row's values as rowKeyID opened them; ok[i] is false for an
// empty optional value and for one left sealed under the sealing key.
type opened struct {
	plain [][]byte
	ok    []bool
}

// rowKeyID classifies a row: the id of its oldest key (the first value not
// under the sealing key, else the sealing key), or SealedUnreadable when a
// value does not open. With verify false values under the sealing key are
// trusted without opening, which is what Reseal needs to skip them.
func rowKeyID(box tenon.KeyedSecretBox, t SealedTable, row SealedRow, verify bool) (id string, o opened) {
	sealing := box.SealingKeyID()
	id = sealing
	o = opened{plain: make([][]byte, len(t.Columns)), ok: make([]bool, len(t.Columns))}
	if len(row.Values) != len(t.Columns) {
		return tenon.SealedUnreadable, opened{}
	}
	for i, col := range t.Columns {
		v := row.Values[i]
		if v == "" && col.Optional {
			continue
		}
		vid, err := box.SealedKeyID(v)
		if err != nil {
			return tenon.SealedUnreadable, opened{}
		}
		if vid == sealing && !verify {
			continue
		}
		p, err := col.open(box, row.Key, v)
		if err != nil {
			return tenon.SealedUnreadable, opened{}
		}
		if vid != sealing {
			o.plain[i], o.ok[i] = p, true
			if id == sealing {
				id = vid
			}
		}
	}
	return id, o
}

// SealedCounts implements tenon.Resealer.SealedCounts on b.
func SealedCounts(ctx context.Context, b ResealBackend, box tenon.SecretBox) (map[string]int, error) {
	kb, err := keyedBox(box)
	if err != nil {
		return nil, err
	}
	counts := make(map[string]int)
	for _, t := range SealedTables {
		after := ""
		for {
			rows, err := b.SealedRows(ctx, t, after, DefaultResealBatch)
			if err != nil {
				return nil, fmt.Errorf("count sealed rows of %s: %w", t.Name, err)
			}
			for _, row := range rows {
				id, _ := rowKeyID(kb, t, row, true)
				counts[id]++
			}
			if len(rows) < DefaultResealBatch {
				break
			}
			after = rows[len(rows)-1].Key
		}
	}
	return counts, nil
}

// Reseal implements tenon.Resealer.Reseal on b. Rows are read outside any
// transaction and written back by b.SwapSealed, batch by batch, so a
// serving process waits at most for one batch.
func Reseal(ctx context.Context, b ResealBackend, box tenon.SecretBox, batch int, progress func(int)) (int, error) {
	kb, err := keyedBox(box)
	if err != nil {
		return 0, err
	}
	if batch <= 0 {
		batch = DefaultResealBatch
	}
	total := 0
	for _, t := range SealedTables {
		after := ""
		for {
			if err := ctx.Err(); err != nil {
				return total, err
			}
			rows, err := b.SealedRows(ctx, t, after, batch)
			if err != nil {
				return total, fmt.Errorf("reseal %s: %w", t.Name, err)
			}
			var swaps []SealedSwap
			for _, row := range rows {
				sw, ok, err := resealRow(kb, t, row)
				if err != nil {
					return total, fmt.Errorf("reseal %s: %w", t.Name, err)
				}
				if ok {
					swaps = append(swaps, sw)
				}
			}
			if len(swaps) > 0 {
				n, err := b.SwapSealed(ctx, t, swaps)
				if err != nil {
					return total, fmt.Errorf("reseal %s: %w", t.Name, err)
				}
				total += n
				if progress != nil {
					progress(total)
				}
			}
			if len(rows) < batch {
				break
			}
			after = rows[len(rows)-1].Key
		}
	}
	return total, nil
}

// resealRow returns the swap that moves row to the sealing key, and false
// when there is nothing to do: the row is under the sealing key already,
// or it does not open (it is left for the operator to see).
func resealRow(box tenon.KeyedSecretBox, t SealedTable, row SealedRow) (SealedSwap, bool, error) {
	id, o := rowKeyID(box, t, row, false)
	if id == box.SealingKeyID() || id == tenon.SealedUnreadable {
		return SealedSwap{}, false, nil
	}
	sw := SealedSwap{Key: row.Key, Old: row.Values, New: make([]string, len(row.Values))}
	for i, col := range t.Columns {
		if !o.ok[i] {
			sw.New[i] = row.Values[i] // empty optional, or under the sealing key
			continue
		}
		sealed, err := col.seal(box, row.Key, o.plain[i])
		if err != nil {
			return SealedSwap{}, false, fmt.Errorf("seal %s of %q: %w", col.Name, row.Key, err)
		}
		sw.New[i] = sealed
	}
	return sw, true, nil
}
