package backup_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/backup"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/sqlite"
)

type drillFixture struct {
	backups string
	path    string
	src     *sqlite.Store
	mgr     *backup.Manager
	opt     backup.DrillOptions
}

// newDrillFixture replicates a store of 30 tenants written in three
// transactions batches, each synced, so the replica has several files.
func newDrillFixture(t *testing.T) *drillFixture {
	t.Helper()
	ctx := context.Background()
	f := &drillFixture{backups: filepath.Join(t.TempDir(), "b")}
	target, _ := backup.ParseTarget(backup.Target{URL: "file://" + f.backups})
	f.path = filepath.Join(t.TempDir(), "tenon.db")
	kr := testKeyring(t)
	f.src = openStore(t, f.path, kr)
	eng := &backup.SQLite{Path: f.path, Target: target, SyncInterval: 50 * time.Millisecond}
	rep, err := eng.Replicate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for batch := range 3 {
		for i := range 10 {
			install(t, f.src, fmt.Sprintf("tenant-%d-%02d", batch, i))
		}
		if err := rep.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := rep.Close(ctx); err != nil {
		t.Fatal(err)
	}
	f.mgr = &backup.Manager{Engine: eng, Target: target, Keys: kr, TempDir: t.TempDir(), Now: time.Now}
	f.opt = backup.DrillOptions{
		Source: f.src, SourcePath: f.path, Sample: 5,
		Open: func(ctx context.Context, path string) (tenon.Store, error) {
			return sqlite.Open(path, sqlite.Options{SecretBox: f.mgr.Keys})
		},
	}
	return f
}

func TestDrillPasses(t *testing.T) {
	f := newDrillFixture(t)
	scratch := t.TempDir()
	rep, err := f.mgr.Drill(context.Background(), scratch, f.opt)
	if err != nil || !rep.OK {
		t.Fatalf("drill: %v %+v", err, rep)
	}
	if rep.Tenants != 30 || rep.Secrets != 30 || rep.Requests != 5 || rep.Integrity != "ok" || rep.RPO != 0 {
		t.Fatalf("report = %+v", rep)
	}
	if c := rep.Tables["installations"]; c != [2]int64{30, 30} {
		t.Fatalf("installations counts %v", c)
	}
	if entries, _ := os.ReadDir(scratch); len(entries) != 0 {
		t.Fatalf("drill left %d entries in its scratch directory", len(entries))
	}
}

func TestDrillFailsWithWrongKeyFile(t *testing.T) {
	f := newDrillFixture(t)
	other, _ := keyring.New([]byte(strings.Repeat("w", keyring.KeySize)))
	f.opt.Open = func(ctx context.Context, path string) (tenon.Store, error) {
		return sqlite.Open(path, sqlite.Options{SecretBox: other})
	}
	rep, _ := f.mgr.Drill(context.Background(), t.TempDir(), f.opt)
	if rep.OK || len(rep.Problems) == 0 || !strings.Contains(rep.Problems[0], "do not decrypt with the current key file") {
		t.Fatalf("report = %+v", rep)
	}
}

func TestDrillFailsOnMissingReplicaSegment(t *testing.T) {
	f := newDrillFixture(t)
	l0 := filepath.Join(f.backups, "replica", "ltx", "0")
	entries, err := os.ReadDir(l0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if len(names) < 3 {
		t.Fatalf("want at least 3 replica segments, have %v", names)
	}
	if err := os.Remove(filepath.Join(l0, names[1])); err != nil {
		t.Fatal(err)
	}
	rep, err := f.mgr.Drill(context.Background(), t.TempDir(), f.opt)
	if err == nil || rep.OK || !errors.Is(err, backup.ErrBroken) {
		t.Fatalf("drill with a segment missing: err %v, report %+v", err, rep)
	}
	if !strings.Contains(rep.Problems[0], "restore the newest snapshot") {
		t.Fatalf("problem does not say what to do: %v", rep.Problems)
	}
}

func TestDrillFromSnapshotFailsOnChecksumMismatch(t *testing.T) {
	f := newDrillFixture(t)
	ctx := context.Background()
	man, err := f.mgr.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.opt.Snapshot = "latest"
	if rep, err := f.mgr.Drill(ctx, t.TempDir(), f.opt); err != nil || !rep.OK {
		t.Fatalf("snapshot drill: %v %+v", err, rep)
	}
	path := filepath.Join(f.backups, "snapshots", man.Name+".json")
	raw, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(raw), man.SHA256, strings.Repeat("f", 64), 1)), 0o600)
	rep, err := f.mgr.Drill(ctx, t.TempDir(), f.opt)
	if err == nil || rep.OK || !strings.Contains(rep.Problems[0], "checksum mismatch") {
		t.Fatalf("drill of a snapshot with a wrong checksum: %v %+v", err, rep)
	}
}
