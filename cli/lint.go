package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tenon-dev/tenon/connectjwt"
	"github.com/tenon-dev/tenon/forge"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/lint"
	"github.com/tenon-dev/tenon/server"
	"github.com/tenon-dev/tenon/sqlite"
)

// ManifestApp is an App that also has a Forge manifest.yml (a
// Connect-on-Forge or Forge Remote app): lint, serve and dev check it
// with the descriptor and against the app's Forge routes.
type ManifestApp interface {
	App
	Manifest() []byte
}

// errLintFailed is lint's exit 1: the problems are printed already.
var errLintFailed = errors.New("errors found")

// runLint checks a descriptor and a manifest: files given by flag, or
// the app's own, which are then also checked against the routes the app
// registers. Errors exit 1; warnings are printed and exit 0.
func runLint(_ context.Context, env Env, app App, args []string) error {
	fs := flag.NewFlagSet("lint", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	descFile := fs.String("descriptor", "", "atlassian-connect.json to check instead of the app's own")
	manFile := fs.String("manifest", "", "Forge manifest.yml to check instead of the app's own")
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "Usage: %s lint [--descriptor FILE] [--manifest FILE]\n", env.name())
		fmt.Fprintln(env.Stderr)
		fmt.Fprintln(env.Stderr, "Checks the descriptor and the Forge manifest. Without flags it checks the app's own")
		fmt.Fprintln(env.Stderr, "files and both against the routes the app registers. Exit 1 on errors.")
		fmt.Fprintln(env.Stderr)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	var in lint.Input
	own := *descFile == "" && *manFile == ""
	if *descFile != "" {
		raw, err := os.ReadFile(*descFile)
		if err != nil {
			return fmt.Errorf("read the descriptor: %w", err)
		}
		in.Descriptor, in.DescriptorFile = raw, *descFile
	} else if app != nil {
		in.Descriptor = app.Descriptor()
	}
	if *manFile != "" {
		raw, err := os.ReadFile(*manFile)
		if err != nil {
			return fmt.Errorf("read the manifest: %w", err)
		}
		in.Manifest, in.ManifestFile = raw, *manFile
	} else if m, ok := app.(ManifestApp); ok && *descFile == "" {
		in.Manifest = m.Manifest()
	}
	if in.Descriptor == nil && in.Manifest == nil {
		return errors.New("nothing to check: give --descriptor or --manifest")
	}
	var probs []lint.Problem
	if in.Descriptor == nil && !own {
		probs = lint.CheckManifest(in.Manifest, in.ManifestFile)
	} else {
		// The app's own files, a pure Forge app's manifest alone included,
		// are checked against its routes too.
		if own && app != nil {
			routes, err := appRoutes(app)
			if err != nil {
				fmt.Fprintf(env.Stderr, "tenon lint: the routes are not checked: %v\n", err)
			}
			in.Routes = routes
		}
		probs = lint.App(in)
	}
	for _, p := range probs {
		fmt.Fprintln(env.Stdout, p)
	}
	if lint.HasErrors(probs) {
		return errLintFailed
	}
	return nil
}

// appRoutes registers the app's routes on a server that never serves,
// with a throwaway store, and returns what it registered. A descriptor
// the server refuses yields no routes: the file check reports why.
func appRoutes(app App) ([]lint.Route, error) {
	dir, err := os.MkdirTemp("", "tenon-lint-")
	if err != nil {
		return nil, fmt.Errorf("temporary store: %w", err)
	}
	defer os.RemoveAll(dir)
	line, err := keyring.Generate(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("temporary key: %w", err)
	}
	box, err := keyring.Parse([]byte(line))
	if err != nil {
		return nil, fmt.Errorf("temporary key: %w", err)
	}
	store, err := sqlite.Open(filepath.Join(dir, "lint.db"), sqlite.Options{SecretBox: box})
	if err != nil {
		return nil, fmt.Errorf("temporary store: %w", err)
	}
	defer store.Close()
	// Never contacted: the server only serves after lint is done.
	keys, err := connectjwt.NewKeyServer("https://keys.invalid", connectjwt.KeyServerOptions{})
	if err != nil {
		return nil, err
	}
	cfg := server.Config{
		Descriptor:   app.Descriptor(),
		BaseURL:      "https://app.invalid",
		Store:        store,
		InstallKeys:  keys,
		AllowedHosts: []string{"*.atlassian.net"},
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:          time.Now,
	}
	if cfg.Descriptor == nil {
		// A pure Forge app's routes need Forge on; the key set is never
		// fetched either.
		jwks, err := forge.NewJWKS("https://jwks.invalid/.well-known/jwks.json", forge.JWKSOptions{})
		if err != nil {
			return nil, err
		}
		cfg.ForgeAppID, cfg.ForgeKeys, cfg.ForgeOnly = "ari:cloud:ecosystem::app/00000000-0000-4000-8000-000000000000", jwks, true
	}
	s, err := server.New(cfg)
	if err != nil {
		return nil, nil
	}
	if err := registerRoutes(app, s); err != nil {
		return nil, err
	}
	return lintRoutes(s), nil
}

// registerRoutes runs app.Routes, turning a panic (a route pattern the
// mux refuses) into an error.
func registerRoutes(app App, s *server.Server) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("app routes: %v", v)
		}
	}()
	if err := app.Routes(s); err != nil {
		return fmt.Errorf("app routes: %w", err)
	}
	return nil
}

func lintRoutes(s *server.Server) []lint.Route {
	routes := []lint.Route{}
	for _, r := range s.Routes() {
		routes = append(routes, lint.Route{Kind: r.Kind, Pattern: r.Pattern, Event: r.Event})
	}
	return routes
}

// checkApp is the start-up check of serve and dev: the files alone
// before the server is built (s nil), then against the registered
// routes. Errors are returned all at once; warnings are logged.
func checkApp(app App, s *server.Server, logger *slog.Logger) error {
	in := lint.Input{Descriptor: app.Descriptor()}
	if m, ok := app.(ManifestApp); ok {
		in.Manifest = m.Manifest()
	}
	if s != nil {
		in.Routes = lintRoutes(s)
	}
	if in.Descriptor == nil && in.Manifest == nil {
		// A pure Forge app without its manifest in the binary: no file to
		// check.
		if s != nil {
			return s.SetupError()
		}
		return nil
	}
	probs := lint.App(in)
	var errs []string
	for _, p := range probs {
		if p.Severity == lint.Error {
			errs = append(errs, "  "+p.String())
		} else if s != nil {
			logger.Warn(p.String())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("the app's descriptor or manifest has %d problem(s); fix them and start again (tenon lint checks without starting):\n%s", len(errs), strings.Join(errs, "\n"))
	}
	if s != nil {
		return s.SetupError()
	}
	return nil
}
