package backup_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/backup"
	"github.com/tenon-dev/tenon/keyring"
)

type fixture struct {
	dir    string
	target *backup.Target
	eng    *backup.SQLite
	mgr    *backup.Manager
	now    time.Time
}

func newFixture(t *testing.T, tt backup.Target) *fixture {
	t.Helper()
	target, err := backup.ParseTarget(tt)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{dir: t.TempDir(), target: target, now: day("2026-12-30T03:00")}
	kr := testKeyring(t)
	path := filepath.Join(f.dir, "tenon.db")
	src := openStore(t, path, kr)
	for _, k := range []string{"alpha", "beta", "gamma"} {
		install(t, src, k)
	}
	f.eng = &backup.SQLite{Path: path, Target: target}
	f.mgr = &backup.Manager{Engine: f.eng, Target: target, Keys: kr, Retention: backup.DefaultRetention,
		TempDir: t.TempDir(), Now: func() time.Time { return f.now }}
	return f
}

func TestSnapshotRoundTrip(t *testing.T) {
	for name, tt := range targets(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, tt)
			man, err := f.mgr.Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if man.Name != "20261230T030000Z" || man.Tables["installations"] != 3 || man.VerifiedAt.IsZero() || len(man.SHA256) != 64 {
				t.Fatalf("manifest = %+v", man)
			}
			list, err := f.mgr.List(ctx)
			if err != nil || len(list) != 1 || list[0].SHA256 != man.SHA256 {
				t.Fatalf("list = %v, %v", list, err)
			}
			to := filepath.Join(t.TempDir(), "restored.db")
			if _, err := f.mgr.RestoreSnapshot(ctx, "", to); err != nil {
				t.Fatal(err)
			}
			if got := clientKeys(t, openStore(t, to, f.mgr.Keys)); strings.Join(got, ",") != "alpha,beta,gamma" {
				t.Fatalf("restored %v", got)
			}
		})
	}
}

func TestSnapshotRestoreAfterKeyRotation(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, backup.Target{URL: "file://" + filepath.Join(t.TempDir(), "b")})
	if _, err := f.mgr.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	rotated, err := keyring.New([]byte(strings.Repeat("n", keyring.KeySize)), []byte(strings.Repeat("k", keyring.KeySize)))
	if err != nil {
		t.Fatal(err)
	}
	f.mgr.Keys = rotated
	if _, err := f.mgr.RestoreSnapshot(ctx, "", filepath.Join(t.TempDir(), "r.db")); err != nil {
		t.Fatalf("a key file with the old key after rotation must restore: %v", err)
	}
}

func TestSnapshotRestoreFailures(t *testing.T) {
	ctx := context.Background()
	backups := filepath.Join(t.TempDir(), "b")
	snaps := filepath.Join(backups, "snapshots")
	tests := []struct {
		name   string
		break_ func(t *testing.T, f *fixture, man *backup.Manifest)
		want   error
		says   string
	}{
		{
			name: "wrong key file",
			break_: func(t *testing.T, f *fixture, _ *backup.Manifest) {
				other, _ := keyring.New([]byte(strings.Repeat("x", keyring.KeySize)))
				f.mgr.Keys = other
			},
			want: backup.ErrWrongKey, says: "restore the key file",
		},
		{
			name: "checksum mismatch",
			break_: func(t *testing.T, f *fixture, man *backup.Manifest) {
				path := filepath.Join(snaps, man.Name+".json")
				raw, _ := os.ReadFile(path)
				var m map[string]any
				json.Unmarshal(raw, &m)
				m["sha256"] = strings.Repeat("0", 64)
				raw, _ = json.Marshal(m)
				os.WriteFile(path, raw, 0o600)
			},
			want: backup.ErrBroken, says: "checksum mismatch",
		},
		{
			name: "altered data",
			break_: func(t *testing.T, f *fixture, man *backup.Manifest) {
				path := filepath.Join(snaps, man.Object)
				raw, _ := os.ReadFile(path)
				raw[len(raw)-20] ^= 1
				os.WriteFile(path, raw, 0o600)
			},
			want: backup.ErrBroken, says: "restore an older one",
		},
		{
			name: "missing data",
			break_: func(t *testing.T, f *fixture, man *backup.Manifest) {
				os.Remove(filepath.Join(snaps, man.Object))
			},
			want: backup.ErrBroken, says: "is missing",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.RemoveAll(backups)
			f := newFixture(t, backup.Target{URL: "file://" + backups})
			man, err := f.mgr.Snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tt.break_(t, f, man)
			to := filepath.Join(t.TempDir(), "r.db")
			_, err = f.mgr.RestoreSnapshot(ctx, man.Name, to)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("err = %v, want %v saying %q", err, tt.want, tt.says)
			}
			if _, statErr := os.Stat(to); !os.IsNotExist(statErr) {
				t.Fatal("a failed restore left a database in place")
			}
			if entries, _ := os.ReadDir(filepath.Dir(to)); len(entries) != 0 {
				t.Fatalf("a failed restore left %d files behind", len(entries))
			}
		})
	}
}

func TestPruneSnapshotsOnInjectedClock(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, backup.Target{URL: "file://" + filepath.Join(t.TempDir(), "b")})
	f.mgr.Retention = backup.Retention{Daily: 2, Monthly: 2}
	var names []string
	for _, d := range []string{"2026-11-15T03:00", "2026-12-30T03:00", "2026-12-31T03:00", "2027-01-01T03:00"} {
		f.now = day(d)
		man, err := f.mgr.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, man.Name)
	}
	deleted, err := f.mgr.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Kept: Jan 1 and Dec 31 (daily; Dec 31 is December's newest too).
	if strings.Join(deleted, ",") != names[1]+","+names[0] {
		t.Fatalf("deleted %v", deleted)
	}
	list, _ := f.mgr.List(ctx)
	if len(list) != 2 || list[0].Name != names[3] || list[1].Name != names[2] {
		t.Fatalf("left %v", list)
	}
	entries, _ := os.ReadDir(filepath.Join(filepath.Dir(strings.TrimPrefix(f.target.URL, "file://")), "b", "snapshots"))
	if len(entries) != 4 {
		t.Fatalf("%d files left in snapshots/, want 2 manifests and 2 objects", len(entries))
	}
}
