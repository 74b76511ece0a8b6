package backup

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"filippo.io/age"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/tenon-dev/tenon/keyring"
)

// A tenant export is every row of one clientKey from every tenon table
// that has a client_key column (installations, app data, jobs, Forge
// installations, and any added later), as JSON lines: a header naming
// the tenant, the store kind and the keys that sealed its secrets, one
// line per row ({"t": table, "r": row}), and a trailer with the counts.
// Sealed columns stay sealed; the whole stream is then encrypted with age
// under the key file's backup key, like snapshots. Caches keyed by
// something else (token_cache, kv) are not tenant data: tokens are
// fetched again. Identity ids (jobs.id) are left out, so the importing
// store numbers the rows itself.

const tenantFormat = "tenon-tenant-export"

// ErrTenantExists means an import found the clientKey already in the
// store and was not told to replace it.
var ErrTenantExists = errors.New("the tenant already exists in this store")

// sealedColumns are the columns that hold values sealed by the key file,
// by table: an export names their keys, an import opens them first.
var sealedColumns = map[string][]string{"installations": {"shared_secret", "payload"}}

type tenantHeader struct {
	Format        string    `json:"format"`
	Version       int       `json:"version"`
	Kind          string    `json:"kind"`
	ClientKey     string    `json:"client_key"`
	KeyID         string    `json:"key_id"`
	SealedWith    []string  `json:"sealed_with"`
	SchemaVersion int64     `json:"schema_version"`
	CreatedAt     time.Time `json:"created_at"`
	Tables        []string  `json:"tables"`
}

type tenantTrailer struct {
	End  bool             `json:"end"`
	Rows map[string]int64 `json:"rows"`
}

// TenantSummary is what an export or import moved.
type TenantSummary struct {
	ClientKey string
	Kind      string
	KeyID     string
	Rows      map[string]int64
	Replaced  bool
}

// tenantDB is a store's database opened for tenant moves.
type tenantDB struct {
	kind string // "sqlite" or "postgres"
	db   *sql.DB
}

func openTenantDB(loc string) (*tenantDB, error) {
	if isDSN(loc) {
		db, err := sql.Open("pgx", loc)
		if err != nil {
			return nil, errors.New("open the database: the DSN cannot be parsed")
		}
		return &tenantDB{kind: "postgres", db: db}, nil
	}
	db, err := sql.Open("sqlite", "file:"+loc+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", loc, err)
	}
	db.SetMaxOpenConns(1)
	return &tenantDB{kind: "sqlite", db: db}, nil
}

func (d *tenantDB) ph(i int) string {
	if d.kind == "postgres" {
		return fmt.Sprintf("$%d", i)
	}
	return "?"
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// tenantTables lists the tables with a client_key column and, for each,
// the columns an export carries (all but identity ids).
func (d *tenantDB) tenantTables(ctx context.Context, tx *sql.Tx) (map[string][]string, int64, error) {
	var version sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT max(version_id) FROM tenon_migrations WHERE is_applied`).Scan(&version); err != nil {
		return nil, 0, fmt.Errorf("no tenon store here (%v); check --db", err)
	}
	var q string
	if d.kind == "postgres" {
		q = `SELECT c.table_name, c.column_name FROM information_schema.columns c
			JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
			WHERE c.table_schema = current_schema() AND c.is_identity = 'NO'
			AND c.table_name IN (SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema() AND column_name = 'client_key')
			ORDER BY c.table_name, c.ordinal_position`
	} else {
		q = `SELECT m.name, p.name FROM sqlite_schema m JOIN pragma_table_info(m.name) p
			WHERE m.type = 'table' AND NOT (p.pk = 1 AND upper(p.type) = 'INTEGER')
			AND EXISTS (SELECT 1 FROM pragma_table_info(m.name) WHERE name = 'client_key')
			ORDER BY m.name, p.cid`
	}
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return nil, 0, fmt.Errorf("list tenant tables: %w", err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var t, c string
		if err := rows.Scan(&t, &c); err != nil {
			return nil, 0, err
		}
		out[t] = append(out[t], c)
	}
	return out, version.Int64, rows.Err()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// blobValue is how a SQLite BLOB travels in JSON.
type blobValue struct {
	Base64 string `json:"base64"`
}

// ExportTenant writes every row of clientKey in the store at loc (a
// SQLite path or a PostgreSQL DSN) to w, read in one transaction, and
// encrypted with the key file's backup key. A clientKey with no rows is
// an error wrapping ErrNoBackup.
func ExportTenant(ctx context.Context, loc string, keys *keyring.Keyring, clientKey string, w io.Writer, now time.Time) (*TenantSummary, error) {
	d, err := openTenantDB(loc)
	if err != nil {
		return nil, err
	}
	defer d.db.Close()
	opts := &sql.TxOptions{ReadOnly: true}
	if d.kind == "postgres" {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := d.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("read the store: %w", err)
	}
	defer tx.Rollback()
	tables, version, err := d.tenantTables(ctx, tx)
	if err != nil {
		return nil, err
	}
	sum := &TenantSummary{ClientKey: clientKey, Kind: d.kind, KeyID: keys.SealingKeyID(), Rows: map[string]int64{}}
	var lines []logicalRow
	sealedWith := map[string]bool{}
	for _, t := range sortedKeys(tables) {
		cols := tables[t]
		rs, err := d.tenantRows(ctx, tx, t, cols, clientKey)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			for _, c := range sealedColumns[t] {
				if s, _ := r[c].(string); s != "" {
					id, err := keyring.SealedKeyID(s)
					if err != nil {
						return nil, fmt.Errorf("%s.%s of %s is not a sealed value: %w", t, c, clientKey, err)
					}
					sealedWith[id] = true
				}
			}
			raw, err := json.Marshal(r)
			if err != nil {
				return nil, err
			}
			lines = append(lines, logicalRow{Table: t, Row: raw})
		}
		sum.Rows[t] = int64(len(rs))
	}
	if sum.Rows["installations"] == 0 && len(lines) == 0 {
		return nil, fmt.Errorf("%w: no tenant %q in this store (tenon tenants lists them)", ErrNoBackup, clientKey)
	}
	derived, err := keys.DerivedKeys(keyPurpose)
	if err != nil {
		return nil, err
	}
	rcpt, err := age.NewScryptRecipient(passphrase(derived[0]))
	if err != nil {
		return nil, err
	}
	rcpt.SetWorkFactor(10)
	aw, err := age.Encrypt(w, rcpt)
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriter(aw)
	enc := json.NewEncoder(bw)
	h := tenantHeader{Format: tenantFormat, Version: 1, Kind: d.kind, ClientKey: clientKey, KeyID: derived[0].ID,
		SealedWith: sortedKeys(sealedWith), SchemaVersion: version, CreatedAt: now.UTC(), Tables: sortedKeys(tables)}
	if err := enc.Encode(h); err != nil {
		return nil, err
	}
	for _, l := range lines {
		if err := enc.Encode(l); err != nil {
			return nil, err
		}
	}
	if err := enc.Encode(tenantTrailer{End: true, Rows: sum.Rows}); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	sum.KeyID = derived[0].ID
	return sum, nil
}

// tenantRows reads the rows of clientKey in table as column → value.
func (d *tenantDB) tenantRows(ctx context.Context, tx *sql.Tx, table string, cols []string, clientKey string) ([]map[string]any, error) {
	var out []map[string]any
	if d.kind == "postgres" {
		list := make([]string, len(cols))
		for i, c := range cols {
			list[i] = quoteIdent(c)
		}
		rows, err := tx.QueryContext(ctx, `SELECT row_to_json(x)::text FROM (SELECT `+strings.Join(list, ", ")+` FROM `+quoteIdent(table)+` WHERE client_key = $1) x`, clientKey)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", table, err)
		}
		defer rows.Close()
		for rows.Next() {
			var raw string
			if err := rows.Scan(&raw); err != nil {
				return nil, err
			}
			var m map[string]any
			dec := json.NewDecoder(strings.NewReader(raw))
			dec.UseNumber()
			if err := dec.Decode(&m); err != nil {
				return nil, err
			}
			out = append(out, m)
		}
		return out, rows.Err()
	}
	list := make([]string, len(cols))
	for i, c := range cols {
		list[i] = quoteIdent(c)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+strings.Join(list, ", ")+` FROM `+quoteIdent(table)+` WHERE client_key = ?`, clientKey)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", table, err)
	}
	defer rows.Close()
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		m := map[string]any{}
		for i, c := range cols {
			if b, ok := vals[i].([]byte); ok {
				m[c] = blobValue{Base64: base64.StdEncoding.EncodeToString(b)}
			} else {
				m[c] = vals[i]
			}
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// ImportOptions adjust ImportTenant.
type ImportOptions struct {
	// ClientKey, when set, must be the tenant the export holds: the
	// operator names what they mean to import.
	ClientKey string
	// Replace deletes the tenant's rows in the store first, in the same
	// transaction; without it a tenant that exists is refused.
	Replace bool
}

// ImportTenant loads a tenant export into the store at loc, in one
// transaction. The export must come from a store of the same kind and
// schema version, its secrets must open with the key file, and the
// clientKey must not exist there unless opt.Replace.
func ImportTenant(ctx context.Context, loc string, keys *keyring.Keyring, r io.Reader, opt ImportOptions) (*TenantSummary, error) {
	ids, err := ageIdentities(keys)
	if err != nil {
		return nil, err
	}
	plain, err := age.Decrypt(r, ids...)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			return nil, fmt.Errorf("%w: the export was encrypted with a key this key file lacks (it holds %s); pass the key file of the exporting store with --secret-key-file", ErrWrongKey, strings.Join(keys.KeyIDs(), ", "))
		}
		return nil, fmt.Errorf("%w: not a tenant export, or damaged: %v", ErrBroken, err)
	}
	sc := bufio.NewScanner(plain)
	sc.Buffer(make([]byte, 1<<16), 64<<20)
	var h tenantHeader
	if !sc.Scan() || json.Unmarshal(sc.Bytes(), &h) != nil || h.Format != tenantFormat {
		return nil, fmt.Errorf("%w: not a tenant export (tenon tenants export makes them)", ErrBroken)
	}
	if h.Version != 1 {
		return nil, fmt.Errorf("tenant export format version %d is newer than this tenon reads; import it with a newer tenon", h.Version)
	}
	if opt.ClientKey != "" && opt.ClientKey != h.ClientKey {
		return nil, fmt.Errorf("the export holds tenant %q, not %q; name the tenant it holds", h.ClientKey, opt.ClientKey)
	}
	for _, id := range h.SealedWith {
		if !slices.Contains(keys.KeyIDs(), id) {
			return nil, fmt.Errorf("%w: the secrets of %s are sealed with key %s, and the key file holds %s; add that key to the key file (tenon keys) before importing", ErrWrongKey, h.ClientKey, id, strings.Join(keys.KeyIDs(), ", "))
		}
	}
	var lines []logicalRow
	counts := map[string]int64{}
	whole := false
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), `{"end":`) {
			var tr tenantTrailer
			if err := json.Unmarshal(sc.Bytes(), &tr); err != nil {
				return nil, fmt.Errorf("%w: tenant export trailer: %v", ErrBroken, err)
			}
			for _, t := range h.Tables {
				if tr.Rows[t] != counts[t] {
					return nil, fmt.Errorf("%w: table %s has %d rows in the export, its trailer says %d", ErrBroken, t, counts[t], tr.Rows[t])
				}
			}
			whole = true
			break
		}
		var lr logicalRow
		if err := json.Unmarshal(sc.Bytes(), &lr); err != nil || !slices.Contains(h.Tables, lr.Table) {
			return nil, fmt.Errorf("%w: tenant export line %d is not a row of a listed table", ErrBroken, len(lines)+2)
		}
		lines = append(lines, lr)
		counts[lr.Table]++
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: reading the tenant export: %v (was it encrypted with another key file?)", ErrBroken, err)
	}
	if !whole {
		return nil, fmt.Errorf("%w: the tenant export has no trailer: it was cut short", ErrBroken)
	}
	// Every sealed value must open with this key file before anything is
	// written: a tenant whose secret does not open could never sign in.
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal(l.Row, &m); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBroken, err)
		}
		if ck, _ := m["client_key"].(string); ck != h.ClientKey {
			return nil, fmt.Errorf("%w: a row of %s belongs to %q, not to the exported tenant %q", ErrBroken, l.Table, ck, h.ClientKey)
		}
		for _, c := range sealedColumns[l.Table] {
			if s, _ := m[c].(string); s != "" {
				if _, err := keys.Open(s); err != nil {
					return nil, fmt.Errorf("%w: %s.%s of %s does not open with this key file: %v", ErrWrongKey, l.Table, c, h.ClientKey, err)
				}
			}
		}
	}

	d, err := openTenantDB(loc)
	if err != nil {
		return nil, err
	}
	defer d.db.Close()
	if d.kind != h.Kind {
		return nil, fmt.Errorf("the export is of a %s store and this store is %s; import into a %s store", h.Kind, d.kind, h.Kind)
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("write the store: %w", err)
	}
	defer tx.Rollback()
	tables, version, err := d.tenantTables(ctx, tx)
	if err != nil {
		return nil, err
	}
	if version != h.SchemaVersion {
		return nil, fmt.Errorf("the export is of schema version %d and this store is at %d; import with the tenon version of the exporting store, or upgrade both", h.SchemaVersion, version)
	}
	for _, t := range h.Tables {
		if _, ok := tables[t]; !ok {
			return nil, fmt.Errorf("the export has table %s, which this store lacks", t)
		}
	}
	sum := &TenantSummary{ClientKey: h.ClientKey, Kind: h.Kind, KeyID: h.KeyID, Rows: counts}
	var existing int64
	for _, t := range sortedKeys(tables) {
		var n int64
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+quoteIdent(t)+` WHERE client_key = `+d.ph(1), h.ClientKey).Scan(&n); err != nil {
			return nil, fmt.Errorf("look for %s in %s: %w", h.ClientKey, t, err)
		}
		existing += n
	}
	if existing > 0 && !opt.Replace {
		return nil, fmt.Errorf("%w: %q has %d rows here; pass --replace to delete them and import the export in their place", ErrTenantExists, h.ClientKey, existing)
	}
	if existing > 0 {
		for _, t := range sortedKeys(tables) {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+quoteIdent(t)+` WHERE client_key = `+d.ph(1), h.ClientKey); err != nil {
				return nil, fmt.Errorf("delete %s rows of %s: %w", t, h.ClientKey, err)
			}
		}
		sum.Replaced = true
	}
	for _, l := range lines {
		if err := d.insert(ctx, tx, l, tables[l.Table]); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit the import: %w", err)
	}
	return sum, nil
}

func (d *tenantDB) insert(ctx context.Context, tx *sql.Tx, l logicalRow, cols []string) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(l.Row, &m); err != nil {
		return fmt.Errorf("%w: %v", ErrBroken, err)
	}
	var use []string
	for _, c := range cols {
		if _, ok := m[c]; ok {
			use = append(use, c)
		}
	}
	list := make([]string, len(use))
	for i, c := range use {
		list[i] = quoteIdent(c)
	}
	cl := strings.Join(list, ", ")
	if d.kind == "postgres" {
		_, err := tx.ExecContext(ctx, `INSERT INTO `+quoteIdent(l.Table)+` (`+cl+`) SELECT `+cl+` FROM json_populate_record(NULL::`+quoteIdent(l.Table)+`, $1::json)`, string(l.Row))
		if err != nil {
			return fmt.Errorf("import a row of %s: %w", l.Table, err)
		}
		return nil
	}
	args := make([]any, len(use))
	marks := make([]string, len(use))
	for i, c := range use {
		marks[i] = "?"
		raw := m[c]
		var b blobValue
		switch {
		case len(raw) > 0 && raw[0] == '{' && json.Unmarshal(raw, &b) == nil:
			v, err := base64.StdEncoding.DecodeString(b.Base64)
			if err != nil {
				return fmt.Errorf("%w: %s.%s: %v", ErrBroken, l.Table, c, err)
			}
			args[i] = v
		default:
			var v any
			dec := json.NewDecoder(strings.NewReader(string(raw)))
			dec.UseNumber()
			if err := dec.Decode(&v); err != nil {
				return fmt.Errorf("%w: %s.%s: %v", ErrBroken, l.Table, c, err)
			}
			if n, ok := v.(json.Number); ok {
				if i64, err := n.Int64(); err == nil {
					v = i64
				} else if f, err := n.Float64(); err == nil {
					v = f
				}
			}
			args[i] = v
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+quoteIdent(l.Table)+` (`+cl+`) VALUES (`+strings.Join(marks, ", ")+`)`, args...); err != nil {
		return fmt.Errorf("import a row of %s: %w", l.Table, err)
	}
	return nil
}

// ageIdentities are the age identities of every key of the key file.
func ageIdentities(keys *keyring.Keyring) ([]age.Identity, error) {
	derived, err := keys.DerivedKeys(keyPurpose)
	if err != nil {
		return nil, err
	}
	var ids []age.Identity
	for _, k := range derived {
		id, err := age.NewScryptIdentity(passphrase(k))
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}
