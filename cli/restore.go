package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tenon-dev/tenon/backup"
)

const restoreUsage = `Usage: tenon restore [--at TIME | --snapshot NAME] --to PATH_OR_DSN [flags]

Restores the backup at --backup-url into a new SQLite file at PATH:
the newest replicated state by default, the state at TIME (RFC 3339, such
as 2026-05-01T09:30:00Z, within the replication window) with --at, or a
snapshot (see tenon backup list; "latest" for the newest) with --snapshot.
PATH must not exist. To put a node back, stop it, restore to a new path,
check it, and point --db at it (or move it in place).

With a PostgreSQL store (--db postgres://..., --backup-url pgbackrest://...),
--to DATADIR restores pgBackRest's newest backup into that empty data
directory, set to replay the WAL archive to its end or to --at TIME; and
--to postgres://... restores a logical snapshot (--snapshot NAME, newest by
default) into that database, which must hold no tenon data.

`

func runRestore(ctx context.Context, env Env, _ App, args []string) error {
	var at, snapshot, to string
	fs, vals, bc, err := loadBackupCommand("restore", restoreUsage, env, args, func(fs *flag.FlagSet) {
		fs.StringVar(&at, "at", "", "restore the state at this time (RFC 3339)")
		fs.StringVar(&snapshot, "snapshot", "", "restore this snapshot (a name from tenon backup list, or latest)")
		fs.StringVar(&to, "to", "", "path of the new SQLite file; for PostgreSQL a data directory or a postgres:// DSN (required)")
	})
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if to == "" {
		return errors.New("set --to to the path of the new database file")
	}
	if at != "" && snapshot != "" {
		return errors.New("--at and --snapshot exclude each other: a snapshot is one point in time")
	}
	var when time.Time
	if at != "" {
		if when, err = time.Parse(time.RFC3339, at); err != nil {
			return fmt.Errorf("--at %q: want RFC 3339 such as 2026-05-01T09:30:00Z", at)
		}
	}
	// The target database's own path is not needed: the engine only reads
	// the backup. --db still picks the engine (SQLite unless postgres://).
	kit, err := newBackupKit(bc, vals["db"], vals["secret-key-file"], newLogger(env, "warn"))
	if err != nil {
		return err
	}
	kit.mgr.Progress = newProgress(env)
	if kit.pg != nil {
		return runPgRestore(ctx, env, kit, when, snapshot, to)
	}
	if _, err := os.Stat(to); err == nil {
		return fmt.Errorf("%s exists; restore to a new path (a restore never overwrites a database)", to)
	}
	start := time.Now()
	if snapshot != "" {
		name := snapshot
		if name == "latest" {
			name = ""
		}
		man, err := kit.mgr.RestoreSnapshot(ctx, name, to)
		if err != nil {
			return restoreAdvice(err)
		}
		fmt.Fprintf(env.Stdout, "restored snapshot %s (taken %s, %d tenants) to %s in %s; checksum and integrity check passed\n",
			man.Name, man.CreatedAt.Format(time.RFC3339), man.Tables["installations"], to, time.Since(start).Round(time.Millisecond))
		return nil
	}
	fmt.Fprintf(env.Stderr, "restoring from the replica at %s ...\n", kit.mgr.Target)
	point, err := kit.engine.RestoreReplica(ctx, when, to)
	if err != nil {
		return restoreAdvice(err)
	}
	fmt.Fprintf(env.Stdout, "restored the replica's state of %s to %s in %s; integrity check passed\n",
		point.UTC().Format(time.RFC3339Nano), to, time.Since(start).Round(time.Millisecond))
	return nil
}

// restoreAdvice adds the next step to a failed restore.
func restoreAdvice(err error) error {
	switch {
	case errors.Is(err, backup.ErrWrongKey):
		return fmt.Errorf("%w\nnext: find the key file in escrow (docs/OPERATIONS.md, key file escrow) and pass it with --secret-key-file", err)
	case errors.Is(err, backup.ErrNoBackup):
		return fmt.Errorf("%w\nnext: check --backup-url points at this node's backups (tenon backup list)", err)
	case errors.Is(err, backup.ErrBroken):
		return fmt.Errorf("%w\nnext: try an older snapshot (tenon backup list, then --snapshot NAME)", err)
	}
	return fmt.Errorf("%w\nnext: check the target is reachable with tenon backup list", err)
}
