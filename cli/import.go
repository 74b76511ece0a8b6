package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/tenon-dev/tenon/importer"
)

const importUsage = `Usage: tenon import ace  --from DSN [flags] [store flags]
       tenon import acsb --from DSN [flags] [store flags]

Copies the tenants — shared secrets included — from the store of
atlassian-connect-express (ace: its AddonSettings table on PostgreSQL or
SQLite, or its Redis keys) or atlassian-connect-spring-boot (acsb: its
atlassian_host table) into tenon's store, so the app switches backends
without a single reinstall. Secrets are sealed with the key file.

DSN is postgres://..., redis://HOST:PORT/DB (ace only), or the path of a
SQLite file. The source is only read.

It first prints what it found and would do: tenants by state, creates,
updates, unchanged, conflicts (tenon's record is newer: kept) and rows it
cannot import. It writes only when that plan has no conflict and no
unsupported row, unless -skip-problems; -dry-run stops after the report.
Running it again changes nothing that is already imported, so a stopped
import is resumed by running it again.

Flags:
  -from DSN         the framework's store (required)
  -dry-run          print the report and write nothing
  -with-settings    also import ACE's other per-tenant settings as app data
  -skip-problems    import what can be imported, leave conflicts and
                    unsupported rows
  -app-key KEY      the app's descriptor key (default: this binary's app);
                    tenants of another app are not imported
  -table NAME       ACE's settings table, when the app renamed it
                    (default AddonSettings)

The store flags are serve's: --db, --secret-key-file, --config (or their
environment variables).
`

// errImportBlocked is the exit of an import whose plan had conflicts or
// unsupported rows: the report says which.
var errImportBlocked = errors.New("nothing was imported: the report lists conflicts or unsupported rows; fix them, or run again with -skip-problems to import the rest")

// runImport imports tenants from another framework's store.
func runImport(ctx context.Context, env Env, app App, args []string) error {
	if len(args) == 0 || (args[0] != "ace" && args[0] != "acsb") {
		fmt.Fprint(env.Stderr, importUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return flag.ErrHelp
		}
		return errors.New("name the framework to import from: ace or acsb")
	}
	kind := args[0]
	fs := flag.NewFlagSet("import "+kind, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() { fmt.Fprint(env.Stderr, importUsage) }
	defineStoreFlags(fs, true)
	from := fs.String("from", "", "the framework's store")
	dryRun := fs.Bool("dry-run", false, "print the report and write nothing")
	withSettings := fs.Bool("with-settings", false, "import ACE's other settings as app data")
	skip := fs.Bool("skip-problems", false, "import what can be imported")
	appKey := fs.String("app-key", "", "the app's descriptor key")
	table := fs.String("table", "", "ACE's settings table")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *from == "" {
		return errors.New("give the framework's store with -from DSN")
	}
	if kind == "acsb" && (*withSettings || *table != "") {
		return errors.New("-with-settings and -table are for ace: atlassian-connect-spring-boot keeps no per-tenant settings of its own")
	}
	opts := importer.Options{AppKey: *appKey, WithSettings: *withSettings, Table: *table}
	if opts.AppKey == "" {
		opts.AppKey = descriptorKey(app)
	}

	// Read the source whole before touching tenon's store: a source that
	// fails half-way writes nothing.
	open := importer.OpenACE
	if kind == "acsb" {
		open = importer.OpenACSB
	}
	src, err := open(ctx, *from, opts)
	if err != nil {
		return err
	}
	recs, probs, err := src.Read(ctx)
	src.Close()
	if err != nil {
		return err
	}
	st, err := openExistingStore(ctx, env, fs, true)
	if err != nil {
		return err
	}
	defer st.Close()
	ist, ok := st.(importer.Store)
	if !ok {
		return fmt.Errorf("the store (%T) cannot import tenants", st)
	}
	rep, err := importer.Plan(ctx, ist, importer.Describe(*from), recs, probs)
	if err != nil {
		return err
	}
	importer.WriteReport(env.Stdout, rep)
	switch {
	case *dryRun:
		fmt.Fprintln(env.Stdout, "dry run: nothing written")
		return nil
	case !rep.Clean() && !*skip:
		return errImportBlocked
	case !rep.Writes():
		fmt.Fprintln(env.Stdout, "nothing to import: tenon's store has every tenant already")
		return nil
	}
	res, err := importer.Apply(ctx, ist, rep, func(done, total int) {
		if done == total || done%100 == 0 {
			fmt.Fprintf(env.Stderr, "progress: %d/%d tenants\n", done, total)
		}
	})
	if err != nil {
		return fmt.Errorf("%w (%d tenants and %d values were imported before; run the import again to go on)", err, res.Tenants, res.Values)
	}
	fmt.Fprintf(env.Stdout, "imported %d tenants and %d data values\n", res.Tenants, res.Values)
	return nil
}

// descriptorKey is the key of app's descriptor, or "" without one.
func descriptorKey(app App) string {
	if app == nil {
		return ""
	}
	var d struct {
		Key string `json:"key"`
	}
	if json.Unmarshal(app.Descriptor(), &d) != nil {
		return ""
	}
	return d.Key
}
