package backup

import (
	"context"
	"errors"
	"time"
)

// Engine is the part of backups that depends on the store technology.
// Locations (to, file) are paths on this machine: a database file for
// SQLite, a data directory for a PostgreSQL engine.
type Engine interface {
	// Kind names the engine ("sqlite"); manifests record it so a snapshot
	// is never restored by the wrong engine.
	Kind() string
	// Replicate starts continuous replication to the target and returns
	// at once; it runs until the Replication is closed.
	Replicate(ctx context.Context) (Replication, error)
	// SnapshotTo writes a consistent copy of the live database to to,
	// which must not exist.
	SnapshotTo(ctx context.Context, to string) error
	// RestoreReplica rebuilds the database at to (which must not exist)
	// from the continuous replica as of at, or the newest state when at
	// is zero. It returns the time of the state restored. A target with
	// nothing to restore gives ErrNoBackup; a replica with a hole in its
	// history gives ErrBroken.
	RestoreReplica(ctx context.Context, at time.Time, to string) (time.Time, error)
	// Inspect checks the database at file for corruption (skipped when
	// quick) and counts its rows, in one consistent read.
	Inspect(ctx context.Context, file string, quick bool) (*Inspection, error)
}

// Replication is continuous replication in progress. Its methods are safe
// for concurrent use.
type Replication interface {
	// Status reports when the replica last held every committed
	// transaction.
	Status() ReplicationStatus
	// Sync ships everything committed so far and waits for it.
	Sync(ctx context.Context) error
	// Close ships what is committed and stops.
	Close(ctx context.Context) error
}

// ReplicationStatus is what the lag metric is made of.
type ReplicationStatus struct {
	// SyncedAt is the newest moment of which the replica is known to
	// hold every transaction committed before it; zero before the first
	// sync.
	SyncedAt time.Time
	// Err is the error of the last sync, if it failed.
	Err error
}

// Inspection is what Engine.Inspect found.
type Inspection struct {
	// Tables maps each table to its row count.
	Tables map[string]int64
	// NewestWrite is the newest updated_at of any row: the age of the
	// newest write a restored copy holds is its recovery point.
	NewestWrite time.Time
}

// Errors that callers tell apart; each wrapping error says what to do.
var (
	// ErrNoBackup means the target holds nothing to restore.
	ErrNoBackup = errors.New("no backup to restore")
	// ErrBroken means a backup exists but is incomplete or corrupt.
	ErrBroken = errors.New("backup is damaged")
	// ErrWrongKey means the key file cannot decrypt a snapshot.
	ErrWrongKey = errors.New("the key file does not decrypt this backup")
)
