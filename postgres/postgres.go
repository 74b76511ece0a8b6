// Package postgres implements tenon.Store on PostgreSQL, for deployments
// with several nodes sharing one database. It also implements
// tenon.InstallationWatcher with LISTEN/NOTIFY, so a node learns within
// milliseconds that another node changed an installation.
//
// The store lives in the first schema of the connection's search_path, so
// several deployments (or parallel test runs) can share a database, each
// with its own schema: add search_path=<schema> to the DSN.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/storeutil"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationTable is named after the project so that a schema shared with
// other goose users keeps the two histories apart.
const migrationTable = "tenon_migrations"

var (
	_ tenon.Store               = (*Store)(nil)
	_ tenon.InstallationWatcher = (*Store)(nil)
)

// Options configure a Store.
type Options struct {
	// SecretBox seals shared secrets and install payloads. Required.
	SecretBox tenon.SecretBox
	// Now is the clock for the timestamps the store records. Default time.Now.
	Now func() time.Time
	// Logger receives migration progress. Default: discard.
	Logger *slog.Logger
}

// Store is a tenon.Store on a PostgreSQL connection pool.
type Store struct {
	pool    *pgxpool.Pool
	box     tenon.SecretBox
	now     func() time.Time
	schema  string
	channel string // NOTIFY channel of this schema's installation changes
	closed  atomic.Bool
}

// DefaultConnectTimeout bounds how long opening one connection may take
// when the DSN sets no connect_timeout. Without a bound, a request that
// needs a new connection to a database that does not answer (a host gone
// without a reset) would wait as long as the operating system keeps
// trying; with it, the request fails with EUNAVAILABLE and 503.
const DefaultConnectTimeout = 5 * time.Second

// Open connects to the database at dsn (a URL or key=value string, as
// pgx accepts it), and migrates the schema. Several nodes may call Open at
// once: migrations run one node at a time under an advisory lock.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	if opts.SecretBox == nil {
		return nil, errors.New("postgres: open: Options.SecretBox is required (secrets are never stored in plain text)")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors quote the DSN and redact passwords only on a
		// best-effort basis, so the detail stays out of logs.
		return nil, errors.New("postgres: open: the DSN cannot be parsed (details withheld: they may contain the password)")
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	s := &Store{pool: pool, box: opts.SecretBox, now: opts.Now}
	if err := s.init(ctx, opts.Logger); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) init(ctx context.Context, logger *slog.Logger) error {
	var schema *string
	var channel string
	err := s.pool.QueryRow(ctx,
		`SELECT current_schema(), 'tenon_installations_' || left(md5(coalesce(current_schema(), '')), 8)`,
	).Scan(&schema, &channel)
	if err != nil {
		return fmt.Errorf("postgres: open: %w", err)
	}
	if schema == nil {
		return errors.New("postgres: open: no schema of the search_path exists; create it first")
	}
	s.schema, s.channel = *schema, channel
	if err := migrate(ctx, s.pool.Config().ConnConfig, s.schema, logger); err != nil {
		return fmt.Errorf("postgres: migrate schema %q: %w", s.schema, err)
	}
	return nil
}

func migrate(ctx context.Context, cfg *pgx.ConnConfig, schema string, logger *slog.Logger) error {
	fsys, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return err
	}
	// goose runs on database/sql. Its connections are its own and closed
	// afterwards, so a session lock can never outlive the migration in a
	// pooled connection, whatever goes wrong.
	db := stdlib.OpenDB(*cfg.Copy())
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithTableName(migrationTable),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSessionLocker(advisoryLocker{id: migrationLockID(schema)}),
		goose.WithSlog(storeutil.MigrationLogger(logger)),
		goose.WithVerbose(true),
		// Migrations are numbered as features land, not always in order
		// (a database may have 00011 before 00009 arrives); each one is
		// independent of the numbers around it, so a missing lower one is
		// applied rather than refused.
		goose.WithAllowOutofOrder(true),
	)
	if err != nil {
		return err
	}
	results, err := p.Up(ctx)
	storeutil.LogMigrations(ctx, logger, "postgres", results)
	return err
}

// migrationLockID is the advisory lock serializing migrations of one
// schema. Other schemas in the same database migrate independently.
func migrationLockID(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("tenon migrations\x00" + schema))
	return int64(h.Sum64())
}

// Close closes the pool. Running watchers end with an error; calls made
// afterwards fail with EUNAVAILABLE.
func (s *Store) Close() error {
	s.closed.Store(true)
	s.pool.Close()
	return nil
}

// WatchInstallations implements tenon.InstallationWatcher. It holds one
// connection of its own, outside the pool, for as long as it runs, and
// calls fn from that goroutine, so fn should be quick (drop a cache entry).
// It returns nil when ctx ends. Any other return means notifications may
// have been missed: the caller should treat every cached tenant as stale
// before watching again.
//
// Once it listens, it calls fn("") — every tenant — once: a change
// committed after the caller last cleared its cache but before the
// LISTEN took effect (during an outage, say) was never notified, so a
// watch that has just connected, or reconnected, starts from a clean
// cache.
func (s *Store) WatchInstallations(ctx context.Context, fn func(clientKey string)) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return s.fail("watch installations", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return s.fail("watch installations", err)
	}
	fn("")
	for {
		n, err := conn.WaitForNotification(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return s.fail("watch installations", err)
		}
		fn(n.Payload)
	}
}
