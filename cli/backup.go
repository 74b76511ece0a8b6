package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	isatty "github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"

	"github.com/tenon-dev/tenon/backup"
	"github.com/tenon-dev/tenon/keyring"
)

// BackupConfig is the resolved backup settings of serve and of the backup,
// restore and drill commands.
type BackupConfig struct {
	// Target.URL is empty when backups are off.
	Target         backup.Target
	SyncInterval   time.Duration
	Schedule       time.Duration // 0: no scheduled snapshots
	DrillSchedule  time.Duration // 0: no scheduled drills
	Keep           backup.Retention
	RestoreIfEmpty bool
}

func parseBackupSettings(c *Config, vals values, add func(string, ...any)) {
	c.Backup = parseBackupValues(vals, add)
	pgURL := backup.IsPgBackRestURL(c.Backup.Target.URL)
	switch {
	case c.Backup.Target.URL != "" && isPostgres(c.DB) && !pgURL:
		add("--backup-url / TENON_BACKUP_URL: a PostgreSQL store is backed up by pgBackRest; name its stanza, %s (docs/CONFIGURATION.md)", pgBackRestForm)
	case pgURL && !isPostgres(c.DB):
		add("--backup-url / TENON_BACKUP_URL: pgbackrest:// backs up a PostgreSQL store; a SQLite store takes file:///dir or s3://bucket/prefix")
	case pgURL && c.Backup.RestoreIfEmpty:
		add("--restore-if-empty covers the SQLite store; restore a PostgreSQL data directory with tenon restore --to DATADIR before PostgreSQL starts (docs/OPERATIONS.md)")
	}
	if c.Backup.RestoreIfEmpty && c.Backup.Target.URL == "" {
		add("--restore-if-empty needs --backup-url / TENON_BACKUP_URL: the backup to restore from")
	}
}

func parseBackupValues(vals values, add func(string, ...any)) BackupConfig {
	bc := BackupConfig{Target: backup.Target{
		URL: vals["backup-url"], Endpoint: vals["backup-s3-endpoint"], Region: vals["backup-s3-region"],
		AccessKeyID: vals["backup-s3-access-key-id"], SecretAccessKey: vals["backup-s3-secret-access-key"],
	}}
	if bc.Target.URL != "" {
		if _, err := parseBackupTarget(bc.Target); err != nil {
			add("--backup-url / TENON_BACKUP_URL: %v", err)
		}
	}
	var err error
	if bc.SyncInterval, err = time.ParseDuration(vals["backup-sync-interval"]); err != nil || bc.SyncInterval <= 0 {
		add("--backup-sync-interval / TENON_BACKUP_SYNC_INTERVAL must be a positive duration such as 1s")
	}
	if bc.Schedule, err = parseSchedule(vals["backup-schedule"]); err != nil {
		add("--backup-schedule / TENON_BACKUP_SCHEDULE: %v", err)
	}
	if bc.DrillSchedule, err = parseSchedule(vals["drill-schedule"]); err != nil {
		add("--drill-schedule / TENON_DRILL_SCHEDULE: %v", err)
	}
	if bc.Keep, err = parseKeep(vals["backup-keep"]); err != nil {
		add("--backup-keep / TENON_BACKUP_KEEP: %v", err)
	}
	switch strings.ToLower(vals["restore-if-empty"]) {
	case "true", "1", "yes":
		bc.RestoreIfEmpty = true
	case "false", "0", "no", "":
	default:
		add("--restore-if-empty / TENON_RESTORE_IF_EMPTY must be true or false")
	}
	return bc
}

func parseSchedule(s string) (time.Duration, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "off", "":
		return 0, nil
	case "hourly":
		return time.Hour, nil
	case "daily":
		return 24 * time.Hour, nil
	case "weekly":
		return 7 * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not hourly, daily, weekly, off or a duration such as 6h", s)
	}
	return d, nil
}

func parseKeep(s string) (backup.Retention, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return backup.Retention{}, fmt.Errorf("%q: want DAILY,WEEKLY,MONTHLY counts such as 7,4,12", s)
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || v < 0 || v > 1000 {
			return backup.Retention{}, fmt.Errorf("%q: want DAILY,WEEKLY,MONTHLY counts such as 7,4,12", s)
		}
		n[i] = v
	}
	return backup.Retention{Daily: n[0], Weekly: n[1], Monthly: n[2]}, nil
}

// backupKit is the engine and snapshot manager of one store: a SQLite
// file (sqlite set) or a PostgreSQL database backed up by pgBackRest (pg
// set).
type backupKit struct {
	engine backup.Engine
	sqlite *backup.SQLite
	pg     *backup.PgBackRest
	mgr    *backup.Manager
	keys   *keyring.Keyring
	db     string
}

func newBackupKit(bc BackupConfig, db, keyFile string, logger *slog.Logger) (*backupKit, error) {
	pgURL := backup.IsPgBackRestURL(bc.Target.URL)
	if isPostgres(db) && !pgURL {
		return nil, fmt.Errorf("a PostgreSQL store is backed up by pgBackRest: set --backup-url / TENON_BACKUP_URL to %s (see docs/OPERATIONS.md)", pgBackRestForm)
	}
	if pgURL && !isPostgres(db) {
		return nil, errors.New("pgbackrest:// backs up a PostgreSQL store; for the SQLite store set --backup-url to file:///dir or s3://bucket/prefix")
	}
	if bc.Target.URL == "" {
		return nil, errors.New("set --backup-url / TENON_BACKUP_URL to the backup target (file:///dir or s3://bucket/prefix)")
	}
	target, err := parseBackupTarget(bc.Target)
	if err != nil {
		return nil, err
	}
	if keyFile == "" {
		return nil, errors.New("set --secret-key-file / TENON_SECRET_KEY_FILE: snapshots are encrypted with it")
	}
	kr, err := keyring.Load(keyFile)
	if err != nil {
		return nil, fmt.Errorf("secret key file: %w", err)
	}
	if pgURL {
		return newPgBackupKit(bc, db, kr, target, logger)
	}
	eng := &backup.SQLite{Path: db, Target: target, Logger: logger.With("component", "replication"), SyncInterval: bc.SyncInterval}
	return &backupKit{engine: eng, sqlite: eng, keys: kr, db: db, mgr: &backup.Manager{
		Engine: eng, Target: target, Keys: kr, Retention: bc.Keep,
		TempDir: dirOf(db), Now: time.Now, Logger: logger.With("component", "backup"),
	}}, nil
}

func dirOf(path string) string {
	if i := strings.LastIndexByte(path, os.PathSeparator); i >= 0 {
		return path[:i+1]
	}
	return "."
}

// backupCommandSettings are the settings the backup, restore and drill
// commands take: the store's and the backup target's.
func backupCommandSettings() []setting {
	var out []setting
	for _, s := range serveSettings {
		if s.Flag == "config" || s.Flag == "db" || s.Flag == "secret-key-file" || s.Flag == "log-level" ||
			strings.HasPrefix(s.Flag, "backup-") {
			out = append(out, s)
		}
	}
	return out
}

// loadBackupCommand parses a backup command's flags (its own defined by
// own) and resolves the settings like serve does.
func loadBackupCommand(name, usage string, env Env, args []string, own func(*flag.FlagSet)) (*flag.FlagSet, values, BackupConfig, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprint(env.Stderr, usage)
		fs.PrintDefaults()
	}
	defineFlags(fs, backupCommandSettings())
	if own != nil {
		own(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, BackupConfig{}, err
	}
	vals, _, err := resolve(fs, serveSettings, env.Getenv, os.ReadFile)
	if err != nil {
		return nil, nil, BackupConfig{}, err
	}
	var problems []string
	bc := parseBackupValues(vals, func(f string, a ...any) { problems = append(problems, fmt.Sprintf(f, a...)) })
	if len(problems) > 0 {
		return nil, nil, BackupConfig{}, &ConfigError{Problems: problems}
	}
	return fs, vals, bc, nil
}

const backupUsage = `Usage: tenon backup [flags]          take a snapshot now, then prune by --backup-keep
       tenon backup list [-verify] [flags]  list the backups at the target

A snapshot is a consistent copy of the SQLite store, compressed, encrypted
with a key derived from the secret key file and checksummed (SHA-256 in its
manifest). Keep a copy of the key file apart from the backups: without it
no snapshot and no secret in the replica can be read.

With a PostgreSQL store and --backup-url pgbackrest://STANZA?..., a backup is
a pgBackRest backup (full when none is under 7 days old, differential
otherwise) followed by a logical snapshot of tenon's tables, encrypted and
checksummed the same way. Run it as the owner of pgBackRest's repository.

`

func runBackup(ctx context.Context, env Env, _ App, args []string) error {
	list := len(args) > 0 && args[0] == "list"
	if list {
		args = args[1:]
	}
	var verify bool
	fs, vals, bc, err := loadBackupCommand("backup", backupUsage, env, args, func(fs *flag.FlagSet) {
		if list {
			fs.BoolVar(&verify, "verify", false, "download every snapshot and check it against its manifest's SHA-256")
		}
	})
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s (see tenon backup -h)", strings.Join(fs.Args(), " "))
	}
	kit, err := newBackupKit(bc, vals["db"], vals["secret-key-file"], newLogger(env, "warn"))
	if err != nil {
		return err
	}
	kit.mgr.Progress = newProgress(env)
	if list {
		return listBackups(ctx, env.Stdout, kit, verify)
	}
	if kit.pg != nil {
		return runPgBackup(ctx, env, kit, bc)
	}
	if _, err := os.Stat(kit.db); err != nil {
		return fmt.Errorf("database %s: %w (check --db / TENON_DB)", kit.db, err)
	}
	man, err := kit.mgr.Snapshot(ctx)
	if err != nil {
		return fmt.Errorf("%w\nnothing was stored; fix the cause and run tenon backup again", err)
	}
	fmt.Fprintf(env.Stdout, "snapshot %s stored at %s: %s, %d tenants, sha256 %s, read back and verified\n",
		man.Name, kit.mgr.Target, humanBytes(man.Size), man.Tables["installations"], man.SHA256)
	deleted, err := kit.mgr.Prune(ctx)
	if err != nil {
		return fmt.Errorf("the snapshot is stored, but pruning old ones failed: %w; run tenon backup again later", err)
	}
	if len(deleted) > 0 {
		fmt.Fprintf(env.Stdout, "pruned %d snapshots beyond %d daily, %d weekly, %d monthly: %s\n",
			len(deleted), bc.Keep.Daily, bc.Keep.Weekly, bc.Keep.Monthly, strings.Join(deleted, ", "))
	}
	return nil
}

func listBackups(ctx context.Context, out io.Writer, kit *backupKit, verify bool) error {
	list, err := kit.mgr.List(ctx)
	if err != nil {
		return fmt.Errorf("list backups at %s: %w (check --backup-url and the S3 settings)", kit.mgr.Target, err)
	}
	now := time.Now()
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tSIZE\tAGE\tTENANTS\tKEY\tVERIFICATION")
	if kit.pg != nil {
		listPgBackRest(ctx, tw, kit.pg, now)
	} else if at, err := kit.sqlite.ReplicaUpdatedAt(ctx); err == nil {
		fmt.Fprintf(tw, "latest\treplica\t-\t%s\t-\t-\tcontinuous; restore with --at for a point in time\n", age(now, at))
	} else if !errors.Is(err, backup.ErrNoBackup) {
		fmt.Fprintf(tw, "latest\treplica\t-\t-\t-\t-\tunreadable: %v\n", err)
	}
	failed := 0
	for _, m := range list {
		status := "unverified"
		if !m.VerifiedAt.IsZero() {
			status = "read back " + age(now, m.VerifiedAt) + " ago"
		}
		if verify {
			if err := kit.mgr.Verify(ctx, m.Name); err != nil {
				status, failed = "FAILED: "+err.Error(), failed+1
			} else {
				status = "checksum ok now"
			}
		}
		fmt.Fprintf(tw, "%s\tsnapshot\t%s\t%s\t%d\t%s\t%s\n", m.Name, humanBytes(m.Size), age(now, m.CreatedAt), m.Tables["installations"], m.KeyID, status)
	}
	if d, err := kit.mgr.LastDrill(ctx); err == nil && d != nil {
		res := "passed"
		if !d.OK {
			res = "FAILED: " + strings.Join(d.Problems, "; ")
		}
		fmt.Fprintf(tw, "last-drill\tdrill\t-\t%s\t%d\t-\t%s (RPO %s, RTO %s)\n", age(now, d.StartedAt), d.Tenants, res, d.RPO.Round(time.Millisecond), d.RTO.Round(time.Millisecond))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(list) == 0 {
		fmt.Fprintln(out, "no snapshots yet: take one with tenon backup (serve takes them on --backup-schedule)")
	}
	if failed > 0 {
		return fmt.Errorf("%d snapshots fail verification: take a new snapshot now, and check the target's storage", failed)
	}
	return nil
}

func age(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// newProgress shows a progress bar per transfer on a terminal and a few
// plain lines otherwise, so logs of timers and CI stay readable.
func newProgress(env Env) func(label string, total int64) io.Writer {
	f, ok := env.Stderr.(*os.File)
	tty := ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
	return func(label string, total int64) io.Writer {
		if tty {
			return progressbar.NewOptions64(total, progressbar.OptionSetWriter(env.Stderr),
				progressbar.OptionSetDescription(label), progressbar.OptionShowBytes(true),
				progressbar.OptionClearOnFinish(), progressbar.OptionThrottle(100*time.Millisecond))
		}
		return &lineProgress{w: env.Stderr, label: label, total: total}
	}
}

// lineProgress writes "label: 50% (n of m)" at each quarter.
type lineProgress struct {
	w        io.Writer
	label    string
	total, n int64
	shown    int64
}

func (p *lineProgress) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	if p.total > 0 {
		q := p.n * 4 / p.total
		for ; p.shown < q && p.shown < 4; p.shown++ {
			fmt.Fprintf(p.w, "%s: %d%% (%s of %s)\n", p.label, (p.shown+1)*25, humanBytes(p.n), humanBytes(p.total))
		}
	}
	return len(b), nil
}
