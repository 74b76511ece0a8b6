package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/storetest"
)

const privateKeyPEM = "-----BEGIN EC PRIVATE KEY-----\nplain-key-material-must-not-appear\n-----END EC PRIVATE KEY-----\n"

// TestKVSealedAtRest reads the kv table below the store: a private key
// put there is not in the database in plain text.
func TestKVSealedAtRest(t *testing.T) {
	dsn := MustSchema(t)
	s := MustOpenDSN(t, dsn, nil)
	ctx := context.Background()
	if err := s.PutKV(ctx, "certificates/ca/a.example/a.example.key", []byte(privateKeyPEM)); err != nil {
		t.Fatal(err)
	}
	var raw string
	if err := rawConn(t, dsn).QueryRow(ctx, `SELECT k::text FROM kv k`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(raw, "plain-key-material") || strings.Contains(raw, "PRIVATE KEY") {
		t.Errorf("the stored row contains the private key in plain text: %q", raw)
	}
}

// TestKVSwappedValueRefused: someone who can write the database moves the
// sealed value of one key under another. The store refuses to open it.
func TestKVSwappedValueRefused(t *testing.T) {
	dsn := MustSchema(t)
	s := MustOpenDSN(t, dsn, nil)
	ctx := context.Background()
	if err := s.PutKV(ctx, "acme/account.key", []byte(privateKeyPEM)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutKV(ctx, "acme/other.key", []byte("other")); err != nil {
		t.Fatal(err)
	}
	_, err := rawConn(t, dsn).Exec(ctx, `UPDATE kv SET value = (SELECT value FROM kv WHERE key = 'acme/account.key') WHERE key = 'acme/other.key'`)
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

// TestLocksSharedByNodes: two stores on one schema are two nodes; a lock
// taken by one is held against the other.
func TestLocksSharedByNodes(t *testing.T) {
	dsn := MustSchema(t)
	a, b := MustOpenDSN(t, dsn, nil), MustOpenDSN(t, dsn, nil)
	ctx := context.Background()
	if ok, err := a.TryLock(ctx, "issue_cert_a.example", "node-a", time.Minute); err != nil || !ok {
		t.Fatalf("node a: %v, %v", ok, err)
	}
	if ok, err := b.TryLock(ctx, "issue_cert_a.example", "node-b", time.Minute); err != nil || ok {
		t.Fatalf("node b took a held lock: %v, %v", ok, err)
	}
	if err := a.Unlock(ctx, "issue_cert_a.example", "node-a"); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.TryLock(ctx, "issue_cert_a.example", "node-b", time.Minute); err != nil || !ok {
		t.Fatalf("node b after the release: %v, %v", ok, err)
	}
}

// TestPing: a fresh store is ready; one whose schema is behind the
// program's migrations is not.
func TestPing(t *testing.T) {
	dsn := MustSchema(t)
	s := MustOpenDSN(t, dsn, nil)
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping of a fresh store: %v", err)
	}
	_, err := rawConn(t, dsn).Exec(ctx, `DELETE FROM tenon_migrations WHERE version_id = (SELECT max(version_id) FROM tenon_migrations)`)
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
	if err := s.Ping(ctx); err != nil { // opens a pooled connection
		t.Fatal(err)
	}
	pools := s.PoolStats()
	if len(pools) != 1 || pools[0].Name != "pool" || pools[0].MaxOpen < 1 || pools[0].Open < 1 {
		t.Errorf("PoolStats = %+v, want one pool with an open connection", pools)
	}
	for _, ck := range []string{"a", "b", "c"} {
		if err := s.SaveInstallation(ctx, storetest.NewInstallation(ck)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SetState(ctx, "c", tenon.StateUninstalled); err != nil {
		t.Fatal(err)
	}
	counts, err := s.CountInstallations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts[tenon.StateEnabled] != 2 || counts[tenon.StateUninstalled] != 1 || counts[tenon.StateDisabled] != 0 {
		t.Errorf("CountInstallations = %v, want 2 enabled and 1 uninstalled", counts)
	}
}
