package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/cli"
	"github.com/tenon-dev/tenon/examples/checklist"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/sqlite"
)

func writeKeyFile(t *testing.T, path string) *keyring.Keyring {
	t.Helper()
	line, err := keyring.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func run(t *testing.T, vars map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Run(context.Background(), cli.Env{Stdout: &out, Stderr: &errb, Getenv: env(vars)}, nil, args)
	return code, out.String(), errb.String()
}

func TestBackupListRestoreDrill(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret.key")
	kr := writeKeyFile(t, keyFile)
	db := filepath.Join(dir, "tenon.db")
	st, err := sqlite.Open(db, sqlite.Options{SecretBox: kr})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		err := st.SaveInstallation(context.Background(), &tenon.Installation{
			ClientKey: fmt.Sprintf("site-%d", i), SharedSecret: strings.Repeat("s", 32), BaseURL: "https://x.atlassian.net", Payload: []byte(`{}`),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	vars := map[string]string{
		"TENON_DB": db, "TENON_SECRET_KEY_FILE": keyFile,
		"TENON_BACKUP_URL": "file://" + filepath.Join(dir, "backups"),
	}

	code, out, errs := run(t, vars, "backup")
	if code != 0 || !strings.Contains(out, "read back and verified") || !strings.Contains(out, "5 tenants") {
		t.Fatalf("backup: %d\n%s\n%s", code, out, errs)
	}
	// Not a terminal: plain progress lines.
	if !strings.Contains(errs, "compress and encrypt: 100%") {
		t.Fatalf("no progress lines: %s", errs)
	}
	code, out, errs = run(t, vars, "backup", "list", "-verify")
	if code != 0 || !strings.Contains(out, "NAME") || !strings.Contains(out, "snapshot") || !strings.Contains(out, "checksum ok now") {
		t.Fatalf("backup list: %d\n%s\n%s", code, out, errs)
	}

	to := filepath.Join(dir, "restored.db")
	code, out, errs = run(t, vars, "restore", "--snapshot", "latest", "--to", to)
	if code != 0 || !strings.Contains(out, "checksum and integrity check passed") {
		t.Fatalf("restore: %d\n%s\n%s", code, out, errs)
	}
	code, _, errs = run(t, vars, "restore", "--snapshot", "latest", "--to", to)
	if code != 1 || !strings.Contains(errs, "exists; restore to a new path") {
		t.Fatalf("restore over an existing file: %d %s", code, errs)
	}

	code, out, errs = run(t, vars, "drill", "-snapshot", "latest")
	if code != 0 || !strings.Contains(out, "drill PASSED") || !strings.Contains(out, "5 signed requests verified") {
		t.Fatalf("drill: %d\n%s\n%s", code, out, errs)
	}

	// Another key file: the drill fails and says what to do.
	other := filepath.Join(dir, "other.key")
	writeKeyFile(t, other)
	vars["TENON_SECRET_KEY_FILE"] = other
	code, out, errs = run(t, vars, "drill", "-snapshot", "latest")
	if code != 1 || !strings.Contains(errs, "key file in escrow") {
		t.Fatalf("drill with another key file: %d\n%s\n%s", code, out, errs)
	}
	code, _, errs = run(t, vars, "restore", "--snapshot", "latest", "--to", filepath.Join(dir, "r2.db"))
	if code != 1 || !strings.Contains(errs, "does not decrypt this backup") {
		t.Fatalf("restore with another key file: %d %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "r2.db")); !os.IsNotExist(err) {
		t.Fatal("a failed restore left a file")
	}
}

func TestBackupSettingsErrors(t *testing.T) {
	base := []string{"--base-url", "https://a.example.com", "--secret-key-file", "k"}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--backup-url", "ftp://x"}, "file:///directory or s3://bucket/prefix"},
		{[]string{"--backup-url", "file://relative/dir"}, "three slashes"},
		{[]string{"--backup-url", "file:///b", "--backup-keep", "7,4"}, "DAILY,WEEKLY,MONTHLY"},
		{[]string{"--backup-url", "file:///b", "--backup-schedule", "sometimes"}, "hourly, daily, weekly, off"},
		{[]string{"--restore-if-empty", "true"}, "needs --backup-url"},
		{[]string{"--backup-url", "file:///b", "--db", "postgres://h/db"}, "pgBackRest"},
		{[]string{"--backup-url", "pgbackrest://main?snapshots=file:///b"}, "pgbackrest:// backs up a PostgreSQL store"},
		{[]string{"--backup-url", "pgbackrest://main", "--db", "postgres://h/db"}, "add snapshots="},
		{[]string{"--backup-url", "pgbackrest://main?snapshots=file://rel/b", "--db", "postgres://h/db"}, "the snapshots parameter"},
		{[]string{"--backup-url", "pgbackrest://main?snapshots=file:///b", "--db", "postgres://h/db", "--restore-if-empty", "true"}, "tenon restore --to DATADIR"},
	}
	for _, tc := range tests {
		_, err := cli.LoadConfig(append(base, tc.args...), env(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
	cfg, err := cli.LoadConfig(append(base, "--backup-url", "s3://bucket/node-1", "--backup-keep", "1,2,3", "--drill-schedule", "off"), env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if k := cfg.Backup.Keep; k.Daily != 1 || k.Weekly != 2 || k.Monthly != 3 || cfg.Backup.DrillSchedule != 0 || cfg.Backup.Schedule.Hours() != 24 {
		t.Fatalf("backup config %+v", cfg.Backup)
	}
	pg, err := cli.LoadConfig(append(base, "--db", "postgres://h/db", "--backup-url", "pgbackrest://main?config=/etc/pgbackrest/pgbackrest.conf&snapshots=s3://bucket/tenon"), env(nil), io.Discard)
	if err != nil || pg.Backup.Target.URL == "" {
		t.Fatalf("pgbackrest URL: %+v, %v", pg, err)
	}
}

// TestServeRefusesWhenRestoreFails: with --restore-if-empty, a missing
// database and a backup that does not restore (here: taken with another
// key file), serve does not start, says why, and creates no database.
func TestServeRefusesWhenRestoreFails(t *testing.T) {
	dir := t.TempDir()
	oldKey := filepath.Join(dir, "old.key")
	kr := writeKeyFile(t, oldKey)
	db := filepath.Join(dir, "tenon.db")
	st, err := sqlite.Open(db, sqlite.Options{SecretBox: kr})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	backups := "file://" + filepath.Join(dir, "backups")
	if code, out, errs := run(t, map[string]string{"TENON_DB": db, "TENON_SECRET_KEY_FILE": oldKey, "TENON_BACKUP_URL": backups}, "backup"); code != 0 {
		t.Fatalf("backup: %s %s", out, errs)
	}
	for _, f := range []string{db, db + "-wal", db + "-shm"} {
		os.Remove(f)
	}
	newKey := filepath.Join(dir, "new.key")
	writeKeyFile(t, newKey)
	code, _, errs := run(t, nil, "serve", "--addr", "127.0.0.1:0", "--base-url", "http://127.0.0.1:1",
		"--environment", "development", "--install-keys-url", "http://127.0.0.1:1", "--admin-addr", "off",
		"--db", db, "--secret-key-file", newKey, "--backup-url", backups, "--restore-if-empty", "true")
	if code != 1 || !strings.Contains(errs, "does not restore, so serve does not start") || !strings.Contains(errs, "key file in escrow") {
		t.Fatalf("serve: %d\n%s", code, errs)
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Fatal("serve created a database after a failed restore")
	}
}

// TestServeTakesSnapshotsAndDrillsOnSchedule runs serve with short
// schedules and waits (bounded) for a snapshot and a passed drill to
// appear at the target and in the metrics.
func TestServeTakesSnapshotsAndDrillsOnSchedule(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret.key")
	writeKeyFile(t, keyFile)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin := ln.Addr().String()
	ln.Close()
	backups := filepath.Join(dir, "backups")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() {
		done <- cli.Run(ctx, cli.Env{Stdout: io.Discard, Stderr: &syncWriter{w: &errb}, Getenv: env(nil)}, checklist.New(checklist.Options{}), []string{"serve",
			"--addr", "127.0.0.1:0", "--base-url", "http://127.0.0.1:1", "--environment", "development",
			"--install-keys-url", "http://127.0.0.1:1", "--admin-addr", admin, "--drain-delay", "0s",
			"--db", filepath.Join(dir, "tenon.db"), "--secret-key-file", keyFile, "--log-level", "warn",
			"--backup-url", "file://" + backups, "--backup-schedule", "1h", "--drill-schedule", "1h"})
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d", code)
		}
	}()
	var drill, snaps bool
	for i := 0; i < 300 && !(drill && snaps); i++ {
		time.Sleep(100 * time.Millisecond)
		_, err := os.Stat(filepath.Join(backups, "drills", "latest.json"))
		drill = err == nil
		m, _ := filepath.Glob(filepath.Join(backups, "snapshots", "*.json"))
		snaps = len(m) == 1
	}
	if !drill || !snaps {
		t.Fatalf("after 30 s: drill report %v, snapshot %v\n%s", drill, snaps, errb.String())
	}
	// The gauges are set just after the files they describe are written:
	// wait for all of them.
	wants := []string{"tenon_backup_drill_success 1", "tenon_backup_last_snapshot_timestamp_seconds 1", "tenon_backup_replication_lag_seconds"}
	hasAll := func(m string) bool {
		for _, w := range wants {
			if !strings.Contains(m, w) {
				return false
			}
		}
		return true
	}
	var metrics string
	for i := 0; i < 100 && !hasAll(metrics); i++ {
		resp, err := http.Get("http://" + admin + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			metrics = string(b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, want := range wants {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
