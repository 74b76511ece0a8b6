package backup_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/backup"
	"github.com/tenon-dev/tenon/internal/loadseed"
	"github.com/tenon-dev/tenon/internal/pgtest"
	"github.com/tenon-dev/tenon/postgres"
)

// TestMeasurePgBackRest produces the PostgreSQL backup figures of
// docs/PERFORMANCE.md: for 10,000 tenants with 5 stored values each in a
// private archiving cluster, the time of a full pgBackRest backup, of a
// restore into an empty data directory until the cluster has replayed
// the archive and answers as a primary, of a logical snapshot, and the
// RTO of a drill of that snapshot. Figures are reported, not asserted:
//
//	TENON_MEASURE=1 go test -run TestMeasurePgBackRest -v ./backup
func TestMeasurePgBackRest(t *testing.T) {
	if os.Getenv("TENON_MEASURE") != "1" {
		t.Skip("set TENON_MEASURE=1 to measure (see docs/PERFORMANCE.md)")
	}
	const tenants, values = 10000, 5
	f := newPGFixture(t)
	ctx := context.Background()
	if err := loadseed.Seed(ctx, f.store, tenants, loadseed.Options{AppKey: "tenon-checklist"}); err != nil {
		t.Fatal(err)
	}
	for i := range tenants {
		for v := range values {
			if err := f.store.PutValue(ctx, loadseed.ClientKey(i), fmt.Sprintf("checklist-%d", v), []byte(`{"items":[{"text":"a checklist item of ordinary length","done":false}]}`)); err != nil {
				t.Fatal(err)
			}
		}
	}
	start := time.Now()
	b, err := f.engine.Backup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pgBackRest %s backup: %.1f MiB in %s", b.Type, float64(b.Size)/(1<<20), time.Since(start).Round(time.Millisecond))

	target, _ := backup.ParseTarget(backup.Target{URL: "file://" + t.TempDir()})
	mgr := &backup.Manager{Engine: f.engine, Target: target, Keys: f.keys, TempDir: t.TempDir(), Now: time.Now}
	start = time.Now()
	man, err := mgr.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("logical snapshot: %.1f MiB export, %.1f MiB stored (gzip + age), taken, stored and read back in %s",
		float64(man.PlainSize)/(1<<20), float64(man.Size)/(1<<20), time.Since(start).Round(time.Millisecond))

	scratch := f.srv.CreateDatabase("scratch")
	r, err := mgr.Drill(ctx, t.TempDir(), backup.DrillOptions{
		Source: f.store, SourcePath: f.dsn, Snapshot: "latest",
		Open: func(ctx context.Context, file string) (tenon.Store, error) {
			st, err := postgres.Open(ctx, scratch, postgres.Options{SecretBox: f.keys})
			if err != nil {
				return nil, err
			}
			_, err = backup.ImportLogical(ctx, file, scratch)
			return st, err
		},
	})
	if err != nil || !r.OK {
		t.Fatalf("drill: %v %+v", err, r)
	}
	t.Logf("drill of the logical snapshot into an empty database: RTO %s, %d tenants, %d secrets decrypted, %d signed requests verified",
		r.RTO.Round(time.Millisecond), r.Tenants, r.Secrets, r.Requests)

	f.store.Close()
	f.srv.Stop(pgtest.Immediate)
	f.srv.Wipe()
	start = time.Now()
	if _, err := f.engine.RestoreReplica(ctx, time.Time{}, f.srv.DataDir()); err != nil {
		t.Fatal(err)
	}
	restored := time.Since(start)
	f.srv.Start()
	waitPrimary(t, f.dsn)
	st, err := postgres.Open(ctx, f.dsn, postgres.Options{SecretBox: f.keys})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Installation(ctx, loadseed.ClientKey(tenants-1)); err != nil {
		t.Fatal(err)
	}
	t.Logf("pgBackRest restore into an empty data directory: %s; replayed, promoted and answering: %s",
		restored.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}
