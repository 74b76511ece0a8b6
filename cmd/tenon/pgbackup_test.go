package main_test

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenon-dev/tenon/internal/pgtest"
)

// TestPostgresRestoreAfterDiskLoss is the disk-loss test on PostgreSQL
// with pgBackRest: a private cluster archives WAL (archive_timeout 2s) to
// a pgBackRest repository of its own; tenon backup takes the base
// backup and a logical snapshot; serve takes writes through real routes
// while it watches the archiver; then serve is SIGKILLed, PostgreSQL is
// stopped without a checkpoint and its data directory deleted, tenon
// restore rebuilds it from pgBackRest, PostgreSQL replays the archive,
// and serve starts on it. Every write acknowledged before the last moment
// serve reported the archive complete (the measured recovery point) must
// be there.
func TestPostgresRestoreAfterDiskLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	srv := pgtest.Start(t, pgtest.Options{Archive: &pgtest.Archive{Timeout: 2 * time.Second}})
	dsn := srv.CreateDatabase("tenon")
	bin := buildBinary(t)
	// pgBackRest runs as the owner of its repository, so tenon's backup
	// commands do too (the postgres user, when the test runs as root).
	dir := t.TempDir()
	cred := srv.RunAs()
	if cred != nil {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{filepath.Dir(dir), filepath.Dir(bin)} {
			if err := os.Chmod(d, 0o711); err != nil {
				t.Fatal(err)
			}
		}
	}
	asRepoOwner := func(args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "TENON_CONFIG=")
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		return cmd
	}
	keyFile := filepath.Join(dir, "secret.key")
	if out, err := exec.Command(bin, "keygen", "-o", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	snapshots := filepath.Join(dir, "snapshots")
	if err := os.Mkdir(snapshots, 0o700); err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		for _, p := range []string{keyFile, snapshots} {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				t.Fatal(err)
			}
		}
	}
	backupURL := "pgbackrest://" + srv.Stanza() + "?" + url.Values{"config": {srv.PgBackRestConfig()}, "snapshots": {"file://" + snapshots}}.Encode()
	store := []string{"--db", dsn, "--secret-key-file", keyFile, "--backup-url", backupURL}

	priv, keys := installKeyServer(t)
	addr, admin := freeAddr(t), freeAddr(t)
	baseURL := "http://" + addr
	args := append([]string{
		"--addr", addr, "--base-url", baseURL, "--environment", "development",
		"--install-keys-url", keys.URL, "--log-level", "warn", "--admin-addr", admin, "--drain-delay", "0s",
		"--backup-sync-interval", "200ms", "--backup-schedule", "off", "--drill-schedule", "off",
	}, store...)
	p := startServer(t, bin, args, baseURL)

	// The base backup (and a logical snapshot) before the load.
	if out, err := asRepoOwner(append([]string{"backup"}, store...)...).CombinedOutput(); err != nil {
		t.Fatalf("tenon backup: %v\n%s", err, out)
	} else if !bytes.Contains(out, []byte("pgBackRest full backup")) || !bytes.Contains(out, []byte("logical snapshot")) {
		t.Fatalf("tenon backup said:\n%s", out)
	}

	if out, err := asRepoOwner(append([]string{"backup", "list", "-verify"}, store...)...).CombinedOutput(); err != nil {
		t.Fatalf("tenon backup list: %v\n%s", err, out)
	} else if !bytes.Contains(out, []byte("pgbackrest-full")) || !bytes.Contains(out, []byte("checksum ok now")) {
		t.Fatalf("tenon backup list shows no pgBackRest backup or no verified snapshot:\n%s", out)
	}

	acks, synced, killedAt := loadUntilKilled(t, p, baseURL, admin, priv, "pg", 2000, 6*time.Second)
	srv.Stop(pgtest.Immediate)
	srv.Wipe()

	start := time.Now()
	out, err := asRepoOwner(append([]string{"restore", "--to", srv.DataDir()}, store...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("tenon restore: %v\n%s", err, out)
	}
	restored := time.Since(start)
	srv.Start()
	waitPrimary(t, dsn)
	replayed := time.Since(start)
	startServer(t, bin, args, baseURL)
	serving := time.Since(start)
	checkRestored(t, baseURL, acks, synced, killedAt)
	t.Logf("RTO: pgBackRest restore %s, archive replayed and promoted at %s, serving at %s",
		restored.Round(time.Millisecond), replayed.Round(time.Millisecond), serving.Round(time.Millisecond))

	// On the restored cluster (a new timeline): a backup, then a drill
	// that restores its logical snapshot and checks every tenant.
	if out, err := asRepoOwner(append([]string{"backup"}, store...)...).CombinedOutput(); err != nil {
		t.Fatalf("tenon backup after the restore: %v\n%s", err, out)
	}
	if out, err := asRepoOwner(append([]string{"drill"}, store...)...).CombinedOutput(); err != nil {
		t.Fatalf("tenon drill: %v\n%s", err, out)
	} else {
		t.Logf("drill after the restore:\n%s", out)
	}
}

func waitPrimary(t *testing.T, dsn string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var err error
	for {
		var conn *pgx.Conn
		if conn, err = pgx.Connect(ctx, dsn); err == nil {
			var rec bool
			err = conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&rec)
			conn.Close(ctx)
			if err == nil && !rec {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the restored cluster did not finish recovery: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
