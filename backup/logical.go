package backup

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// A logical export is tenon's own tables as JSON lines, read in one
// REPEATABLE READ transaction so every table is of the same moment: a
// header line, one line per row ({"t": table, "r": row as row_to_json
// gives it}), and a trailer with the row count of every table. Sealed
// columns stay sealed. It is portable across PostgreSQL versions and
// machines, unlike a physical backup, and is what tenon's snapshots of a
// PostgreSQL store hold.

const logicalFormat = "tenon-logical-export"

type logicalHeader struct {
	Format        string    `json:"format"`
	Version       int       `json:"version"`
	Kind          string    `json:"kind"`
	SchemaVersion int64     `json:"schema_version"`
	CreatedAt     time.Time `json:"created_at"`
	Tables        []string  `json:"tables"`
}

type logicalRow struct {
	Table string          `json:"t"`
	Row   json.RawMessage `json:"r"`
}

type logicalTrailer struct {
	End         bool             `json:"end"`
	Rows        map[string]int64 `json:"rows"`
	NewestWrite time.Time        `json:"newest_write"`
}

func isDSN(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// storeTables lists tenon's tables in the connection's schema (the first
// of its search_path, as the store uses) and the store's schema version.
// Two are not data: the migration record (the restored schema has its
// own) and the leader's lease (tenon_leader, made by the elector when it
// first campaigns, not by a migration: a restored deployment elects anew).
func storeTables(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
	QueryRow(context.Context, string, ...any) pgx.Row
}) ([]string, int64, error) {
	var version *int64
	if err := q.QueryRow(ctx, `SELECT max(version_id) FROM tenon_migrations WHERE is_applied`).Scan(&version); err != nil {
		return nil, 0, fmt.Errorf("%w: no tenon schema here (%v); check the DSN names tenon's database and search_path", ErrNoBackup, err)
	}
	rows, err := q.Query(ctx, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
		AND table_name NOT IN ('tenon_migrations', 'tenon_leader') ORDER BY table_name`)
	if err != nil {
		return nil, 0, err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, 0, err
	}
	if version == nil {
		return tables, 0, nil
	}
	return tables, *version, nil
}

// SnapshotTo writes a logical export of the live database to the file
// to, which must not exist.
func (e *PgBackRest) SnapshotTo(ctx context.Context, to string) error {
	f, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := ExportLogical(ctx, e.DSN, f, e.now()); err != nil {
		return err
	}
	return f.Sync()
}

// ExportLogical writes the logical export of the tenon store at dsn to w.
func ExportLogical(ctx context.Context, dsn string, w io.Writer, now time.Time) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("logical export: connect: %w", err)
	}
	defer conn.Close(ctx)
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("logical export: %w", err)
	}
	defer tx.Rollback(ctx)
	tables, version, err := storeTables(ctx, tx)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(logicalHeader{Format: logicalFormat, Version: 1, Kind: "postgres", SchemaVersion: version, CreatedAt: now.UTC(), Tables: tables}); err != nil {
		return err
	}
	tr := logicalTrailer{End: true, Rows: map[string]int64{}}
	for _, t := range tables {
		id := pgx.Identifier{t}.Sanitize()
		rows, err := tx.Query(ctx, `SELECT row_to_json(x)::text FROM `+id+` x`)
		if err != nil {
			return fmt.Errorf("logical export of %s: %w", t, err)
		}
		var n int64
		for rows.Next() {
			var raw string
			if err := rows.Scan(&raw); err != nil {
				rows.Close()
				return err
			}
			if err := enc.Encode(logicalRow{Table: t, Row: json.RawMessage(raw)}); err != nil {
				rows.Close()
				return err
			}
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("logical export of %s: %w", t, err)
		}
		tr.Rows[t] = n
		newest, err := newestWrite(ctx, tx, t)
		if err != nil {
			return err
		}
		if newest.After(tr.NewestWrite) {
			tr.NewestWrite = newest
		}
	}
	if err := enc.Encode(tr); err != nil {
		return err
	}
	return bw.Flush()
}

func newestWrite(ctx context.Context, tx pgx.Tx, table string) (time.Time, error) {
	var has bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1 AND column_name = 'updated_at')`, table).Scan(&has); err != nil || !has {
		return time.Time{}, err
	}
	var t *time.Time
	if err := tx.QueryRow(ctx, `SELECT max(updated_at) FROM `+pgx.Identifier{table}.Sanitize()).Scan(&t); err != nil || t == nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// Inspect counts the rows of a live database (loc is a DSN) in one
// REPEATABLE READ transaction, or checks a logical export file: every
// line parses and the rows match the trailer's counts (quick is
// ignored: both reads are whole).
func (e *PgBackRest) Inspect(ctx context.Context, loc string, quick bool) (*Inspection, error) {
	if isDSN(loc) {
		return inspectPostgres(ctx, loc)
	}
	f, err := os.Open(loc)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", loc, err)
	}
	defer f.Close()
	in, _, err := readLogical(f, nil)
	return in, err
}

func inspectPostgres(ctx context.Context, dsn string) (*Inspection, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("inspect the database: %w", err)
	}
	defer conn.Close(ctx)
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	tables, _, err := storeTables(ctx, tx)
	if err != nil {
		return nil, err
	}
	in := &Inspection{Tables: map[string]int64{}}
	for _, t := range tables {
		var n int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{t}.Sanitize()).Scan(&n); err != nil {
			return nil, fmt.Errorf("count %s: %w", t, err)
		}
		in.Tables[t] = n
		newest, err := newestWrite(ctx, tx, t)
		if err != nil {
			return nil, err
		}
		if newest.After(in.NewestWrite) {
			in.NewestWrite = newest
		}
	}
	return in, nil
}

// readLogical reads an export, giving each row to row when set, and
// checks it is whole.
func readLogical(r io.Reader, row func(h *logicalHeader, lr *logicalRow) error) (*Inspection, *logicalHeader, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 64<<20)
	var h logicalHeader
	if !sc.Scan() {
		return nil, nil, fmt.Errorf("%w: the logical export is empty", ErrBroken)
	}
	if err := json.Unmarshal(sc.Bytes(), &h); err != nil || h.Format != logicalFormat {
		return nil, nil, fmt.Errorf("%w: not a tenon logical export (first line: %.80q)", ErrBroken, sc.Text())
	}
	if h.Version != 1 {
		return nil, nil, fmt.Errorf("logical export format version %d is newer than this tenon reads; restore it with a newer tenon", h.Version)
	}
	known := map[string]bool{}
	for _, t := range h.Tables {
		known[t] = true
	}
	counts := map[string]int64{}
	line := 1
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if strings.HasPrefix(string(b), `{"end":`) {
			var tr logicalTrailer
			if err := json.Unmarshal(b, &tr); err != nil {
				return nil, nil, fmt.Errorf("%w: logical export trailer unreadable: %v", ErrBroken, err)
			}
			if sc.Scan() {
				return nil, nil, fmt.Errorf("%w: data after the logical export's trailer (line %d)", ErrBroken, line+1)
			}
			for _, t := range h.Tables {
				if tr.Rows[t] != counts[t] {
					return nil, nil, fmt.Errorf("%w: table %s has %d rows in the logical export, its trailer says %d", ErrBroken, t, counts[t], tr.Rows[t])
				}
			}
			return &Inspection{Tables: counts, NewestWrite: tr.NewestWrite}, &h, nil
		}
		var lr logicalRow
		if err := json.Unmarshal(b, &lr); err != nil || !known[lr.Table] || len(lr.Row) == 0 || lr.Row[0] != '{' {
			return nil, nil, fmt.Errorf("%w: logical export line %d is not a row of a listed table", ErrBroken, line)
		}
		counts[lr.Table]++
		if row != nil {
			if err := row(&h, &lr); err != nil {
				return nil, nil, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("%w: reading the logical export: %v", ErrBroken, err)
	}
	return nil, nil, fmt.Errorf("%w: the logical export has no trailer: it was cut short", ErrBroken)
}

// ImportLogical loads a logical export file into the tenon schema of the
// database at dsn, in one transaction. The schema must exist at the
// export's version (open the store once to migrate it) and hold no
// rows: a restore never merges into data.
func ImportLogical(ctx context.Context, file, dsn string) (*Inspection, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("connect to the database to restore into: %w", err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	tables, version, err := storeTables(ctx, tx)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, t := range tables {
		have[t] = true
		var any bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+pgx.Identifier{t}.Sanitize()+`)`).Scan(&any); err != nil {
			return nil, err
		}
		if any {
			return nil, fmt.Errorf("the database to restore into already holds tenon data (table %s has rows); restore into an empty database", t)
		}
	}
	var batch []json.RawMessage
	var batchTable string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		arr, _ := json.Marshal(batch)
		id := pgx.Identifier{batchTable}.Sanitize()
		if _, err := tx.Exec(ctx, `INSERT INTO `+id+` OVERRIDING SYSTEM VALUE SELECT * FROM json_populate_recordset(NULL::`+id+`, $1::json)`, string(arr)); err != nil {
			return fmt.Errorf("restore rows of %s: %w", batchTable, err)
		}
		batch = batch[:0]
		return nil
	}
	checked := false
	in, _, err := readLogical(f, func(h *logicalHeader, lr *logicalRow) error {
		if !checked {
			if h.SchemaVersion != version {
				return fmt.Errorf("the export is of schema version %d and the database is at %d; restore with the tenon version that took it", h.SchemaVersion, version)
			}
			checked = true
		}
		if !have[lr.Table] {
			return fmt.Errorf("the export has table %s, which the database lacks", lr.Table)
		}
		if lr.Table != batchTable || len(batch) >= 500 {
			if err := flush(); err != nil {
				return err
			}
			batchTable = lr.Table
		}
		batch = append(batch, lr.Row)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if err := resetIdentities(ctx, tx); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit the restored rows: %w", err)
	}
	return in, nil
}

// resetIdentities moves every identity sequence past the restored ids.
func resetIdentities(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND is_identity = 'YES'`)
	if err != nil {
		return err
	}
	type col struct{ table, column string }
	var cols []col
	for rows.Next() {
		var c col
		if err := rows.Scan(&c.table, &c.column); err != nil {
			rows.Close()
			return err
		}
		cols = append(cols, c)
	}
	rows.Close()
	for _, c := range cols {
		t, k := pgx.Identifier{c.table}.Sanitize(), pgx.Identifier{c.column}.Sanitize()
		if _, err := tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence($1, $2), m) FROM (SELECT max(`+k+`) AS m FROM `+t+`) x WHERE m IS NOT NULL`, t, c.column); err != nil {
			return fmt.Errorf("reset the id sequence of %s: %w", c.table, err)
		}
	}
	return nil
}
