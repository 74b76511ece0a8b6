package importer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	// Drivers of the stores other frameworks write.
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"
)

// dialect is the SQL database a source reads.
type dialect int

const (
	dialectSQLite dialect = iota
	dialectPostgres
)

func isPostgresDSN(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

func isRedisDSN(dsn string) bool {
	return strings.HasPrefix(dsn, "redis://") || strings.HasPrefix(dsn, "rediss://")
}

// openSQL opens dsn read-only: a PostgreSQL URL, or the path of a SQLite
// file (optionally as sqlite:PATH). It never creates a database, and says
// which one it could not reach without showing a password.
func openSQL(ctx context.Context, dsn string) (*sql.DB, dialect, error) {
	if isPostgresDSN(dsn) {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, 0, fmt.Errorf("the PostgreSQL URL %s is not valid: %w", redactDSN(dsn), err)
		}
		if err := db.PingContext(ctx); err != nil {
			db.Close()
			return nil, 0, fmt.Errorf("cannot read the PostgreSQL database %s: %w", redactDSN(dsn), err)
		}
		return db, dialectPostgres, nil
	}
	path := strings.TrimPrefix(dsn, "sqlite:")
	shown := path
	if abs, err := filepath.Abs(path); err == nil {
		shown = abs
	}
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, 0, fmt.Errorf("no SQLite database at %s (give --from a PostgreSQL URL or the path of the framework's SQLite file)", shown)
	case err != nil:
		return nil, 0, fmt.Errorf("SQLite database %s: %w", shown, err)
	case !info.Mode().IsRegular():
		return nil, 0, fmt.Errorf("%s is not a SQLite database file", shown)
	}
	u := url.URL{Scheme: "file", OmitHost: true, Path: path, RawQuery: "mode=ro&_pragma=busy_timeout(5000)"}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, 0, fmt.Errorf("SQLite database %s: %w", shown, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, 0, fmt.Errorf("cannot read the SQLite database %s: %w", shown, err)
	}
	return db, dialectSQLite, nil
}

// redactDSN hides the password of a URL.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// tableExists reports whether the database has table (as named, case
// kept: the frameworks quote their names).
func tableExists(ctx context.Context, db *sql.DB, d dialect, table string) (bool, error) {
	var n int
	var err error
	if d == dialectPostgres {
		err = db.QueryRowContext(ctx,
			`SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1`, table).Scan(&n)
	} else {
		err = db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, table).Scan(&n)
	}
	if err != nil {
		return false, fmt.Errorf("look for table %s: %w", table, err)
	}
	return n > 0, nil
}

// columns lists the columns of table, lower-cased.
func columns(ctx context.Context, db *sql.DB, d dialect, table string) (map[string]bool, error) {
	var rows *sql.Rows
	var err error
	if d == dialectPostgres {
		rows, err = db.QueryContext(ctx,
			`SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1`, table)
	} else {
		rows, err = db.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, table)
	}
	if err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", table, err)
	}
	defer rows.Close()
	cols := map[string]bool{}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, fmt.Errorf("read the columns of %s: %w", table, err)
		}
		cols[strings.ToLower(c)] = true
	}
	return cols, rows.Err()
}

// quote quotes an SQL identifier.
func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }
