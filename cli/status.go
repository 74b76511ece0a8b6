package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/leader"
)

const statusUsage = `Usage: tenon status [store flags]

Prints what an operator checks first on a deployment of several nodes:
this node's name, the store (and on PostgreSQL whether the server
reached is the primary), whether its schema is migrated for this build,
and which node leads singleton work (job purges, scheduled maintenance).

The store flags are serve's: --db and --config (or TENON_DB, TENON_CONFIG).

Flags:
`

func runStatus(ctx context.Context, env Env, _ App, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprint(env.Stderr, statusUsage)
		fs.PrintDefaults()
	}
	defineStoreFlags(fs, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see tenon status -h)", fs.Arg(0))
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := openExistingStore(ctx, env, fs, false)
	if err != nil {
		return err
	}
	defer st.Close()
	vals, _, err := resolve(fs, serveSettings, env.Getenv, os.ReadFile)
	if err != nil {
		return err
	}
	dsn := vals["db"]
	w := env.Stdout
	fmt.Fprintf(w, "node:        %s\n", nodeName())
	migrations := "up to date for this build"
	if p, ok := st.(tenon.Pinger); ok {
		if err := p.Ping(ctx); err != nil {
			migrations = "NOT READY: " + tenon.ErrorMessage(err)
		}
	}
	if !isPostgres(dsn) {
		fmt.Fprintf(w, "store:       SQLite %s\n", dsn)
		fmt.Fprintf(w, "migrations:  %s\n", migrations)
		fmt.Fprintln(w, "leader:      this node (a SQLite store has one node, which always leads)")
		return nil
	}
	return postgresStatus(ctx, w, dsn, migrations)
}

func postgresStatus(ctx context.Context, w io.Writer, dsn, migrations string) error {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return errors.New("the DSN cannot be parsed (details withheld: they may contain the password)")
	}
	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var standby bool
	var version string
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery(), current_setting('server_version')").Scan(&standby, &version); err != nil {
		return fmt.Errorf("read the server's role: %w", err)
	}
	role := "primary"
	if standby {
		role = "standby (read-only: serve needs the primary; add target_session_attrs=read-write to a DSN with several hosts)"
	}
	pc := conn.PgConn()
	fmt.Fprintf(w, "store:       PostgreSQL %s at %s, database %s, %s\n", version, pc.Conn().RemoteAddr().String(), conn.Config().Database, role)
	fmt.Fprintf(w, "migrations:  %s\n", migrations)
	l, err := leader.ReadLease(ctx, conn, "")
	if err != nil {
		return err
	}
	switch {
	case l.Token == 0:
		fmt.Fprintln(w, "leader:      none yet (no node has served on this store)")
	case l.Held:
		fmt.Fprintf(w, "leader:      %s (term %d, since %s)\n", l.Node, l.Token, l.Since.UTC().Format(time.RFC3339))
	default:
		fmt.Fprintf(w, "leader:      none now: the lease is free (last held by %s, term %d); a serving node takes it within seconds\n", l.Node, l.Token)
	}
	return nil
}
