// Package cli is tenon's command line: serve, keygen, fake, dev, backup,
// restore, drill, version.
// It is importable so that an app vendor's own binary gets the same
// operational commands around its own app:
//
//	func main() { cli.Main(myapp.New()) }
//
// Only this package (and the binaries built on it) picks a store, reads
// configuration and opens listeners; everything else receives what it
// needs.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/tenon-dev/tenon/server"
)

// App is an app backend built on tenon: its descriptor and its routes.
type App interface {
	// Descriptor returns the app's atlassian-connect.json as written by its
	// developer. Only its top-level baseUrl is replaced when served. A
	// pure Forge app returns nil: it then runs with its Forge routes only
	// (ForgeRemote, ForgeEvent, ForgeTrigger, ForgeLifecycle, Public), no
	// descriptor is served, lint skips the descriptor checks, serve needs
	// --forge-app-id, and dev installs it into the fake as a Forge app.
	Descriptor() []byte
	// Routes registers the app's handlers (module pages, browser-API
	// routes, webhooks, static files) on s.
	Routes(s *server.Server) error
}

// HookedApp is an App that wants to hear about lifecycle changes. The
// hooks run after the change is committed.
type HookedApp interface {
	App
	Hooks() server.Hooks
}

// Env is what a command takes from its process, injected so commands can
// run inside tests.
type Env struct {
	Stdout, Stderr io.Writer
	// Stdin answers confirmation prompts (tenants purge); nil refuses them.
	Stdin  io.Reader
	Getenv func(string) string
	// Environ lists the environment as KEY=value entries, so commands can
	// refuse a mistyped TENON_ variable (see envnames.go). Nil skips
	// that check.
	Environ func() []string
	// Name is the program's name in help and messages: "tenon", or a
	// vendor's own binary built on Main. Empty means "tenon".
	Name string
}

// name returns env.Name, or "tenon" without one.
func (env Env) name() string {
	if env.Name == "" {
		return "tenon"
	}
	return env.Name
}

// help adapts a command's help text, written for the tenon binary, to the
// program's name.
func (env Env) help(text string) string {
	if n := env.name(); n != "tenon" {
		return strings.ReplaceAll(text, "tenon ", n+" ")
	}
	return text
}

// environ returns env.Environ(), or nil without one.
func (env Env) environ() []string {
	if env.Environ == nil {
		return nil
	}
	return env.Environ()
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env Env, app App, args []string) error
}

func commands() []command {
	return []command{
		{"serve", "run the app backend", runServe},
		{"dev", "run the app with a fake Atlassian on this machine, for development", runDev},
		{"fake", "run the fake Atlassian alone, for testing apps in any language", runFake},
		{"keygen", "create a key file for encrypting secrets at rest", runKeygen},
		{"keys", "count rows per encryption key; re-seal them under the newest key", runKeys},
		{"import", "import tenants and their secrets from an ACE or ACSB store, without reinstalls", runImport},
		{"tenants", "list, show and purge tenants", runTenants},
		{"jobs", "list queued jobs and dead letters, retry dead ones", runJobs},
		{"release", "switch the active release of a releases directory, or roll back", runRelease},
		{"maintenance", "switch maintenance mode on or off for every node", runMaintenance},
		{"status", "show this node, the store, migrations and which node leads", runStatus},
		{"notice", "set or clear the notice app pages show to every tenant or one", runNotice},
		{"loadtest", "load, stress, soak or spike test an app backend through the fake Atlassian", runLoadtest},
		{"lint", "check the descriptor and Forge manifest, and both against the app's routes", runLint},
		{"new", "write a runnable app skeleton into a new directory", runNew},
		{"backup", "take a snapshot now, or list the backups (backup list)", runBackup},
		{"restore", "restore the latest state, a point in time or a snapshot to a new file", runRestore},
		{"drill", "restore the latest backup into a scratch place and prove it restores", runDrill},
		{"version", "print the version", runVersion},
	}
}

// Main runs the command line for app and exits. SIGINT or SIGTERM stops a
// long-running command gracefully; a second signal exits at once.
func Main(app App) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
		// Signals are no longer caught after stop, so a second one
		// terminates the process with the default action.
	}()
	env := Env{Stdout: os.Stdout, Stderr: os.Stderr, Stdin: os.Stdin, Getenv: os.Getenv, Environ: os.Environ, Name: filepath.Base(os.Args[0])}
	os.Exit(Run(ctx, env, app, os.Args[1:]))
}

// Run runs one command and returns the process exit code.
func Run(ctx context.Context, env Env, app App, args []string) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(env, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range cmds {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, env, app, args[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errLintFailed):
			return 1
		default:
			fmt.Fprintf(env.Stderr, "%s %s: %v\n", env.name(), c.name, err)
			return 1
		}
	}
	fmt.Fprintf(env.Stderr, "%s: unknown command %q\n\n", env.name(), args[0])
	usage(env, cmds)
	return 2
}

func usage(env Env, cmds []command) {
	w := env.Stderr
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	fmt.Fprintf(w, "Usage: %s <command> [flags]\n", env.name())
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Run '%s <command> -h' for a command's flags.\n", env.name())
}
