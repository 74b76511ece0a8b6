package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/keyring"
)

// Every command that works on an existing store — jobs, maintenance,
// notice and the like — opens it here, and only serve and dev create
// one. Opening a SQLite path creates the file and migrates it, so a
// typo would otherwise give the command a new, empty database nobody
// serves: jobs would list nothing, maintenance would switch on where no
// server looks.

// defineStoreFlags registers serve's store settings on fs: --config and
// --db, and --secret-key-file for commands that read or write secrets.
func defineStoreFlags(fs *flag.FlagSet, secrets bool) {
	var store []setting
	for _, s := range serveSettings {
		if s.Flag == "config" || s.Flag == "db" || (secrets && s.Flag == "secret-key-file") {
			store = append(store, s)
		}
	}
	defineFlags(fs, store)
}

// openExistingStore resolves the store settings from the parsed fs, the
// environment and the configuration file, as serve does, and opens the
// store they name. It never creates a database: a SQLite path that does
// not exist is an error naming the path and how to set it. Without
// secrets the store gets a SecretBox that refuses every use, so a command
// that only touches settings needs no key file.
func openExistingStore(ctx context.Context, env Env, fs *flag.FlagSet, secrets bool) (tenon.Store, error) {
	st, _, err := openExisting(ctx, env, fs, secrets)
	return st, err
}

// openExisting is openExistingStore that also returns the key file it
// loaded (nil without secrets), for commands that work on the keys.
func openExisting(ctx context.Context, env Env, fs *flag.FlagSet, secrets bool) (tenon.Store, *keyring.Keyring, error) {
	if err := checkEnvNames(env.environ()); err != nil {
		return nil, nil, err
	}
	// The configuration file may hold every serve setting; only the
	// store's are used.
	vals, src, err := resolve(fs, serveSettings, env.Getenv, os.ReadFile)
	if err != nil {
		return nil, nil, err
	}
	dsn := vals["db"]
	if err := checkStoreExists(dsn, src["db"]); err != nil {
		return nil, nil, err
	}
	var box tenon.SecretBox = noSecrets{}
	var kr *keyring.Keyring
	if secrets {
		if vals["secret-key-file"] == "" {
			return nil, nil, errors.New("set --secret-key-file / TENON_SECRET_KEY_FILE to serve's key file: this command reads secrets")
		}
		if kr, err = keyring.Load(vals["secret-key-file"]); err != nil {
			return nil, nil, fmt.Errorf("secret key file: %w", err)
		}
		box = kr
	}
	st, err := openStore(ctx, dsn, box, newLogger(env, "warn"))
	if err != nil && isPostgres(dsn) {
		// The server's answer names the database (never the password):
		// a database that does not exist stays so.
		return nil, nil, fmt.Errorf("%w (check --db / TENON_DB: it must name serve's database)", err)
	}
	if err != nil {
		return nil, nil, err
	}
	return st, kr, nil
}

// checkStoreExists refuses a store setting that names no existing
// database. A PostgreSQL server never creates a database on connect, so
// only SQLite paths need the check.
func checkStoreExists(dsn, source string) error {
	how := "set --db / TENON_DB to the database serve uses"
	if source == "default" {
		how = "--db / TENON_DB is not set, so the default was tried; " + how
	}
	if dsn == "" {
		return fmt.Errorf("no database given: %s", how)
	}
	if isPostgres(dsn) {
		return nil
	}
	shown := dsn
	if abs, err := filepath.Abs(dsn); err == nil {
		shown = abs
	}
	info, err := os.Stat(dsn)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no database at %s (%s; only tenon serve creates one)", shown, how)
	case err != nil:
		return fmt.Errorf("database %s: %w (%s)", shown, err, how)
	case !info.Mode().IsRegular():
		return fmt.Errorf("%s is not a database file (%s)", shown, how)
	}
	return nil
}

func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// noSecrets is the SecretBox of commands that only touch settings: any
// attempt to seal or open a secret is a bug, and fails.
type noSecrets struct{}

func (noSecrets) Seal([]byte) (string, error) {
	return "", errors.New("this command does not handle secrets")
}

func (noSecrets) Open(string) ([]byte, error) {
	return nil, errors.New("this command does not handle secrets")
}
