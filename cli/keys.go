package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/keyring"
)

const keysUsage = `Usage: tenon keys status [store flags]
       tenon keys reseal [-batch N] [store flags]

status counts the sealed rows (shared secrets, install payloads, cached
tokens, certificates and other KV entries) under each key of the key file,
and those no key opens. It changes nothing.

reseal seals every row that is under an older key again under the first key
of the key file, in short transactions of -batch rows, while serve keeps
running. It can be interrupted and run again. Restart every process using
the database with the rotated key file first: one that has not loaded the
new key cannot read what reseal writes.

Retiring a key: tenon keygen -rotate -o FILE, restart every node, tenon keys
reseal, check that tenon keys status shows 0 rows under the old key, remove
its line from the key file, restart.

The store flags are serve's: --db, --secret-key-file, --config (or their
environment variables).
`

// maxResealBatch bounds -batch so that one transaction stays short enough
// for requests waiting behind it.
const maxResealBatch = 10000

// runKeys reports and moves the sealed rows of the configured store.
func runKeys(ctx context.Context, env Env, _ App, args []string) error {
	if len(args) == 0 || (args[0] != "status" && args[0] != "reseal") {
		if len(args) > 0 && isHelp(args[0]) {
			// The flags of reseal, which has them all.
			args = []string{"reseal", "-h"}
		} else {
			fmt.Fprint(env.Stderr, env.help(keysUsage))
			return errors.New("name a subcommand: status or reseal")
		}
	}
	sub := args[0]
	fs := flag.NewFlagSet("keys "+sub, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprint(env.Stderr, env.help(keysUsage))
		fmt.Fprintln(env.Stderr, "\nFlags:")
		printFlags(env.Stderr, fs)
	}
	defineStoreFlags(fs, true)
	batch := 100
	if sub == "reseal" {
		fs.IntVar(&batch, "batch", batch, "rows re-sealed per transaction")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if batch < 1 || batch > maxResealBatch {
		return fmt.Errorf("-batch must be between 1 and %d", maxResealBatch)
	}
	st, kr, err := openExisting(ctx, env, fs, true)
	if err != nil {
		return err
	}
	defer st.Close()
	r, ok := st.(tenon.Resealer)
	if !ok {
		return fmt.Errorf("the store (%T) cannot re-seal", st)
	}
	if sub == "reseal" {
		return reseal(ctx, env, r, kr, batch)
	}
	counts, err := r.SealedCounts(ctx)
	if err != nil {
		return err
	}
	return writeKeyStatus(env.Stdout, kr, counts)
}

func reseal(ctx context.Context, env Env, r tenon.Resealer, kr *keyring.Keyring, batch int) error {
	before, err := r.SealedCounts(ctx)
	if err != nil {
		return err
	}
	sealing := kr.SealingKeyID()
	todo := 0
	for id, n := range before {
		if id != sealing && id != tenon.SealedUnreadable {
			todo += n
		}
	}
	fmt.Fprintf(env.Stderr, "re-sealing %d rows under key %s, %d per transaction\n", todo, sealing, batch)
	n, err := r.Reseal(ctx, batch, func(done int) {
		fmt.Fprintf(env.Stderr, "re-sealed %d of %d rows\n", done, todo)
	})
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted after re-sealing %d rows; those are kept, run tenon keys reseal again to finish", n)
		}
		return fmt.Errorf("after re-sealing %d rows: %w", n, err)
	}
	fmt.Fprintf(env.Stderr, "re-sealed %d rows\n", n)
	after, err := r.SealedCounts(ctx)
	if err != nil {
		return err
	}
	return writeKeyStatus(env.Stdout, kr, after)
}

// writeKeyStatus prints the counts as a table, one line per key of the key
// file, sealing key first, then what it says for the operator to do.
func writeKeyStatus(w io.Writer, kr *keyring.Keyring, counts map[string]int) error {
	ids := kr.KeyIDs()
	sealing := kr.SealingKeyID()
	// Ids the key file lacks cannot appear (such rows do not open), but
	// print them rather than hide them should a store ever report one.
	var extra []string
	for id := range counts {
		if id != tenon.SealedUnreadable && !slices.Contains(ids, id) {
			extra = append(extra, id)
		}
	}
	slices.Sort(extra)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY ID\tROWS\tNOTE")
	old, retire := 0, []string(nil)
	for _, id := range append(ids, extra...) {
		note := "older key"
		switch {
		case id == sealing:
			note = "seals new values"
		case !slices.Contains(ids, id):
			note = "not in the key file"
		case counts[id] == 0:
			note = "older key, seals nothing: can be removed"
			retire = append(retire, id)
		}
		if id != sealing {
			old += counts[id]
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\n", id, counts[id], note)
	}
	unreadable := counts[tenon.SealedUnreadable]
	note := ""
	if unreadable > 0 {
		note = "no key of the key file opens these"
	}
	fmt.Fprintf(tw, "%s\t%d\t%s\n", tenon.SealedUnreadable, unreadable, note)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	switch {
	case old > 0:
		fmt.Fprintf(w, "%d rows are still sealed with older keys: run tenon keys reseal (after restarting every node with this key file).\n", old)
	case len(retire) > 0:
		fmt.Fprintf(w, "Every readable row is sealed with key %s. Remove the line of key %s from the key file and restart every node.\n",
			sealing, strings.Join(retire, ", "))
	default:
		fmt.Fprintf(w, "Every readable row is sealed with key %s, the only key of the key file.\n", sealing)
	}
	if unreadable > 0 {
		fmt.Fprintf(w, "%d rows open with no key of this key file: sealed with a key removed from it (put that key back to read them) or altered. reseal leaves them as they are.\n", unreadable)
	}
	return nil
}
