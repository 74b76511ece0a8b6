package sqlite_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/storetest"
)

const privateKeyPEM = "-----BEGIN EC PRIVATE KEY-----\nplain-key-material-must-not-appear\n-----END EC PRIVATE KEY-----\n"

// writableDB opens the database file directly for writing, bypassing the
// store, as someone with access to the file could.
func writableDB(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// TestKVSealedAtRest reads the kv table below the store: a private key
// put there is not in the file in plain text.
func TestKVSealedAtRest(t *testing.T) {
	path := t.TempDir() + "/tenon.db"
	s := MustOpenPath(t, path, nil)
	ctx := context.Background()
	if err := s.PutKV(ctx, "certificates/ca/a.example/a.example.key", []byte(privateKeyPEM)); err != nil {
		t.Fatal(err)
	}
	var value string
	if err := rawDB(t, path).QueryRow(`SELECT value FROM kv`).Scan(&value); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(value, "plain-key-material") || strings.Contains(value, "PRIVATE KEY") {
		t.Errorf("the stored value contains the private key in plain text: %q", value)
	}
}

// TestKVSwappedValueRefused: someone who can write the file moves the
// sealed value of one key under another. The store refuses to open it.
func TestKVSwappedValueRefused(t *testing.T) {
	path := t.TempDir() + "/tenon.db"
	s := MustOpenPath(t, path, nil)
	ctx := context.Background()
	if err := s.PutKV(ctx, "acme/account.key", []byte(privateKeyPEM)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutKV(ctx, "acme/other.key", []byte("other")); err != nil {
		t.Fatal(err)
	}
	_, err := writableDB(t, path).Exec(`UPDATE kv SET value = (SELECT value FROM kv WHERE key = 'acme/account.key') WHERE key = 'acme/other.key'`)
	if err != nil {
		t.Fatal(err)
	}
	v, _, err := s.GetKV(ctx, "acme/other.key")
	if err == nil {
		t.Fatalf("GetKV of a moved value succeeded with %d bytes", len(v))
	}
	if strings.Contains(err.Error(), "plain-key-material") {
		t.Errorf("the error reveals the value: %v", err)
	}
}

// TestPing: a fresh store is ready; one whose schema is behind the
// program's migrations is not.
func TestPing(t *testing.T) {
	path := t.TempDir() + "/tenon.db"
	s := MustOpenPath(t, path, nil)
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping of a fresh store: %v", err)
	}
	_, err := writableDB(t, path).Exec(`DELETE FROM tenon_migrations WHERE version_id = (SELECT max(version_id) FROM tenon_migrations)`)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err == nil || !strings.Contains(err.Error(), "schema version") {
		t.Errorf("Ping with a schema behind: %v, want a schema version error", err)
	}
}

func TestPoolStatsAndCounts(t *testing.T) {
	s := MustOpen(t, nil)
	ctx := context.Background()
	pools := s.PoolStats()
	if len(pools) != 3 || pools[0].Name != "writer" || pools[0].MaxOpen != 1 || pools[1].Name != "reader" || pools[1].MaxOpen < 1 ||
		pools[2].Name != "lookup" || pools[2].MaxOpen < 1 {
		t.Errorf("PoolStats = %+v, want the single writer, the readers and the lookups", pools)
	}
	for _, ck := range []string{"a", "b", "c"} {
		if err := s.SaveInstallation(ctx, storetest.NewInstallation(ck)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SetState(ctx, "c", tenon.StateDisabled); err != nil {
		t.Fatal(err)
	}
	counts, err := s.CountInstallations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts[tenon.StateEnabled] != 2 || counts[tenon.StateDisabled] != 1 || counts[tenon.StateUninstalled] != 0 {
		t.Errorf("CountInstallations = %v, want 2 enabled and 1 disabled", counts)
	}
}
