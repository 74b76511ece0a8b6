package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/hostclient"
	"github.com/tenon-dev/tenon/reconcile"
	"github.com/tenon-dev/tenon/server"
)

const tenantsReconcileUsage = `Usage: tenon tenants reconcile [-concurrency N] [-timeout DURATION] [store flags]

reconcile asks Forge's Installation Details API about every active Forge
installation in the store, with the app system token Forge sent with its
latest call, and marks uninstalled the ones Forge answers 404 for. Any
other answer (429, 5xx, timeout, a refused token) marks nothing: those are
asked again on the next run. Installations with no valid cached token are
counted and skipped. serve runs the same check daily on the leader.
The store flags are serve's: --db, --secret-key-file, --config (or their
environment variables), and --environment.
`

// runTenantsReconcile is `tenon tenants reconcile`.
func runTenantsReconcile(ctx context.Context, env Env, _ App, args []string) error {
	fs := flag.NewFlagSet("tenants reconcile", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprint(env.Stderr, env.help(tenantsReconcileUsage))
		fmt.Fprintln(env.Stderr, "\nFlags:")
		printFlags(env.Stderr, fs)
	}
	defineStoreFlags(fs, true)
	for _, s := range serveSettings {
		if s.Flag == "environment" {
			defineFlags(fs, []setting{s})
		}
	}
	concurrency := fs.Int("concurrency", reconcile.DefaultConcurrency, "at most N `N` Installation Details calls at once")
	timeout := fs.Duration("timeout", reconcile.DefaultCallTimeout, "bound of one call, e.g. 10s (`DURATION`)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *concurrency < 1 || *concurrency > 64 {
		return fmt.Errorf("-concurrency must be between 1 and 64, not %d", *concurrency)
	}
	if *timeout <= 0 || *timeout > 5*time.Minute {
		return fmt.Errorf("-timeout must be positive and at most 5m, not %v", *timeout)
	}
	vals, _, err := resolve(fs, serveSettings, env.Getenv, os.ReadFile)
	if err != nil {
		return err
	}
	envName, err := server.ParseEnvironment(vals["environment"])
	if err != nil {
		return err
	}
	st, err := openExistingStore(ctx, env, fs, true)
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := reconcileForge(ctx, st, envName, *concurrency, *timeout, nil)
	if err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, rep.String())
	for _, id := range rep.GoneIDs {
		fmt.Fprintf(env.Stdout, "uninstalled %s: %s\n", id, reconcile.GoneReason)
	}
	return nil
}

// reconcileForge runs one reconciliation of st's Forge installations.
func reconcileForge(ctx context.Context, st tenon.Store, envName server.Environment, concurrency int, timeout time.Duration, b *Backend) (reconcile.Report, error) {
	fs, ok := st.(tenon.ForgeLifecycleStore)
	if !ok {
		return reconcile.Report{}, errors.New("this store does not record Forge installations")
	}
	opts := reconcile.Options{Store: fs, Checker: newForgeClient(st, envName, b), Concurrency: concurrency, CallTimeout: timeout}
	if b != nil {
		opts.Logger = b.Logger.With("component", "reconcile")
		opts.Now = b.Config.Now
	}
	return reconcile.Run(ctx, opts)
}

// newForgeClient is the client of tenon's own calls to the Forge platform
// (Installation Details, License API): the Store caches the tokens and
// knows the installations. b, when set, gives the clock, logger and
// metrics of serve.
func newForgeClient(st tenon.Store, envName server.Environment, b *Backend) *hostclient.Client {
	opts := hostclient.Options{Forge: hostclient.ForgeOptions{AllowHTTP: envName.Defaults().AllowHTTP}}
	if tc, ok := st.(tenon.TokenCache); ok {
		opts.Tokens = tc
	}
	if fs, ok := st.(tenon.ForgeStore); ok {
		opts.Forge.Installations = fs
	}
	if b != nil {
		opts.Now, opts.Logger = b.Config.Now, b.Logger
		if b.Metrics != nil {
			opts.Policy.Observer = b.Metrics
		}
	}
	return hostclient.New("", opts)
}
