package backup_test

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/backup"
	"github.com/tenon-dev/tenon/internal/pgtest"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/postgres"
)

func TestParsePgBackRestURL(t *testing.T) {
	ok, err := backup.ParsePgBackRestURL("pgbackrest://main?config=/etc/pgbackrest/other.conf&snapshots=file:///var/backups/tenon")
	if err != nil {
		t.Fatal(err)
	}
	if ok.Stanza != "main" || ok.Config != "/etc/pgbackrest/other.conf" || ok.Snapshots != "file:///var/backups/tenon" {
		t.Fatalf("parsed %+v", ok)
	}
	def, err := backup.ParsePgBackRestURL("pgbackrest://main?snapshots=s3://bucket/tenon")
	if err != nil || def.Config != backup.DefaultPgBackRestConfig {
		t.Fatalf("default config: %+v, %v", def, err)
	}
	for raw, want := range map[string]string{
		"pgbackrest://?snapshots=file:///b":                                "name the pgBackRest stanza",
		"pgbackrest://ma_in!?snapshots=file:///b":                          "name the pgBackRest stanza",
		"pgbackrest://main/path?snapshots=file:///b":                       "only a stanza name",
		"pgbackrest://user@main?snapshots=file:///b":                       "only a stanza name",
		"pgbackrest://main:5432?snapshots=file:///b":                       "only a stanza name",
		"pgbackrest://main":                                                "add snapshots=",
		"pgbackrest://main?config=etc/pgbackrest.conf&snapshots=file:///b": "absolute path",
		"pgbackrest://main?snapshots=file:///b&snapshots=file:///c":        "given 2 times",
		"pgbackrest://main?snapshots=file:///b&repo=1":                     `unknown parameter "repo"`,
		"pgbackrest://main?snapshots=pgbackrest://other":                   "file:///dir or s3://",
		"pgbackrest:main?snapshots=file:///b":                              "want pgbackrest://STANZA",
	} {
		_, err := backup.ParsePgBackRestURL(raw)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error saying %q", raw, err, want)
		}
	}
}

// pgFixture is a private archiving cluster with a tenon store in it.
type pgFixture struct {
	srv    *pgtest.Server
	dsn    string
	store  *postgres.Store
	keys   *keyring.Keyring
	engine *backup.PgBackRest
}

func newPGFixture(t *testing.T) *pgFixture {
	t.Helper()
	srv := pgtest.Start(t, pgtest.Options{Archive: &pgtest.Archive{Timeout: 2 * time.Second}})
	dsn := srv.CreateDatabase("tenon")
	kr := testKeyring(t)
	st, err := postgres.Open(context.Background(), dsn, postgres.Options{SecretBox: kr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cred := srv.RunAs()
	eng := &backup.PgBackRest{
		Stanza: srv.Stanza(), Config: srv.PgBackRestConfig(), DSN: dsn, SyncInterval: 100 * time.Millisecond,
		Command: func(ctx context.Context, name string, args ...string) *exec.Cmd {
			cmd := exec.CommandContext(ctx, name, args...)
			if cred != nil {
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
			}
			return cmd
		},
	}
	return &pgFixture{srv: srv, dsn: dsn, store: st, keys: kr, engine: eng}
}

// TestPgBackRestBackupArchiveRestore takes a full backup, writes, waits
// for the archiver to report the write shipped, takes a differential,
// loses the data directory and restores it: every write the archive
// watch reported shipped is back.
func TestPgBackRestBackupArchiveRestore(t *testing.T) {
	f := newPGFixture(t)
	ctx := context.Background()
	install(t, f.store, "before-backup")
	b, err := f.engine.Backup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b.Type != "full" {
		t.Fatalf("first backup is %s, want full", b.Type)
	}
	rep, err := f.engine.Replicate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close(ctx)
	install(t, f.store, "after-backup")
	acked := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := rep.Sync(sctx); err != nil {
		t.Fatal(err)
	}
	if st := rep.Status(); st.Err != nil || st.SyncedAt.Before(acked) {
		t.Fatalf("status after sync: %+v; want synced after %s", st, acked)
	}
	diff, err := f.engine.Backup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff.Type != "diff" {
		t.Fatalf("second backup within a week is %s, want diff", diff.Type)
	}
	info, err := f.engine.Info(ctx)
	if err != nil || len(info.Backups) != 2 || info.ArchiveMax == "" {
		t.Fatalf("info: %+v, %v", info, err)
	}

	f.store.Close()
	f.srv.Stop(pgtest.Immediate)
	// A restore never writes over a data directory that holds one.
	if _, err := f.engine.RestoreReplica(ctx, time.Time{}, f.srv.DataDir()); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("restore over a data directory: %v", err)
	}
	f.srv.Wipe()
	// Before the oldest backup there is nothing pgBackRest can restore.
	if _, err := f.engine.RestoreReplica(ctx, b.Start.Add(-time.Hour), f.srv.DataDir()); !errors.Is(err, backup.ErrNoBackup) {
		t.Fatalf("restore before the oldest backup: %v, want ErrNoBackup", err)
	}
	if _, err := f.engine.RestoreReplica(ctx, time.Time{}, f.srv.DataDir()); err != nil {
		t.Fatal(err)
	}
	f.srv.Start()
	waitPrimary(t, f.dsn)
	st, err := postgres.Open(ctx, f.dsn, postgres.Options{SecretBox: f.keys})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got := clientKeys(t, st); !slices.Equal(got, []string{"after-backup", "before-backup"}) {
		t.Fatalf("restored tenants %v", got)
	}
}

func TestPgBackRestErrors(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{Archive: &pgtest.Archive{}})
	ctx := context.Background()
	missing := &backup.PgBackRest{Stanza: "nope", Config: srv.PgBackRestConfig(), Bin: filepath.Join(t.TempDir(), "pgbackrest")}
	if _, err := missing.Info(ctx); err == nil || !strings.Contains(err.Error(), "install pgBackRest") {
		t.Fatalf("missing binary: %v", err)
	}
	wrong := &backup.PgBackRest{Stanza: "nope", Config: srv.PgBackRestConfig()}
	_, err := wrong.Backup(ctx)
	if err == nil || !strings.HasPrefix(err.Error(), "pgbackrest info failed: ") || !strings.Contains(err.Error(), `check stanza "nope"`) {
		t.Fatalf("unknown stanza: %v", err)
	}
}

// TestLogicalSnapshotRoundTrip takes a snapshot of a PostgreSQL store
// (a logical export, encrypted and checksummed like SQLite's), restores
// it into an empty database, and refuses to restore into one with data.
func TestLogicalSnapshotRoundTrip(t *testing.T) {
	f := newPGFixture(t)
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c"} {
		install(t, f.store, k)
		if err := f.store.PutValue(ctx, k, "doc", []byte(`{"v":"`+k+`\n\\"}`)); err != nil {
			t.Fatal(err)
		}
	}
	target, err := backup.ParseTarget(backup.Target{URL: "file://" + t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	m := &backup.Manager{Engine: f.engine, Target: target, Keys: f.keys, TempDir: t.TempDir()}
	man, err := m.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if man.Kind != "postgres" || man.Tables["installations"] != 3 || man.Tables["app_data"] != 3 {
		t.Fatalf("manifest %+v", man)
	}
	file := filepath.Join(t.TempDir(), "export.jsonl")
	if _, err := m.RestoreSnapshot(ctx, "", file); err != nil {
		t.Fatal(err)
	}
	// Into a database holding data: refused, and the data is unchanged.
	if _, err := backup.ImportLogical(ctx, file, f.dsn); err == nil || !strings.Contains(err.Error(), "already holds tenon data") {
		t.Fatalf("import into a full database: %v", err)
	}
	if got := clientKeys(t, f.store); len(got) != 3 {
		t.Fatalf("source changed: %v", got)
	}
	fresh := f.srv.CreateDatabase("fresh")
	st, err := postgres.Open(ctx, fresh, postgres.Options{SecretBox: f.keys})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	in, err := backup.ImportLogical(ctx, file, fresh)
	if err != nil {
		t.Fatal(err)
	}
	if in.Tables["installations"] != 3 {
		t.Fatalf("imported %+v", in.Tables)
	}
	got, err := st.Installation(ctx, "b")
	if err != nil || got.SharedSecret != "secret-of-b" {
		t.Fatalf("restored tenant b: %+v, %v", got, err)
	}
	v, err := st.GetValue(ctx, "c", "doc")
	if err != nil || string(v) != `{"v":"c\n\\"}` {
		t.Fatalf("restored value %s, %v", v, err)
	}
	// The restored store takes new jobs: its id sequence is past the
	// restored ids.
	if err := st.SaveInstallation(ctx, &tenon.Installation{ClientKey: "d", SharedSecret: "s", State: tenon.StateEnabled}); err != nil {
		t.Fatal(err)
	}
}

func waitPrimary(t *testing.T, dsn string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, dsn)
		if err == nil {
			var rec bool
			err = conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&rec)
			conn.Close(ctx)
			if err == nil && !rec {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the restored server did not finish recovery: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Without archiving there is no recovery point to watch: serve is told
// at once, not given a lag metric that never moves.
func TestArchiveWatchRefusesArchiveModeOff(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	eng := &backup.PgBackRest{Stanza: "tenon", Config: "/nonexistent", DSN: srv.DSN("postgres")}
	_, err := eng.Replicate(context.Background())
	if err == nil || !strings.Contains(err.Error(), "archive_mode is off") {
		t.Fatalf("Replicate without archiving: %v", err)
	}
}

// A failing archive_command is reported, with its segment, and the
// recovery point does not move past the last segment archived.
func TestArchiveWatchReportsFailingArchiveCommand(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{Archive: &pgtest.Archive{}, Settings: []string{"archive_command=false"}})
	ctx := context.Background()
	eng := &backup.PgBackRest{Stanza: srv.Stanza(), Config: srv.PgBackRestConfig(), DSN: srv.DSN("postgres"), SyncInterval: 50 * time.Millisecond}
	rep, err := eng.Replicate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close(ctx)
	conn, err := pgx.Connect(ctx, srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE t (v int); INSERT INTO t VALUES (1); SELECT pg_switch_wal()"); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := rep.Sync(sctx); err == nil {
		t.Fatal("Sync succeeded while archive_command fails")
	} else if !strings.Contains(err.Error(), "archive_command failed for WAL segment") {
		t.Fatalf("Sync: %v", err)
	}
	if st := rep.Status(); st.Err == nil || !st.SyncedAt.IsZero() {
		t.Fatalf("status %+v: want the failure and no recovery point", st)
	}
}
