// Package pgtest runs a private PostgreSQL server for tests that must
// stop, crash or restart the database under a running program: outages,
// backups, failover. Such tests never touch a shared server; each gets
// its own cluster (initdb) in a temporary directory, listening on a free
// loopback port only, stopped by its PID when the test ends.
//
// The server binaries are looked up in $TENON_TEST_POSTGRES_BIN, then in
// /usr/lib/postgresql/<version>/bin (newest first), then on PATH. Without
// them tests skip, unless TENON_REQUIRE_POSTGRES=1 (as in CI) makes their
// absence a failure.
//
// PostgreSQL refuses to run as root. When the test runs as root, the
// cluster belongs to the "postgres" system user and the server runs as
// that user.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Mode is how Stop shuts the server down; the names are pg_ctl's.
type Mode int

const (
	// Fast disconnects every client (they see 57P01 admin_shutdown),
	// rolls back open transactions and checkpoints: the ordinary stop.
	Fast Mode = iota
	// Immediate aborts every process without a checkpoint, as a crash
	// would; the next start runs crash recovery.
	Immediate
)

func (m Mode) signal() syscall.Signal {
	if m == Immediate {
		return syscall.SIGQUIT
	}
	return syscall.SIGINT
}

func (m Mode) String() string {
	if m == Immediate {
		return "immediate"
	}
	return "fast"
}

// Options adjust the server.
type Options struct {
	// Settings are extra server settings as name=value, passed as -c
	// options after the defaults, so they override them. The defaults
	// trade durability for speed with fsync=off only: a commit reaches
	// the operating system before it is acknowledged, so it survives any
	// stop of the server, immediate included, but not a crash of the
	// machine.
	Settings []string
	// Archive, when set, turns on WAL archiving to a pgBackRest
	// repository in the test's temporary directory (see Archive).
	Archive *Archive
}

// Server is a private PostgreSQL cluster. Its methods may be called from
// one goroutine at a time.
type Server struct {
	tb       testing.TB
	bin      string
	dir      string // data directory
	logFile  string
	port     int
	settings []string
	cred     *syscall.Credential // nil unless running as root
	archive  *archiveState       // nil without Options.Archive

	mu   sync.Mutex
	cmd  *exec.Cmd     // nil while stopped
	done chan struct{} // closed when cmd has been waited for
}

// BinDir returns the directory of initdb and postgres, skipping tb when
// there is none (failing it when TENON_REQUIRE_POSTGRES=1).
func BinDir(tb testing.TB) string {
	tb.Helper()
	var candidates []string
	if d := os.Getenv("TENON_TEST_POSTGRES_BIN"); d != "" {
		candidates = append(candidates, d)
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(found, func(a, b string) int { return versionOf(b) - versionOf(a) })
	candidates = append(candidates, found...)
	if p, err := exec.LookPath("initdb"); err == nil {
		candidates = append(candidates, filepath.Dir(p))
	}
	for _, d := range candidates {
		if isFile(filepath.Join(d, "initdb")) && isFile(filepath.Join(d, "postgres")) {
			return d
		}
	}
	unavailable(tb, "initdb and postgres were not found (set TENON_TEST_POSTGRES_BIN, or install the postgresql package)")
	return ""
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

func unavailable(tb testing.TB, why string) {
	tb.Helper()
	if os.Getenv("TENON_REQUIRE_POSTGRES") == "1" {
		tb.Fatalf("a private PostgreSQL is required (TENON_REQUIRE_POSTGRES=1): %s", why)
	}
	tb.Skipf("private PostgreSQL tests skipped: %s", why)
}

// Start creates a cluster in a temporary directory of tb, starts it on a
// free loopback port and waits until it accepts connections. The server
// is stopped (fast) when tb ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s := &Server{tb: tb, bin: BinDir(tb), settings: opts.Settings}
	root := tb.TempDir()
	s.dir, s.logFile = filepath.Join(root, "data"), filepath.Join(root, "postgres.log")
	if os.Geteuid() == 0 {
		s.cred = postgresUser(tb)
		// The system user must reach the data directory through the
		// test's private temporary directories (and only those).
		tmp := filepath.Clean(os.TempDir()) + string(filepath.Separator)
		for d := root; strings.HasPrefix(d, tmp); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o711); err != nil {
				tb.Fatalf("pgtest: %v", err)
			}
		}
	}
	if err := os.Mkdir(s.dir, 0o700); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	if err := touch(s.logFile); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	if s.cred != nil {
		for _, p := range []string{s.dir, s.logFile} {
			if err := os.Chown(p, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
				tb.Fatalf("pgtest: %v", err)
			}
		}
	}
	if opts.Archive != nil {
		s.setupArchive(root, *opts.Archive)
	}
	initdb := s.command(filepath.Join(s.bin, "initdb"), "-D", s.dir, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	var out bytes.Buffer
	initdb.Stdout, initdb.Stderr = &out, &out
	if err := initdb.Run(); err != nil {
		tb.Fatalf("pgtest: initdb: %v\n%s", err, out.String())
	}
	s.port = freePort(tb)
	tb.Cleanup(func() {
		if err := s.stop(Fast); err != nil {
			tb.Errorf("pgtest: stop: %v", err)
		}
	})
	s.Start()
	if s.archive != nil {
		s.createStanza()
	}
	return s
}

func postgresUser(tb testing.TB) *syscall.Credential {
	u, err := user.Lookup("postgres")
	if err != nil {
		unavailable(tb, "running as root, and there is no postgres user to run the server as")
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

func touch(p string) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

func freePort(tb testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: s.cred,
		// Should the test binary die without cleaning up, the server
		// goes down with it instead of holding the port.
		Pdeathsig: syscall.SIGQUIT,
	}
	return cmd
}

// Port is the loopback port the server listens on; it stays the same
// across restarts.
func (s *Server) Port() int { return s.port }

// DataDir is the cluster's data directory.
func (s *Server) DataDir() string { return s.dir }

// DSN returns a URL for database db (the cluster has "postgres") as the
// superuser postgres, without TLS.
func (s *Server) DSN(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// PID is the postmaster's process id, 0 while stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Start starts the stopped server again on the same port and data
// directory, and waits until it accepts connections. It fails the test
// when the server does not come up within 30 seconds.
func (s *Server) Start() {
	s.tb.Helper()
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		s.tb.Fatal("pgtest: Start: the server is running")
	}
	args := []string{"-D", s.dir, "-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=",
		"-c", "fsync=off",
		"-c", "full_page_writes=off",
		"-c", "shared_buffers=16MB",
		"-c", "max_connections=60",
		"-c", "logging_collector=off",
	}
	args = append(args, s.archiveSettings()...)
	for _, kv := range s.settings {
		args = append(args, "-c", kv)
	}
	cmd := s.command(filepath.Join(s.bin, "postgres"), args...)
	log, err := os.OpenFile(s.logFile, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		s.mu.Unlock()
		s.tb.Fatalf("pgtest: %v", err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	err = cmd.Start()
	log.Close()
	if err != nil {
		s.mu.Unlock()
		s.tb.Fatalf("pgtest: start postgres: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	if err := s.waitReady(done, 30*time.Second); err != nil {
		s.tb.Fatalf("pgtest: %v\n%s", err, s.Log())
	}
}

func (s *Server) waitReady(exited <-chan struct{}, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for {
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		conn, err := pgx.Connect(cctx, s.DSN("postgres"))
		if err == nil {
			err = conn.Ping(cctx)
			conn.Close(cctx)
		}
		ccancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("postgres exited during start")
		case <-ctx.Done():
			return fmt.Errorf("postgres did not accept connections within %v: %v", limit, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop shuts the server down in mode and waits until the postmaster has
// exited, failing the test when that takes over 30 seconds.
func (s *Server) Stop(mode Mode) {
	s.tb.Helper()
	if err := s.stop(mode); err != nil {
		s.tb.Fatalf("pgtest: %v", err)
	}
}

// Restart stops the server in mode and starts it again on the same port.
func (s *Server) Restart(mode Mode) {
	s.tb.Helper()
	s.Stop(mode)
	s.Start()
}

func (s *Server) stop(mode Mode) error {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(mode.signal()); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop postgres (pid %d, %s): %w", cmd.Process.Pid, mode, err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("postgres (pid %d) did not stop within 30s in %s mode; killed", cmd.Process.Pid, mode)
	}
}

// Log returns what the server logged so far, for failure messages.
func (s *Server) Log() string {
	b, err := os.ReadFile(s.logFile)
	if err != nil {
		return "(no server log: " + err.Error() + ")"
	}
	return string(b)
}

// CreateDatabase creates database name and returns its DSN.
func (s *Server) CreateDatabase(name string) string {
	s.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		s.tb.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		s.tb.Fatalf("pgtest: create database %s: %v", name, err)
	}
	return s.DSN(name)
}

// StartStandby makes a streaming standby of s, named name: a base backup
// of the running server (pg_basebackup -R) in a new temporary directory
// of the test, started on a free loopback port and connected to s as
// application name, so that s can wait for it (Synchronous). It is
// stopped (fast) when the test ends.
func (s *Server) StartStandby(name string) *Server {
	s.tb.Helper()
	st := &Server{tb: s.tb, bin: s.bin, settings: s.settings, cred: s.cred}
	root := s.tb.TempDir()
	st.dir, st.logFile = filepath.Join(root, "data"), filepath.Join(root, "postgres.log")
	if st.cred != nil {
		tmp := filepath.Clean(os.TempDir()) + string(filepath.Separator)
		for d := root; strings.HasPrefix(d, tmp); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o711); err != nil {
				s.tb.Fatalf("pgtest: %v", err)
			}
		}
	}
	if err := touch(st.logFile); err != nil {
		s.tb.Fatalf("pgtest: %v", err)
	}
	if st.cred != nil {
		if err := os.Chown(root, int(st.cred.Uid), int(st.cred.Gid)); err != nil {
			s.tb.Fatalf("pgtest: %v", err)
		}
		if err := os.Chown(st.logFile, int(st.cred.Uid), int(st.cred.Gid)); err != nil {
			s.tb.Fatalf("pgtest: %v", err)
		}
	}
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres application_name=%s", s.port, name)
	backup := st.command(filepath.Join(s.bin, "pg_basebackup"), "-D", st.dir, "-d", conninfo,
		"-R", "-X", "stream", "--checkpoint=fast", "--no-sync")
	var out bytes.Buffer
	backup.Stdout, backup.Stderr = &out, &out
	if err := backup.Run(); err != nil {
		s.tb.Fatalf("pgtest: pg_basebackup: %v\n%s", err, out.String())
	}
	st.port = freePort(s.tb)
	s.tb.Cleanup(func() {
		if err := st.stop(Fast); err != nil {
			s.tb.Errorf("pgtest: stop standby: %v", err)
		}
	})
	st.Start()
	return st
}

// Synchronous makes s wait, before acknowledging a commit, until the
// standby named name has written it (synchronous_commit=on with
// synchronous_standby_names), and returns once that standby streams in
// sync. It fails the test when that takes over 30 seconds.
func (s *Server) Synchronous(name string) {
	s.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		s.tb.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		"ALTER SYSTEM SET synchronous_standby_names = " + quoteLiteral(name),
		"ALTER SYSTEM SET synchronous_commit = 'on'",
		"SELECT pg_reload_conf()",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			s.tb.Fatalf("pgtest: %s: %v", q, err)
		}
	}
	for {
		var state string
		err := conn.QueryRow(ctx, "SELECT coalesce(max(sync_state), '') FROM pg_stat_replication WHERE application_name = $1", name).Scan(&state)
		if err == nil && state == "sync" {
			return
		}
		select {
		case <-ctx.Done():
			s.tb.Fatalf("pgtest: standby %s is not in sync (%q, %v)\n%s", name, state, err, s.Log())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Promote turns a standby into a primary (pg_promote) and returns once
// it accepts writes.
func (s *Server) Promote() {
	s.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		s.tb.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(ctx)
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_promote(true, 30)").Scan(&ok); err != nil || !ok {
		s.tb.Fatalf("pgtest: promote: %v %v\n%s", ok, err, s.Log())
	}
}
