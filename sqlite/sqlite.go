// Package sqlite implements tenon.Store on an embedded SQLite database, the
// default for a single node: no server to run, one file to back up.
//
// Writes go through a single connection because SQLite allows one writer at
// a time anyway; funnelling them through one connection turns lock
// contention (SQLITE_BUSY, retries) into an ordinary wait in the pool.
// Reads use a separate pool of read-only connections, which in WAL mode run
// alongside the writer without blocking it.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/storeutil"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationTable is named after the project so that a database shared with
// other goose users keeps the two histories apart.
const migrationTable = "tenon_migrations"

// DefaultBusyTimeout is how long a connection waits for a lock held by
// another process (a backup or replication tool, the sqlite3 shell)
// before the call fails with EUNAVAILABLE.
const DefaultBusyTimeout = 10 * time.Second

var _ tenon.Store = (*Store)(nil)

// Options configure a Store.
type Options struct {
	// SecretBox seals shared secrets and install payloads. Required.
	SecretBox tenon.SecretBox
	// Now is the clock for the timestamps the store records. Default time.Now.
	Now func() time.Time
	// Logger receives migration progress. Default: discard.
	Logger *slog.Logger
	// MaxReaders bounds each of the two read-only connection pools (the
	// point lookups every request makes, and the other reads). Default:
	// twice GOMAXPROCS, at least 4.
	MaxReaders int
	// BusyTimeout is how long a statement waits for a lock held by
	// another process before failing. Default DefaultBusyTimeout.
	BusyTimeout time.Duration
}

// Store is a tenon.Store backed by one SQLite file.
type Store struct {
	path   string
	box    tenon.SecretBox
	now    func() time.Time
	writer *sql.DB // exactly one connection
	reader *sql.DB // read-only connections

	// Statements are prepared once at Open so a request never pays for
	// parsing SQL. Each belongs to the pool it runs on.
	listInstallations   *sql.Stmt    // reader
	listInstallationsBy *sql.Stmt    // reader
	listValues          [4]*sql.Stmt // reader; index strict | upper<<1
	forgePending        *sql.Stmt    // reader
	saveInstallation    *sql.Stmt    // writer
	lockedInstallation  *sql.Stmt    // writer
	updateState         *sql.Stmt    // writer
	putValue            *sql.Stmt    // writer
	deleteValue         *sql.Stmt    // writer
	deleteTenantData    *sql.Stmt    // writer

	lookups *lookupPool // the point reads of every request (lookup.go)
	commits groupCommit // batches concurrent durable writes (groupcommit.go)

	busyTimeout time.Duration
	closed      atomic.Bool
}

// Open opens or creates the database at path and brings its schema up to
// date. path must name a file: an in-memory database could not be shared
// by the writer and the readers.
func Open(path string, opts Options) (*Store, error) {
	if opts.SecretBox == nil {
		return nil, errors.New("sqlite: open: Options.SecretBox is required (secrets are never stored in plain text)")
	}
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: open: %q is not a file path", path)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxReaders <= 0 {
		opts.MaxReaders = max(4, 2*runtime.GOMAXPROCS(0))
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = DefaultBusyTimeout
	}
	s := &Store{path: path, box: opts.SecretBox, now: opts.Now, busyTimeout: opts.BusyTimeout}
	if err := s.open(opts); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) open(opts Options) error {
	ctx := context.Background()
	// Create a new database readable by its owner only: app data is not
	// encrypted, and SQLite gives the -wal and -shm files the same mode.
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite: open: %w", err)
	}
	f.Close()
	// synchronous=FULL makes every commit wait for the WAL to reach the
	// disk. With the WAL default (NORMAL) a commit survives a crash of the
	// process but not of the machine: a power cut can roll back the last
	// transactions. An `installed` callback is answered only after its
	// commit and Atlassian never sends it again, so losing one would leave
	// a tenant whose shared secret nobody knows. Installs and app writes
	// are rare enough that an fsync each is cheap insurance.
	//
	// _txlock=immediate takes the write lock at BEGIN, so a transaction
	// that reads before it writes cannot fail half-way on an upgrade.
	s.writer, err = sql.Open("sqlite", dsn(s.path,
		"_pragma=busy_timeout("+fmt.Sprint(s.busyTimeout.Milliseconds())+")",
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous(FULL)",
		"_pragma=foreign_keys(1)",
		"_txlock=immediate",
	))
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", s.path, err)
	}
	s.writer.SetMaxOpenConns(1)
	s.writer.SetMaxIdleConns(1)
	s.writer.SetConnMaxLifetime(0)
	s.writer.SetConnMaxIdleTime(0)
	s.commits.db, s.commits.timeout = s.writer, s.busyTimeout+5*time.Second
	if err := s.checkPragmas(ctx); err != nil {
		return err
	}
	if err := migrate(ctx, s.writer, opts.Logger); err != nil {
		return fmt.Errorf("sqlite: migrate %s: %w", s.path, err)
	}

	// query_only makes a reader refuse writes, so a statement sent to the
	// wrong pool fails loudly instead of bypassing the single writer.
	readerDSN := dsn(s.path,
		"_pragma=busy_timeout("+fmt.Sprint(s.busyTimeout.Milliseconds())+")",
		"_pragma=query_only(1)",
	)
	s.reader, err = sql.Open("sqlite", readerDSN)
	if err != nil {
		return fmt.Errorf("sqlite: open readers for %s: %w", s.path, err)
	}
	s.reader.SetMaxOpenConns(opts.MaxReaders)
	s.reader.SetMaxIdleConns(opts.MaxReaders)
	s.reader.SetConnMaxIdleTime(0)
	s.lookups = newLookupPool(opts.MaxReaders, func() (*lookupConn, error) { return openLookupConn(s.path, s.busyTimeout) })
	return s.prepare(ctx)
}

// checkPragmas verifies the durability settings took effect: journal_mode
// silently stays as it was on file systems without shared memory support,
// and the store must not run with weaker guarantees than it promises.
func (s *Store) checkPragmas(ctx context.Context) error {
	var mode string
	if err := s.writer.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", s.path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("sqlite: open %s: journal_mode is %q, want wal (is the file on a network file system?)", s.path, mode)
	}
	var sync int
	if err := s.writer.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", s.path, err)
	}
	if sync != 2 { // FULL
		return fmt.Errorf("sqlite: open %s: synchronous is %d, want 2 (FULL)", s.path, sync)
	}
	return nil
}

// dsn builds a driver DSN for path. The path is given as a file: URI so
// that characters like ? and # in it cannot be taken for parameters.
func dsn(path string, params ...string) string {
	escaped := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return "file:" + escaped + "?" + strings.Join(params, "&")
}

func migrate(ctx context.Context, db *sql.DB, logger *slog.Logger) error {
	fsys, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys,
		goose.WithTableName(migrationTable),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(storeutil.MigrationLogger(logger)),
		goose.WithVerbose(true),
	)
	if err != nil {
		return err
	}
	// No Close: it would close db, which the store keeps using.
	results, err := p.Up(ctx)
	storeutil.LogMigrations(ctx, logger, "sqlite", results)
	return err
}

// Close closes the readers, then the writer, whose close as the last
// connection checkpoints the WAL into the main file. Calls made
// afterwards fail with EUNAVAILABLE.
func (s *Store) Close() error {
	s.closed.Store(true)
	var errs []error
	if s.lookups != nil {
		errs = append(errs, s.lookups.close())
	}
	for _, st := range s.statements() {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	if s.reader != nil {
		errs = append(errs, s.reader.Close())
	}
	if s.writer != nil {
		errs = append(errs, s.writer.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

func (s *Store) statements() []*sql.Stmt {
	return append([]*sql.Stmt{
		s.listInstallations, s.listInstallationsBy, s.forgePending,
		s.saveInstallation, s.lockedInstallation, s.updateState,
		s.putValue, s.deleteValue, s.deleteTenantData,
	}, s.listValues[:]...)
}
