package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/backup"
	"github.com/tenon-dev/tenon/sqlite"
)

const drillUsage = `Usage: tenon drill [-snapshot NAME|latest] [-sample N] [-scratch DIR] [-json] [flags]

Restores the latest backup (the replica, or a snapshot with -snapshot) into
a scratch directory and proves it: integrity check, row counts against the
live database at --db, every shared secret decrypting with the key file,
and a signed request per sampled tenant verified against the restored copy.
Prints RPO and RTO; exits non-zero when any check fails.

With a PostgreSQL store, the drill runs pgbackrest check (WAL archiving
works), looks for a pgBackRest backup set, and restores the newest logical
snapshot into the schema tenon_drill of the -scratch database (default:
--db), which it creates and drops; the checks above run against it.

`

func runDrill(ctx context.Context, env Env, _ App, args []string) error {
	var snapshot, scratch string
	var sample int
	var asJSON bool
	fs, vals, bc, err := loadBackupCommand("drill", drillUsage, env, args, func(fs *flag.FlagSet) {
		fs.StringVar(&snapshot, "snapshot", "", "drill this snapshot (or latest) instead of the replica")
		fs.IntVar(&sample, "sample", 20, "tenants that get a signed request verified")
		fs.StringVar(&scratch, "scratch", "", "directory for the restored copy (default: beside --db); for PostgreSQL a postgres:// DSN whose tenon_drill schema is used (default: --db)")
		fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	})
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	kit, err := newBackupKit(bc, vals["db"], vals["secret-key-file"], newLogger(env, "warn"))
	if err != nil {
		return err
	}
	kit.mgr.Progress = newProgress(env)
	if kit.pg != nil {
		return runPgDrill(ctx, env, kit, scratch, sample, asJSON)
	}
	if _, err := os.Stat(kit.db); err != nil {
		return fmt.Errorf("the live database %s to compare with: %w (check --db)", kit.db, err)
	}
	src, err := sqlite.Open(kit.db, sqlite.Options{SecretBox: kit.keys})
	if err != nil {
		return fmt.Errorf("open the live database: %w", err)
	}
	defer src.Close()
	if scratch == "" {
		scratch = filepath.Join(dirOf(kit.db), ".tenon-drill")
	}
	rep, err := kit.drill(ctx, src, scratch, snapshot, sample, nil)
	return reportDrill(env, rep, err, asJSON)
}

func reportDrill(env Env, rep *backup.DrillReport, err error, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		printDrill(env.Stdout, rep)
	}
	if err != nil {
		return restoreAdvice(err)
	}
	if !rep.OK {
		return errors.New("drill failed: see the problems above")
	}
	return nil
}

func (k *backupKit) drill(ctx context.Context, src tenon.Store, scratch, snapshot string, sample int, sync func(context.Context) error) (*backup.DrillReport, error) {
	rep, err := k.mgr.Drill(ctx, scratch, backup.DrillOptions{
		Source: src, SourcePath: k.db, Sample: sample, Snapshot: snapshot, Sync: sync,
		Open: func(ctx context.Context, path string) (tenon.Store, error) {
			return sqlite.Open(path, sqlite.Options{SecretBox: k.keys})
		},
	})
	if saveErr := k.mgr.SaveDrill(ctx, rep); saveErr != nil && err == nil {
		rep.Problems = append(rep.Problems, "the report could not be stored at the target: "+saveErr.Error())
	}
	return rep, err
}

func printDrill(w io.Writer, r *backup.DrillReport) {
	res := "PASSED"
	if !r.OK {
		res = "FAILED"
	}
	fmt.Fprintf(w, "drill %s: restored %s (state of %s)\n", res, r.From, r.RestoredTo.UTC().Format(time.RFC3339Nano))
	fmt.Fprintf(w, "  integrity check:   %s\n", r.Integrity)
	fmt.Fprintf(w, "  tenants:           %d restored, %d secrets decrypt with the key file, %d signed requests verified\n", r.Tenants, r.Secrets, r.Requests)
	var names []string
	for n := range r.Tables {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := r.Tables[n]
		fmt.Fprintf(w, "  rows %-22s source %d, restored %d\n", n+":", c[0], c[1])
	}
	newest := "none"
	if !r.NewestRestoredWrite.IsZero() {
		newest = r.NewestRestoredWrite.UTC().Format(time.RFC3339Nano)
	}
	fmt.Fprintf(w, "  RPO achieved:      %s (newest restored write %s)\n", r.RPO.Round(time.Millisecond), newest)
	fmt.Fprintf(w, "  RTO:               %s (start to a restored copy answering a verified request)\n", r.RTO.Round(time.Millisecond))
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
}
