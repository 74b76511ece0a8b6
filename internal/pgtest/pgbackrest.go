package pgtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Archive turns on WAL archiving to a pgBackRest repository kept in the
// test's temporary directory, with a configuration file of its own (lock
// and log paths there too), so a test never touches /etc/pgbackrest or
// /var/lib/pgbackrest. pgBackRest is looked up on PATH; without it tests
// skip, unless TENON_REQUIRE_PGBACKREST=1 makes that a failure.
type Archive struct {
	// Stanza names the cluster in the repository; default "tenon".
	Stanza string
	// Timeout is archive_timeout: the longest a commit waits before the
	// WAL segment holding it is switched and archived. Default 10s.
	Timeout time.Duration
	// RetentionFull is repo1-retention-full; default 2.
	RetentionFull int
}

type archiveState struct {
	bin, config, stanza, repo, socketDir string
	timeout                              time.Duration
}

// PgBackRestBin returns the path of the pgbackrest binary, skipping tb
// when there is none (failing it when TENON_REQUIRE_PGBACKREST=1).
func PgBackRestBin(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("pgbackrest")
	if err == nil {
		return p
	}
	if os.Getenv("TENON_REQUIRE_PGBACKREST") == "1" {
		tb.Fatal("pgBackRest is required (TENON_REQUIRE_PGBACKREST=1) and pgbackrest is not on PATH: apt-get install pgbackrest")
	}
	tb.Skip("pgBackRest tests skipped: pgbackrest is not on PATH (apt-get install pgbackrest; TENON_REQUIRE_PGBACKREST=1 makes this a failure)")
	return ""
}

func (s *Server) setupArchive(root string, a Archive) {
	s.tb.Helper()
	st := &archiveState{bin: PgBackRestBin(s.tb), stanza: a.Stanza, timeout: a.Timeout}
	if st.stanza == "" {
		st.stanza = "tenon"
	}
	if st.timeout <= 0 {
		st.timeout = 10 * time.Second
	}
	if a.RetentionFull <= 0 {
		a.RetentionFull = 2
	}
	st.repo, st.socketDir = filepath.Join(root, "pgbackrest"), root
	st.config = filepath.Join(root, "pgbackrest.conf")
	lock, logs := filepath.Join(root, "pgbackrest-lock"), filepath.Join(root, "pgbackrest-log")
	for _, d := range []string{st.repo, lock, logs} {
		if err := os.Mkdir(d, 0o750); err != nil {
			s.tb.Fatalf("pgtest: %v", err)
		}
	}
	conf := fmt.Sprintf(`[global]
repo1-path=%s
repo1-retention-full=%d
lock-path=%s
log-path=%s
log-level-console=warn
log-level-stderr=warn
log-level-file=off
compress-type=none
archive-async=n
start-fast=y

[%s]
pg1-path=%s
pg1-port=%d
pg1-socket-path=%s
pg1-user=postgres
`, st.repo, a.RetentionFull, lock, logs, st.stanza, s.dir, 0, st.socketDir)
	// The port is known only after initdb; it is written in createStanza.
	if err := os.WriteFile(st.config, []byte(conf), 0o640); err != nil {
		s.tb.Fatalf("pgtest: %v", err)
	}
	// The repository belongs to the server's user: archive-push runs as
	// it, and every other pgbackrest command must too (see RunAs).
	if s.cred != nil {
		for _, p := range []string{st.repo, lock, logs, st.config, root} {
			if err := os.Chown(p, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
				s.tb.Fatalf("pgtest: %v", err)
			}
		}
	}
	s.archive = st
}

func (s *Server) archiveSettings() []string {
	st := s.archive
	if st == nil {
		return nil
	}
	return []string{
		"-c", "wal_level=replica",
		"-c", "archive_mode=on",
		"-c", "archive_timeout=" + strconv.Itoa(int(st.timeout.Seconds())),
		"-c", fmt.Sprintf("archive_command=%s --config=%s --stanza=%s archive-push %%p", st.bin, st.config, st.stanza),
		// pgBackRest talks to the server over its Unix socket.
		"-c", "unix_socket_directories=" + st.socketDir,
	}
}

func (s *Server) createStanza() {
	s.tb.Helper()
	raw, err := os.ReadFile(s.archive.config)
	if err != nil {
		s.tb.Fatalf("pgtest: %v", err)
	}
	conf := strings.Replace(string(raw), "pg1-port=0\n", "pg1-port="+strconv.Itoa(s.port)+"\n", 1)
	if err := os.WriteFile(s.archive.config, []byte(conf), 0o640); err != nil {
		s.tb.Fatalf("pgtest: %v", err)
	}
	if out, err := s.PgBackRest("stanza-create"); err != nil {
		s.tb.Fatalf("pgtest: pgbackrest stanza-create: %v\n%s\n%s", err, out, s.Log())
	}
}

// PgBackRestConfig is the path of the pgBackRest configuration file of
// an archiving server ("" without Options.Archive).
func (s *Server) PgBackRestConfig() string {
	if s.archive == nil {
		return ""
	}
	return s.archive.config
}

// Stanza is the pgBackRest stanza of an archiving server.
func (s *Server) Stanza() string {
	if s.archive == nil {
		return ""
	}
	return s.archive.stanza
}

// RunAs is the user the server runs as when the test runs as root, nil
// otherwise. pgBackRest commands must run as that user: the repository
// and the data directory belong to it.
func (s *Server) RunAs() *syscall.Credential { return s.cred }

// PgBackRest runs pgbackrest with the server's configuration and stanza,
// as the server's user, and returns what it printed.
func (s *Server) PgBackRest(args ...string) (string, error) {
	if s.archive == nil {
		return "", fmt.Errorf("pgtest: the server was started without Options.Archive")
	}
	cmd := s.command(s.archive.bin, append([]string{"--config=" + s.archive.config, "--stanza=" + s.archive.stanza}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// Wipe deletes the data directory of the stopped server, as a lost disk
// would, leaving an empty directory with the right owner to restore into.
func (s *Server) Wipe() {
	s.tb.Helper()
	if s.PID() != 0 {
		s.tb.Fatal("pgtest: Wipe: stop the server first")
	}
	if err := os.RemoveAll(s.dir); err != nil {
		s.tb.Fatalf("pgtest: %v", err)
	}
	if err := os.Mkdir(s.dir, 0o700); err != nil {
		s.tb.Fatalf("pgtest: %v", err)
	}
	if s.cred != nil {
		if err := os.Chown(s.dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			s.tb.Fatalf("pgtest: %v", err)
		}
	}
}
