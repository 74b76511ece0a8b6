package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/tenon-dev/tenon/backup"
	"github.com/tenon-dev/tenon/keyring"
)

const tenantsExportUsage = `Usage: tenon tenants export CLIENTKEY -o FILE [flags]

Writes every row of one tenant (its installation, app data, jobs and Forge
installations) to FILE as JSON lines, read in one transaction. Its secrets
stay sealed, and the file is encrypted with the key file's backup key: it
imports only where the same key file (or one holding its keys) is in use.
"-o -" writes to standard output.

`

const tenantsImportUsage = `Usage: tenon tenants import CLIENTKEY -i FILE [--replace] [flags]

Loads a tenant export made by tenon tenants export into the store at --db,
in one transaction. CLIENTKEY must be the tenant the file holds. A tenant
that already has rows here is refused unless --replace, which deletes them
in the same transaction. The file must come from a store of the same kind
(SQLite or PostgreSQL) and schema version; its secrets must open with the
key file. "-i -" reads standard input.

`

// tenantCommand parses the flags of a tenants export/import command and
// its one CLIENTKEY argument, which may come before or after the flags.
func tenantCommand(env Env, name, usage string, args []string, own func(*flag.FlagSet)) (clientKey, loc string, kr *keyring.Keyring, err error) {
	fs := flag.NewFlagSet("tenants "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprint(env.Stderr, usage)
		fs.PrintDefaults()
	}
	defineStoreFlags(fs, true)
	own(fs)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return "", "", nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	if len(pos) != 1 || pos[0] == "" {
		return "", "", nil, fmt.Errorf("name one tenant: tenon tenants %s CLIENTKEY (see tenon tenants %s -h)", name, name)
	}
	if err := checkEnvNames(env.environ()); err != nil {
		return "", "", nil, err
	}
	vals, src, err := resolve(fs, serveSettings, env.Getenv, os.ReadFile)
	if err != nil {
		return "", "", nil, err
	}
	if err := checkStoreExists(vals["db"], src["db"]); err != nil {
		return "", "", nil, err
	}
	if vals["secret-key-file"] == "" {
		return "", "", nil, errors.New("set --secret-key-file / TENON_SECRET_KEY_FILE to serve's key file: the export is encrypted with it")
	}
	if kr, err = keyring.Load(vals["secret-key-file"]); err != nil {
		return "", "", nil, fmt.Errorf("secret key file: %w", err)
	}
	return pos[0], vals["db"], kr, nil
}

// runTenantsExport is tenon tenants export CLIENTKEY (args after
// "export").
func runTenantsExport(ctx context.Context, env Env, _ App, args []string) error {
	var out string
	clientKey, loc, kr, err := tenantCommand(env, "export", tenantsExportUsage, args, func(fs *flag.FlagSet) {
		fs.StringVar(&out, "o", "", "file to write (required; - for standard output)")
	})
	if err != nil {
		return err
	}
	if out == "" {
		return errors.New("set -o to the file to write (or -o - for standard output)")
	}
	var w io.Writer = env.Stdout
	var f *os.File
	if out != "-" {
		// Written beside its final name and renamed, so a failed export
		// never leaves a file that looks whole.
		if f, err = os.CreateTemp(filepath.Dir(out), ".tenant-export-*"); err != nil {
			return fmt.Errorf("create %s: %w", out, err)
		}
		defer os.Remove(f.Name())
		defer f.Close()
		w = f
	}
	sum, err := backup.ExportTenant(ctx, loc, kr, clientKey, w, time.Now())
	if err != nil {
		return fmt.Errorf("export %s: %w", clientKey, err)
	}
	if f != nil {
		if err := f.Sync(); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		if _, err := os.Stat(out); err == nil {
			return fmt.Errorf("%s exists; export to a new file", out)
		}
		if err := os.Rename(f.Name(), out); err != nil {
			return fmt.Errorf("move the export into place: %w", err)
		}
	}
	fmt.Fprintf(env.Stderr, "exported tenant %s from the %s store: %s; encrypted with key %s\n", sum.ClientKey, sum.Kind, rowCounts(sum.Rows), sum.KeyID)
	return nil
}

// runTenantsImport is tenon tenants import CLIENTKEY (args after
// "import").
func runTenantsImport(ctx context.Context, env Env, _ App, args []string) error {
	var in string
	var replace bool
	clientKey, loc, kr, err := tenantCommand(env, "import", tenantsImportUsage, args, func(fs *flag.FlagSet) {
		fs.StringVar(&in, "i", "", "export file to read (required; - for standard input)")
		fs.BoolVar(&replace, "replace", false, "replace the tenant's rows if it exists in this store")
	})
	if err != nil {
		return err
	}
	if in == "" {
		return errors.New("set -i to the export file to read (or -i - for standard input)")
	}
	var r io.Reader = os.Stdin
	if in != "-" {
		f, err := os.Open(in)
		if err != nil {
			return fmt.Errorf("open the export: %w", err)
		}
		defer f.Close()
		r = f
	}
	sum, err := backup.ImportTenant(ctx, loc, kr, r, backup.ImportOptions{ClientKey: clientKey, Replace: replace})
	if err != nil {
		return fmt.Errorf("import %s: %w\nnothing was written", clientKey, err)
	}
	how := "imported"
	if sum.Replaced {
		how = "replaced"
	}
	fmt.Fprintf(env.Stdout, "%s tenant %s: %s\n", how, sum.ClientKey, rowCounts(sum.Rows))
	return nil
}

func rowCounts(rows map[string]int64) string {
	var parts []string
	for _, t := range sortedNames(rows) {
		parts = append(parts, fmt.Sprintf("%d %s", rows[t], t))
	}
	return strings.Join(parts, ", ")
}

func sortedNames(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
