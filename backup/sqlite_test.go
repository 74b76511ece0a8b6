package backup_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/backup"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/sqlite"
)

func testKeyring(t testing.TB) *keyring.Keyring {
	t.Helper()
	kr, err := keyring.New([]byte(strings.Repeat("k", keyring.KeySize)))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func openStore(t testing.TB, path string, kr tenon.SecretBox) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(path, sqlite.Options{SecretBox: kr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func install(t testing.TB, s tenon.Store, clientKey string) {
	t.Helper()
	err := s.SaveInstallation(context.Background(), &tenon.Installation{
		ClientKey: clientKey, SharedSecret: "secret-of-" + clientKey, BaseURL: "https://" + clientKey + ".atlassian.net",
		ProductType: "jira", Payload: []byte(`{}`),
	})
	if err != nil {
		t.Fatal(err)
	}
}

func clientKeys(t testing.TB, s tenon.Store) []string {
	t.Helper()
	ins, err := s.Installations(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, in := range ins {
		out = append(out, in.ClientKey)
	}
	sort.Strings(out)
	return out
}

// fakeS3 is a real S3-compatible server on loopback, with bucket made.
func fakeS3(t testing.TB, bucket string) string {
	t.Helper()
	be := s3mem.New()
	if err := be.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(be).Server())
	t.Cleanup(srv.Close)
	return srv.URL
}

func targets(t *testing.T) map[string]backup.Target {
	// The AWS SDK reads AWS_CA_BUNDLE from the environment, and the
	// replica client's own HTTP client cannot take it.
	t.Setenv("AWS_CA_BUNDLE", "")
	return map[string]backup.Target{
		"file": {URL: "file://" + filepath.Join(t.TempDir(), "backups")},
		"s3":   {URL: "s3://tenon-backups/node-1", Endpoint: fakeS3(t, "tenon-backups"), Region: "eu-west-1", AccessKeyID: "id", SecretAccessKey: "secret"},
	}
}

func TestReplicateAndRestore(t *testing.T) {
	for name, tt := range targets(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			target, err := backup.ParseTarget(tt)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			kr := testKeyring(t)
			src := openStore(t, filepath.Join(dir, "tenon.db"), kr)
			eng := &backup.SQLite{Path: filepath.Join(dir, "tenon.db"), Target: target, SyncInterval: 100 * time.Millisecond}
			rep, err := eng.Replicate(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer rep.Close(ctx)
			for i := range 20 {
				install(t, src, fmt.Sprintf("tenant-%02d", i))
			}
			if err := rep.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if rep.Status().SyncedAt.IsZero() {
				t.Fatal("replica in sync but status does not say so")
			}
			mid := time.Now()
			time.Sleep(1100 * time.Millisecond) // LTX timestamps have millisecond resolution; keep the two states apart
			for i := 20; i < 30; i++ {
				install(t, src, fmt.Sprintf("tenant-%02d", i))
			}
			if err := rep.Sync(ctx); err != nil {
				t.Fatal(err)
			}

			latest := filepath.Join(dir, "latest.db")
			if _, err := eng.RestoreReplica(ctx, time.Time{}, latest); err != nil {
				t.Fatal(err)
			}
			if got := clientKeys(t, openStore(t, latest, kr)); len(got) != 30 {
				t.Fatalf("latest restore has %d tenants, want 30", len(got))
			}
			past := filepath.Join(dir, "past.db")
			if _, err := eng.RestoreReplica(ctx, mid, past); err != nil {
				t.Fatal(err)
			}
			if got := clientKeys(t, openStore(t, past, kr)); len(got) != 20 {
				t.Fatalf("point-in-time restore has %d tenants, want 20", len(got))
			}
			future := filepath.Join(dir, "future.db")
			if _, err := eng.RestoreReplica(ctx, time.Now().Add(time.Hour), future); err != nil {
				t.Fatalf("a moment after the newest write restores the newest state: %v", err)
			}
			if got := clientKeys(t, openStore(t, future, kr)); len(got) != 30 {
				t.Fatalf("restore at a later moment has %d tenants, want 30", len(got))
			}
			_, err = eng.RestoreReplica(ctx, mid.Add(-24*time.Hour), filepath.Join(dir, "old.db"))
			if !errors.Is(err, backup.ErrNoBackup) || !strings.Contains(err.Error(), "restore a snapshot taken before") {
				t.Fatalf("restore before the replication window: %v", err)
			}
		})
	}
}

// TestReplicationContinuesAfterRestore loses the database, restores it
// from the replica, replicates again and restores once more: nothing
// written before or after the first restore is missing.
func TestReplicationContinuesAfterRestore(t *testing.T) {
	ctx := context.Background()
	target, _ := backup.ParseTarget(backup.Target{URL: "file://" + filepath.Join(t.TempDir(), "b")})
	dir := t.TempDir()
	path := filepath.Join(dir, "tenon.db")
	kr := testKeyring(t)
	src, err := sqlite.Open(path, sqlite.Options{SecretBox: kr})
	if err != nil {
		t.Fatal(err)
	}
	eng := &backup.SQLite{Path: path, Target: target, SyncInterval: 100 * time.Millisecond}
	rep, err := eng.Replicate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	install(t, src, "before")
	if err := rep.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	rep.Close(ctx)
	src.Close()
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		os.Remove(f)
	}
	if _, err := eng.RestoreReplica(ctx, time.Time{}, path); err != nil {
		t.Fatal(err)
	}
	src = openStore(t, path, kr)
	rep, err = eng.Replicate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close(ctx)
	install(t, src, "after")
	if err := rep.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	again := filepath.Join(dir, "again.db")
	if _, err := eng.RestoreReplica(ctx, time.Time{}, again); err != nil {
		t.Fatal(err)
	}
	if got := clientKeys(t, openStore(t, again, kr)); strings.Join(got, ",") != "after,before" {
		t.Fatalf("after a restore and more writes, restore has %v", got)
	}
}

func TestRestoreFromEmptyTarget(t *testing.T) {
	target, _ := backup.ParseTarget(backup.Target{URL: "file://" + filepath.Join(t.TempDir(), "b")})
	eng := &backup.SQLite{Path: filepath.Join(t.TempDir(), "x.db"), Target: target}
	to := filepath.Join(t.TempDir(), "r.db")
	_, err := eng.RestoreReplica(context.Background(), time.Time{}, to)
	if !errors.Is(err, backup.ErrNoBackup) {
		t.Fatalf("err = %v, want ErrNoBackup", err)
	}
	if _, statErr := os.Stat(to); !os.IsNotExist(statErr) {
		t.Fatal("a failed restore left a file behind")
	}
}
