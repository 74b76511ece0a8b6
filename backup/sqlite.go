package backup

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/benbjohnson/litestream"
	lsfile "github.com/benbjohnson/litestream/file"
	lss3 "github.com/benbjohnson/litestream/s3"
	_ "modernc.org/sqlite" // the "sqlite" driver, shared with the store
)

// SQLite is the Engine of a SQLite store file. Replication is litestream's
// (embedded): every committed WAL frame goes to the target's replica/
// within SyncInterval. Snapshots are VACUUM INTO copies.
type SQLite struct {
	Path   string
	Target *Target
	Logger *slog.Logger
	// SyncInterval is how often WAL changes are shipped; 0 means 1s.
	SyncInterval time.Duration
}

var _ Engine = (*SQLite)(nil)

// Kind names the engine in manifests.
func (e *SQLite) Kind() string { return "sqlite" }

func (e *SQLite) logger() *slog.Logger {
	if e.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Logger
}

func (e *SQLite) replicaClient() (litestream.ReplicaClient, error) {
	t := e.Target
	if t == nil {
		return nil, errors.New("no backup target: set --backup-url / TENON_BACKUP_URL")
	}
	if t.scheme == "file" {
		c := lsfile.NewReplicaClient(filepath.Join(t.prefix, "replica"))
		c.SetLogger(e.logger())
		return c, nil
	}
	c := lss3.NewReplicaClient()
	c.Bucket, c.Path, c.Region = t.bucket, path.Join(t.prefix, "replica"), t.Region
	c.AccessKeyID, c.SecretAccessKey = t.AccessKeyID, t.SecretAccessKey
	if t.Endpoint != "" {
		c.Endpoint, c.ForcePathStyle = t.Endpoint, true
	}
	c.SetLogger(e.logger())
	return c, nil
}

// Replicate starts shipping changes of the database file. The file must
// exist (the store opened it). Close the result to stop; it ships what
// is committed by then first.
func (e *SQLite) Replicate(ctx context.Context) (Replication, error) {
	client, err := e.replicaClient()
	if err != nil {
		return nil, err
	}
	interval := e.SyncInterval
	if interval <= 0 {
		interval = time.Second
	}
	db := litestream.NewDB(e.Path)
	db.MonitorInterval = interval
	r := litestream.NewReplicaWithClient(db, client)
	r.SyncInterval = interval
	db.Replica = r
	st := litestream.NewStore([]*litestream.DB{db}, litestream.DefaultCompactionLevels)
	st.Logger = e.logger()
	db.SetLogger(e.logger())
	if err := st.Open(ctx); err != nil {
		return nil, fmt.Errorf("start replication of %s to %s: %w", e.Path, e.Target, err)
	}
	rep := &sqliteReplication{store: st, db: db, stop: make(chan struct{}), done: make(chan struct{})}
	go rep.watch(interval)
	return rep, nil
}

type sqliteReplication struct {
	store *litestream.Store
	db    *litestream.DB

	mu     sync.Mutex
	synced time.Time // start of the newest successful sync: all committed before it is shipped
	err    error     // of the last sync

	stop, done chan struct{}
	closeOnce  sync.Once
}

// watch ships everything committed every interval and notes when it
// started each sync that succeeded: whatever was committed before that
// moment is at the target. litestream's own monitor ships on the same
// interval; this loop is what makes the lag metric exact rather than a
// comparison of positions that may not yet include the newest WAL frames.
func (r *sqliteReplication) watch(interval time.Duration) {
	defer close(r.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-r.stop; cancel() }()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		_ = r.Sync(ctx) // the error is kept in Status
	}
}

func (r *sqliteReplication) Status() ReplicationStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return ReplicationStatus{SyncedAt: r.synced, Err: r.err}
}

func (r *sqliteReplication) Sync(ctx context.Context) error {
	start := time.Now()
	err := r.db.SyncAndWait(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.err = fmt.Errorf("sync replica: %w", err)
		return r.err
	}
	r.err = nil
	if start.After(r.synced) {
		r.synced = start
	}
	return nil
}

func (r *sqliteReplication) Close(ctx context.Context) error {
	var err error
	r.closeOnce.Do(func() {
		close(r.stop)
		<-r.done
		err = r.store.Close(ctx)
	})
	return err
}

// RestoreReplica rebuilds the database at to from the replica, as of at
// (zero: the newest state), and returns the time of the restored state.
func (e *SQLite) RestoreReplica(ctx context.Context, at time.Time, to string) (time.Time, error) {
	client, err := e.replicaClient()
	if err != nil {
		return time.Time{}, err
	}
	if err := client.Init(ctx); err != nil {
		return time.Time{}, fmt.Errorf("open replica at %s: %w", e.Target, err)
	}
	r := litestream.NewReplicaWithClient(e.logDB(), client)
	if !at.IsZero() {
		// The state at a moment after the newest write is the newest
		// state; before the replica's oldest base copy it is out of reach.
		from, newest, err := r.TimeBounds(ctx)
		if err != nil {
			return time.Time{}, classifyRestoreError(err, e.Target)
		}
		switch {
		case from.IsZero() && newest.IsZero():
			return time.Time{}, fmt.Errorf("%w at %s: the replica is empty", ErrNoBackup, e.Target)
		case at.Before(from):
			return time.Time{}, fmt.Errorf("%w: the replica reaches back to %s, not to %s; restore a snapshot taken before that time (tenon backup list, --snapshot NAME)",
				ErrNoBackup, from.UTC().Format(time.RFC3339), at.UTC().Format(time.RFC3339))
		case !at.Before(newest):
			at = time.Time{}
		}
	}
	opt := litestream.NewRestoreOptions()
	opt.OutputPath, opt.Timestamp = to, at
	opt.IntegrityCheck = litestream.IntegrityCheckFull
	pointAt, err := r.CalcRestoreTarget(ctx, opt)
	if err != nil {
		return time.Time{}, classifyRestoreError(err, e.Target)
	}
	if err := r.Restore(ctx, opt); err != nil {
		os.Remove(to)
		return time.Time{}, classifyRestoreError(err, e.Target)
	}
	// A leftover replication state from the file that was lost would make
	// the next replication believe it already shipped what it has not.
	if err := os.RemoveAll(to + litestream.MetaDirSuffix); err != nil {
		return time.Time{}, fmt.Errorf("remove stale replication state: %w", err)
	}
	os.Remove(to + "-txid")
	return pointAt, nil
}

func classifyRestoreError(err error, t *Target) error {
	switch {
	case errors.Is(err, litestream.ErrNoSnapshots) || strings.Contains(err.Error(), "no matching backup") || strings.Contains(err.Error(), "transaction not available") || strings.Contains(err.Error(), "no backups found") || strings.Contains(err.Error(), "no snapshot"):
		return fmt.Errorf("%w at %s (%v): check --backup-url, or restore a snapshot with --snapshot", ErrNoBackup, t, err)
	case strings.Contains(err.Error(), "non-contiguous") || strings.Contains(err.Error(), "gap") || strings.Contains(err.Error(), "no such file"):
		return fmt.Errorf("%w: the replica at %s is missing part of its history (%v); restore the newest snapshot with --snapshot and check what deletes files at the target", ErrBroken, t, err)
	}
	return fmt.Errorf("restore from replica at %s: %w", t, err)
}

// SnapshotTo writes a consistent copy of the live database to path with
// VACUUM INTO: one read transaction, so it never blocks the writer.
func (e *SQLite) SnapshotTo(ctx context.Context, to string) error {
	db, err := sql.Open("sqlite", "file:"+e.Path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		return fmt.Errorf("open %s: %w", e.Path, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", to); err != nil {
		return fmt.Errorf("copy %s: %w", e.Path, err)
	}
	return nil
}

// Inspect checks a database file (PRAGMA integrity_check) and counts the
// rows of its tables. quick skips the integrity check, for the source.
func (e *SQLite) Inspect(ctx context.Context, file string, quick bool) (*Inspection, error) {
	if _, err := os.Stat(file); err != nil {
		return nil, fmt.Errorf("inspect %s: %w", file, err)
	}
	db, err := sql.Open("sqlite", "file:"+file+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", file, err)
	}
	defer conn.Close()
	// One read transaction, so the counts and the newest write agree even
	// while the source is being written.
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	in := &Inspection{Tables: map[string]int64{}}
	if !quick {
		rows, err := tx.QueryContext(ctx, "PRAGMA integrity_check")
		if err != nil {
			return nil, fmt.Errorf("integrity check of %s: %w", file, err)
		}
		var problems []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				rows.Close()
				return nil, err
			}
			if s != "ok" {
				problems = append(problems, s)
			}
		}
		rows.Close()
		if len(problems) > 0 {
			return nil, fmt.Errorf("%w: integrity check of %s: %s", ErrBroken, file, strings.Join(problems, "; "))
		}
	}
	// litestream's own bookkeeping tables (_litestream_*) are not data.
	rows, err := tx.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table'
		AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE '\_litestream\_%' ESCAPE '\' ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list tables of %s: %w", file, err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		tables = append(tables, n)
	}
	rows.Close()
	for _, n := range tables {
		var c int64
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM "`+strings.ReplaceAll(n, `"`, `""`)+`"`).Scan(&c); err != nil {
			return nil, fmt.Errorf("count %s in %s: %w", n, file, err)
		}
		in.Tables[n] = c
		var newest sql.NullString
		if err := tx.QueryRowContext(ctx, `SELECT max(updated_at) FROM "`+strings.ReplaceAll(n, `"`, `""`)+`"`).Scan(&newest); err == nil && newest.Valid {
			if t, err := time.Parse("2006-01-02T15:04:05.000000Z", newest.String); err == nil && t.After(in.NewestWrite) {
				in.NewestWrite = t
			}
		}
	}
	return in, nil
}

// ReplicaUpdatedAt returns the time of the newest state the replica can
// restore, or ErrNoBackup when it holds none.
func (e *SQLite) ReplicaUpdatedAt(ctx context.Context) (time.Time, error) {
	client, err := e.replicaClient()
	if err != nil {
		return time.Time{}, err
	}
	if err := client.Init(ctx); err != nil {
		return time.Time{}, fmt.Errorf("open replica at %s: %w", e.Target, err)
	}
	r := litestream.NewReplicaWithClient(e.logDB(), client)
	t, err := r.CalcRestoreTarget(ctx, litestream.NewRestoreOptions())
	if err != nil {
		return time.Time{}, classifyRestoreError(err, e.Target)
	}
	return t, nil
}

// logDB is a litestream.DB that is never opened, only there to carry the
// logger into restores (a replica without a DB logs to slog's default).
func (e *SQLite) logDB() *litestream.DB {
	db := litestream.NewDB(e.Path)
	db.Logger = e.logger()
	return db
}
