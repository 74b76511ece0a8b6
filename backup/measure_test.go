package backup_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/backup"
	"github.com/tenon-dev/tenon/internal/loadseed"
	"github.com/tenon-dev/tenon/sqlite"
)

// TestMeasureBackup produces the backup figures of docs/PERFORMANCE.md:
// for 10,000 tenants with 5 stored values each, replicated to a local
// directory, the time to restore the replica, the RTO of a full drill and
// the size of a snapshot. It runs only with TENON_MEASURE=1; its figures
// are reported, not asserted:
//
//	TENON_MEASURE=1 go test -run TestMeasureBackup -v ./backup
func TestMeasureBackup(t *testing.T) {
	if os.Getenv("TENON_MEASURE") != "1" {
		t.Skip("set TENON_MEASURE=1 to measure (see docs/PERFORMANCE.md)")
	}
	const tenants, values = 10000, 5
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "tenon.db")
	kr := testKeyring(t)
	store := openStore(t, db, kr)
	target, _ := backup.ParseTarget(backup.Target{URL: "file://" + filepath.Join(dir, "backups")})
	eng := &backup.SQLite{Path: db, Target: target}
	rep, err := eng.Replicate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rep.Close(ctx)
	if err := loadseed.Seed(ctx, store, tenants, loadseed.Options{AppKey: "tenon-checklist"}); err != nil {
		t.Fatal(err)
	}
	for i := range tenants {
		for v := range values {
			if err := store.PutValue(ctx, loadseed.ClientKey(i), fmt.Sprintf("checklist-%d", v), []byte(`{"items":[{"text":"a checklist item of ordinary length","done":false}]}`)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := rep.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(db)
	t.Logf("database: %d tenants, %d values, %.1f MiB", tenants, tenants*values, float64(st.Size())/(1<<20))

	start := time.Now()
	to := filepath.Join(dir, "restored.db")
	if _, err := eng.RestoreReplica(ctx, time.Time{}, to); err != nil {
		t.Fatal(err)
	}
	t.Logf("restore of the replica (with integrity check): %s", time.Since(start).Round(time.Millisecond))

	mgr := &backup.Manager{Engine: eng, Target: target, Keys: kr, TempDir: dir, Now: time.Now}
	start = time.Now()
	man, err := mgr.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("snapshot: %.1f MiB database, %.1f MiB stored (gzip + age), taken, stored and read back in %s",
		float64(man.PlainSize)/(1<<20), float64(man.Size)/(1<<20), time.Since(start).Round(time.Millisecond))

	for _, from := range []string{"", "latest"} {
		r, err := mgr.Drill(ctx, filepath.Join(dir, "scratch"), backup.DrillOptions{
			Source: store, SourcePath: db, Sync: rep.Sync, Snapshot: from,
			Open: func(ctx context.Context, path string) (tenon.Store, error) {
				return sqlite.Open(path, sqlite.Options{SecretBox: kr})
			},
		})
		if err != nil || !r.OK {
			t.Fatalf("drill: %v %+v", err, r)
		}
		t.Logf("drill from %s: RTO %s, RPO %s, %d tenants, %d secrets decrypted, %d signed requests verified",
			r.From, r.RTO.Round(time.Millisecond), r.RPO, r.Tenants, r.Secrets, r.Requests)
	}
}
