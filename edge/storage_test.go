package edge_test

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/edge"
	"github.com/tenon-dev/tenon/storetest"
)

func TestStorageFiles(t *testing.T) {
	st, err := edge.NewStorage(openStore(t, nil), edge.StorageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := st.Load(ctx, "certificates/ca/a.example/a.example.crt"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing key: %v, want fs.ErrNotExist", err)
	}
	if _, err := st.Stat(ctx, "certificates"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat of a missing key: %v, want fs.ErrNotExist", err)
	}
	if _, err := st.List(ctx, "certificates", false); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("List of a missing directory: %v, want fs.ErrNotExist", err)
	}
	files := []string{
		"certificates/ca/a.example/a.example.crt",
		"certificates/ca/a.example/a.example.key",
		"certificates/ca/b.example/b.example.crt",
		"certificates/ca2/a.example/a.example.crt",
		"acme/ca/users/default/default.json",
	}
	for _, f := range files {
		if err := st.Store(ctx, f, []byte("data of "+f)); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := st.Load(ctx, files[1]); err != nil || string(v) != "data of "+files[1] {
		t.Errorf("Load = %q, %v", v, err)
	}
	info, err := st.Stat(ctx, files[0])
	if err != nil || !info.IsTerminal || info.Size != int64(len("data of "+files[0])) || info.Key != files[0] {
		t.Errorf("Stat of a file = %+v, %v", info, err)
	}
	if info, err := st.Stat(ctx, "certificates/ca"); err != nil || info.IsTerminal {
		t.Errorf("Stat of a directory = %+v, %v", info, err)
	}
	if !st.Exists(ctx, "certificates/ca/a.example") || st.Exists(ctx, "certificates/ca/c.example") || st.Exists(ctx, "certificates/c") {
		t.Error("Exists is wrong")
	}
	tests := []struct {
		dir       string
		recursive bool
		want      []string
	}{
		{"certificates", false, []string{"certificates/ca", "certificates/ca2"}},
		{"certificates/ca", false, []string{"certificates/ca/a.example", "certificates/ca/b.example"}},
		{"certificates/ca", true, []string{
			"certificates/ca/a.example", "certificates/ca/a.example/a.example.crt", "certificates/ca/a.example/a.example.key",
			"certificates/ca/b.example", "certificates/ca/b.example/b.example.crt",
		}},
		{"", false, []string{"acme", "certificates"}},
	}
	for _, tc := range tests {
		got, err := st.List(ctx, tc.dir, tc.recursive)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("List(%q, %v) = %q, %v; want %q", tc.dir, tc.recursive, got, err, tc.want)
		}
	}
	// Deleting a directory deletes what is under it, and nothing else
	// ("certificates/ca2" shares a prefix with "certificates/ca").
	if err := st.Delete(ctx, "certificates/ca"); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.List(ctx, "certificates", true); !slices.Equal(got, []string{"certificates/ca2", "certificates/ca2/a.example", "certificates/ca2/a.example/a.example.crt"}) {
		t.Errorf("after deleting certificates/ca: %q", got)
	}
	if err := st.Delete(ctx, "no/such/key"); err != nil {
		t.Errorf("Delete of a missing key: %v", err)
	}
	if err := st.Delete(ctx, ""); err == nil {
		t.Error("Delete of the root succeeded")
	}
}

// Locks are shared by every Storage on one store (every node), and by
// goroutines of one process.
func TestStorageLocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenon.db")
	a, err := edge.NewStorage(openStoreAt(t, path, nil), edge.StorageOptions{Node: "a", LockPoll: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b, err := edge.NewStorage(openStoreAt(t, path, nil), edge.StorageOptions{Node: "b", LockPoll: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := a.Lock(ctx, "issue_cert_a.example"); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.TryLock(ctx, "issue_cert_a.example"); err != nil || ok {
		t.Fatalf("node b took a lock node a holds: %v, %v", ok, err)
	}
	if ok, err := a.TryLock(ctx, "issue_cert_a.example"); err != nil || ok {
		t.Fatalf("a second holder in node a took the lock: %v, %v", ok, err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := b.Lock(short, "issue_cert_a.example"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock of a held lock: %v, want to wait until the context ends", err)
	}
	got := make(chan error, 1)
	go func() { got <- b.Lock(ctx, "issue_cert_a.example") }()
	if err := a.Unlock(ctx, "issue_cert_a.example"); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("node b after the release: %v", err)
	}
	// Node a no longer holds the lock: its late Unlock must leave node
	// b's lock in place.
	if err := a.Unlock(ctx, "issue_cert_a.example"); err != nil {
		t.Errorf("Unlock of a lock this node no longer holds: %v", err)
	}
	if ok, err := a.TryLock(ctx, "issue_cert_a.example"); err != nil || ok {
		t.Fatalf("a stale Unlock released another node's lock: %v, %v", ok, err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.TryLock(ctx, "issue_cert_a.example"); err != nil || !ok {
		t.Fatalf("after node b closed its storage: %v, %v", ok, err)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// A lock whose holder died is free once its lease runs out; a holder
// that asks for a longer lease keeps it.
func TestStorageLockLease(t *testing.T) {
	clk := storetest.NewClock(storetest.Start)
	path := filepath.Join(t.TempDir(), "tenon.db")
	opts := edge.StorageOptions{LockTTL: time.Hour} // no renewal tick during the test
	a, _ := edge.NewStorage(openStoreAt(t, path, clk.Now), opts)
	b, _ := edge.NewStorage(openStoreAt(t, path, clk.Now), opts)
	ctx := context.Background()
	if ok, err := a.TryLock(ctx, "renew_b.example"); err != nil || !ok {
		t.Fatal(ok, err)
	}
	clk.Advance(59 * time.Minute)
	if err := a.RenewLockLease(ctx, "renew_b.example", 3*time.Hour); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Hour)
	if ok, err := b.TryLock(ctx, "renew_b.example"); err != nil || ok {
		t.Fatalf("lock taken during a renewed lease: %v, %v", ok, err)
	}
	clk.Advance(time.Hour)
	if ok, err := b.TryLock(ctx, "renew_b.example"); err != nil || !ok {
		t.Fatalf("lock of a dead holder not free after its lease: %v, %v", ok, err)
	}
	if err := a.RenewLockLease(ctx, "renew_b.example", time.Hour); err == nil {
		t.Error("renewing a lost lock succeeded")
	}
	_ = a.Close(ctx)
	_ = b.Close(ctx)
}

// A store without the KV capabilities is refused with a clear message.
func TestStorageNeedsKV(t *testing.T) {
	var plain struct{ tenon.Store }
	if _, err := edge.NewStorage(plain, edge.StorageOptions{}); err == nil {
		t.Fatal("NewStorage accepted a store without tenon.KVStore")
	}
}
