package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/backup"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/postgres"
)

// The PostgreSQL side of the backup commands: pgBackRest holds the WAL
// archive and the physical backups, tenon's snapshots are logical exports.

const pgBackRestForm = "pgbackrest://STANZA?config=/etc/pgbackrest/pgbackrest.conf&snapshots=file:///var/backups/tenon"

// drillSchema is the only schema a PostgreSQL drill writes: it restores
// into it, in the scratch database, and drops it afterwards.
const drillSchema = "tenon_drill"

// parseBackupTarget checks --backup-url: a target URL, or a pgbackrest://
// URL whose snapshots parameter is the target (with the S3 settings).
func parseBackupTarget(t backup.Target) (*backup.Target, error) {
	if !backup.IsPgBackRestURL(t.URL) {
		return backup.ParseTarget(t)
	}
	p, err := backup.ParsePgBackRestURL(t.URL)
	if err != nil {
		return nil, err
	}
	t.URL = p.Snapshots
	target, err := backup.ParseTarget(t)
	if err != nil {
		return nil, fmt.Errorf("the snapshots parameter: %w", err)
	}
	return target, nil
}

func newPgBackupKit(bc BackupConfig, dsn string, kr *keyring.Keyring, target *backup.Target, logger *slog.Logger) (*backupKit, error) {
	p, err := backup.ParsePgBackRestURL(bc.Target.URL)
	if err != nil {
		return nil, err
	}
	eng := &backup.PgBackRest{Stanza: p.Stanza, Config: p.Config, DSN: dsn, SyncInterval: bc.SyncInterval,
		Now: time.Now, Logger: logger.With("component", "pgbackrest")}
	return &backupKit{engine: eng, pg: eng, keys: kr, db: dsn, mgr: &backup.Manager{
		Engine: eng, Target: target, Keys: kr, Retention: bc.Keep,
		Now: time.Now, Logger: logger.With("component", "backup"),
	}}, nil
}

// pgSnapshot is a PostgreSQL backup: a pgBackRest backup (full when none
// is under a week old, differential otherwise), then a logical snapshot
// of tenon's tables at the snapshot target, then pruning of those.
func (k *backupKit) pgSnapshot(ctx context.Context) (*backup.PgBackRestBackup, *backup.Manifest, error) {
	b, err := k.pg.Backup(ctx)
	if err != nil {
		return nil, nil, err
	}
	man, err := k.mgr.Snapshot(ctx)
	if err != nil {
		return b, nil, fmt.Errorf("pgBackRest backup %s is stored, the logical snapshot failed: %w", b.Label, err)
	}
	return b, man, nil
}

func runPgBackup(ctx context.Context, env Env, kit *backupKit, bc BackupConfig) error {
	b, man, err := kit.pgSnapshot(ctx)
	if err != nil {
		return fmt.Errorf("%w\nfix the cause and run tenon backup again", err)
	}
	fmt.Fprintf(env.Stdout, "pgBackRest %s backup %s of stanza %s stored: %s\n", b.Type, b.Label, kit.pg.Stanza, humanBytes(b.Size))
	fmt.Fprintf(env.Stdout, "logical snapshot %s stored at %s: %s, %d tenants, sha256 %s, read back and verified\n",
		man.Name, kit.mgr.Target, humanBytes(man.Size), man.Tables["installations"], man.SHA256)
	deleted, err := kit.mgr.Prune(ctx)
	if err != nil {
		return fmt.Errorf("the backups are stored, but pruning old snapshots failed: %w; run tenon backup again later", err)
	}
	if len(deleted) > 0 {
		fmt.Fprintf(env.Stdout, "pruned %d snapshots beyond %d daily, %d weekly, %d monthly: %s\n",
			len(deleted), bc.Keep.Daily, bc.Keep.Weekly, bc.Keep.Monthly, strings.Join(deleted, ", "))
	}
	return nil
}

// listPgBackRest adds pgBackRest's backup sets to tenon backup list.
func listPgBackRest(ctx context.Context, w io.Writer, pg *backup.PgBackRest, now time.Time) {
	in, err := pg.Info(ctx)
	if err != nil {
		fmt.Fprintf(w, "pgbackrest\tarchive\t-\t-\t-\t-\tunreadable: %v\n", err)
		return
	}
	archive := "no WAL archived yet"
	if in.ArchiveMax != "" {
		archive = "WAL archived up to " + in.ArchiveMax + "; restore with --at for a point in time"
	}
	fmt.Fprintf(w, "latest\tpgbackrest-archive\t-\t-\t-\t-\t%s\n", archive)
	for i := len(in.Backups) - 1; i >= 0; i-- {
		b := in.Backups[i]
		fmt.Fprintf(w, "%s\tpgbackrest-%s\t%s\t%s\t-\t-\tpgBackRest backup set\n", b.Label, b.Type, humanBytes(b.Size), age(now, b.Stop))
	}
}

// runPgRestore restores a PostgreSQL store: from pgBackRest into a data
// directory (the newest state, or --at), or a logical snapshot into an
// empty database (--to postgres://...).
func runPgRestore(ctx context.Context, env Env, kit *backupKit, when time.Time, snapshot, to string) error {
	start := time.Now()
	if isPostgres(to) {
		if !when.IsZero() {
			return errors.New("--at restores from pgBackRest's archive into a data directory (--to DATADIR); a logical snapshot (--to postgres://...) is one point in time: name it with --snapshot")
		}
		name := snapshot
		if name == "latest" || name == "" {
			name = ""
		}
		man, n, err := restoreLogical(ctx, kit, name, to, filepath.Join(os.TempDir(), fmt.Sprintf("tenon-restore-%d.jsonl", time.Now().UnixNano())))
		if err != nil {
			return restoreAdvice(err)
		}
		fmt.Fprintf(env.Stdout, "restored logical snapshot %s (taken %s, %d tenants, %d rows) into %s in %s; checksum and row counts passed\n",
			man.Name, man.CreatedAt.Format(time.RFC3339), man.Tables["installations"], n, redactDSN(to), time.Since(start).Round(time.Millisecond))
		return nil
	}
	if snapshot != "" {
		return errors.New("--snapshot restores a logical snapshot into a database: --to postgres://...; a data directory is restored from pgBackRest (latest, or --at)")
	}
	if !filepath.IsAbs(to) {
		return fmt.Errorf("--to %q: give the data directory as an absolute path (or a postgres:// DSN for a logical snapshot)", to)
	}
	fmt.Fprintf(env.Stderr, "restoring stanza %s from pgBackRest into %s ...\n", kit.pg.Stanza, to)
	if _, err := kit.pg.RestoreReplica(ctx, when, to); err != nil {
		return restoreAdvice(err)
	}
	state := "the end of the WAL archive"
	if !when.IsZero() {
		state = when.UTC().Format(time.RFC3339Nano)
	}
	fmt.Fprintf(env.Stdout, "restored the newest pgBackRest backup into %s in %s, set to replay archived WAL up to %s\n", to, time.Since(start).Round(time.Millisecond), state)
	fmt.Fprintf(env.Stdout, "next: start PostgreSQL on %s (it replays the archive, then promotes), check it, then start tenon\n", to)
	return nil
}

// restoreLogical restores a logical snapshot (name, or the newest) into
// the database at dsn, whose tenon schema is created first and must hold
// no rows. tmp is where the decrypted export lies meanwhile.
func restoreLogical(ctx context.Context, kit *backupKit, name, dsn, tmp string) (*backup.Manifest, int64, error) {
	defer os.Remove(tmp)
	man, err := kit.mgr.RestoreSnapshot(ctx, name, tmp)
	if err != nil {
		return nil, 0, err
	}
	st, err := postgres.Open(ctx, dsn, postgres.Options{SecretBox: kit.keys})
	if err != nil {
		return nil, 0, fmt.Errorf("open the database to restore into: %w", err)
	}
	st.Close()
	in, err := backup.ImportLogical(ctx, tmp, dsn)
	if err != nil {
		return nil, 0, err
	}
	var n int64
	for _, c := range in.Tables {
		n += c
	}
	return man, n, nil
}

// redactDSN drops the password from a DSN for messages.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "the database"
	}
	return u.Redacted()
}

// withSchema sets the search_path of a postgres:// DSN.
func withSchema(dsn, schema string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", errors.New("the scratch DSN cannot be parsed")
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// pgDrill proves the PostgreSQL backups: pgbackrest check (archiving
// works), a pgBackRest backup set exists, and the newest logical
// snapshot restores into the tenon_drill schema of the scratch database
// (the live one when scratch is empty) and passes the drill's checks.
// The schema is dropped afterwards.
func (k *backupKit) pgDrill(ctx context.Context, src tenon.Store, scratch string, sample int, sync func(context.Context) error) (*backup.DrillReport, error) {
	if scratch == "" {
		scratch = k.db
	}
	drillDSN, err := withSchema(scratch, drillSchema)
	if err != nil {
		return &backup.DrillReport{Problems: []string{err.Error()}}, err
	}
	dropSchema := func() error {
		conn, err := pgx.Connect(ctx, scratch)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+drillSchema+" CASCADE")
		return err
	}
	if err := dropSchema(); err != nil {
		err = fmt.Errorf("prepare the scratch schema %s: %w", drillSchema, err)
		return &backup.DrillReport{Problems: []string{err.Error()}}, err
	}
	defer dropSchema()
	work, err := os.MkdirTemp("", "tenon-drill-")
	if err != nil {
		return &backup.DrillReport{Problems: []string{err.Error()}}, err
	}
	defer os.RemoveAll(work)
	rep, err := k.mgr.Drill(ctx, work, backup.DrillOptions{
		Source: src, SourcePath: k.db, Sample: sample, Snapshot: "latest", Sync: sync,
		Open: func(ctx context.Context, file string) (tenon.Store, error) {
			conn, err := pgx.Connect(ctx, scratch)
			if err != nil {
				return nil, err
			}
			_, err = conn.Exec(ctx, "CREATE SCHEMA "+drillSchema)
			conn.Close(ctx)
			if err != nil {
				return nil, fmt.Errorf("create the scratch schema: %w", err)
			}
			st, err := postgres.Open(ctx, drillDSN, postgres.Options{SecretBox: k.keys})
			if err != nil {
				return nil, err
			}
			if _, err := backup.ImportLogical(ctx, file, drillDSN); err != nil {
				st.Close()
				return nil, fmt.Errorf("load the snapshot into the scratch schema: %w", err)
			}
			return st, nil
		},
	})
	if rep != nil {
		rep.From = "logical " + rep.From
		if cerr := k.pg.Check(ctx); cerr != nil {
			rep.OK = false
			rep.Problems = append(rep.Problems, "WAL archiving does not work, so a restore would lose everything since the last backup: "+cerr.Error())
		}
		if in, ierr := k.pg.Info(ctx); ierr != nil {
			rep.OK = false
			rep.Problems = append(rep.Problems, ierr.Error())
		} else if len(in.Backups) == 0 {
			rep.OK = false
			rep.Problems = append(rep.Problems, "pgBackRest holds no backup set of stanza "+k.pg.Stanza+": take one with tenon backup")
		}
	}
	if saveErr := k.mgr.SaveDrill(ctx, rep); saveErr != nil && err == nil {
		rep.Problems = append(rep.Problems, "the report could not be stored at the target: "+saveErr.Error())
	}
	return rep, err
}

func runPgDrill(ctx context.Context, env Env, kit *backupKit, scratch string, sample int, asJSON bool) error {
	if scratch != "" && !isPostgres(scratch) {
		return fmt.Errorf("-scratch %q: a PostgreSQL drill restores into a database: give a postgres:// DSN (or leave -scratch out to use --db)", scratch)
	}
	src, err := postgres.Open(ctx, kit.db, postgres.Options{SecretBox: kit.keys})
	if err != nil {
		return fmt.Errorf("open the live database: %w (check --db)", err)
	}
	defer src.Close()
	rep, err := kit.pgDrill(ctx, src, scratch, sample, nil)
	return reportDrill(env, rep, err, asJSON)
}
