package storetest

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
)

// testKV checks the optional tenon.KVStore and tenon.Locker capabilities.
// A store without them skips these cases.
func (s *suite) testKV(t *testing.T) {
	cases := []struct {
		name string
		fn   func(t *testing.T, kv tenon.KVStore, c *Clock)
	}{
		{"PutGetStatDelete", testKVPutGet},
		{"Validation", testKVValidation},
		{"List", testKVList},
		{"DeletePrefix", testKVDeletePrefix},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, c := s.store(t)
			kv, ok := st.(tenon.KVStore)
			if !ok {
				t.Skipf("%T does not implement tenon.KVStore", st)
			}
			tc.fn(t, kv, c)
		})
	}
	locks := []struct {
		name string
		fn   func(t *testing.T, l tenon.Locker, c *Clock)
	}{
		{"Exclusive", testLockExclusive},
		{"Expiry", testLockExpiry},
		{"Concurrent", testLockConcurrent},
		{"Validation", testLockValidation},
	}
	for _, tc := range locks {
		t.Run("Lock/"+tc.name, func(t *testing.T) {
			t.Parallel()
			st, c := s.store(t)
			l, ok := st.(tenon.Locker)
			if !ok {
				t.Skipf("%T does not implement tenon.Locker", st)
			}
			tc.fn(t, l, c)
		})
	}
}

func testKVPutGet(t *testing.T, kv tenon.KVStore, c *Clock) {
	ctx := context.Background()
	if _, _, err := kv.GetKV(ctx, "certificates/a/a.crt"); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("GetKV of a missing key: %v, want ENOTFOUND", err)
	}
	if _, err := kv.StatKV(ctx, "certificates/a/a.crt"); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("StatKV of a missing key: %v, want ENOTFOUND", err)
	}
	// Any bytes come back as they were given, empty values included.
	values := [][]byte{[]byte("-----BEGIN CERTIFICATE-----\n"), {0, 1, 2, 0xff, 0}, {}, bytes.Repeat([]byte{0xab}, tenon.MaxKVValueSize)}
	for i, v := range values {
		c.Advance(time.Second)
		if err := kv.PutKV(ctx, "certificates/a/a.crt", v); err != nil {
			t.Fatalf("PutKV value %d: %v", i, err)
		}
		got, info, err := kv.GetKV(ctx, "certificates/a/a.crt")
		if err != nil {
			t.Fatalf("GetKV value %d: %v", i, err)
		}
		if !bytes.Equal(got, v) {
			t.Errorf("GetKV value %d: %d bytes back, want %d the same", i, len(got), len(v))
		}
		want := tenon.KVInfo{Key: "certificates/a/a.crt", Size: int64(len(v)), Modified: c.Now()}
		if info.Key != want.Key || info.Size != want.Size || !info.Modified.Equal(want.Modified) {
			t.Errorf("GetKV value %d: info %+v, want %+v", i, info, want)
		}
		st, err := kv.StatKV(ctx, "certificates/a/a.crt")
		if err != nil || st.Key != want.Key || st.Size != want.Size || !st.Modified.Equal(want.Modified) {
			t.Errorf("StatKV value %d: %+v, %v; want %+v", i, st, err, want)
		}
	}
	if err := kv.DeleteKV(ctx, "certificates/a/a.crt"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := kv.GetKV(ctx, "certificates/a/a.crt"); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("GetKV after DeleteKV: %v, want ENOTFOUND", err)
	}
	if err := kv.DeleteKV(ctx, "certificates/a/a.crt"); err != nil {
		t.Errorf("deleting a missing key: %v", err)
	}
}

func testKVValidation(t *testing.T, kv tenon.KVStore, _ *Clock) {
	ctx := context.Background()
	longest := strings.Repeat("k", tenon.MaxKVKeyLength)
	if err := kv.PutKV(ctx, longest, []byte("v")); err != nil {
		t.Errorf("PutKV with the longest key: %v", err)
	}
	badKeys := map[string]string{
		"empty":    "",
		"too long": longest + "k",
		"not UTF8": "caf\xe9",
		"NUL":      "a\x00b",
	}
	for name, key := range badKeys {
		wantCode(t, "PutKV with "+name+" key", kv.PutKV(ctx, key, []byte("v")), tenon.EINVALID)
		_, _, err := kv.GetKV(ctx, key)
		wantCode(t, "GetKV with "+name+" key", err, tenon.EINVALID)
		_, err = kv.StatKV(ctx, key)
		wantCode(t, "StatKV with "+name+" key", err, tenon.EINVALID)
		wantCode(t, "DeleteKV with "+name+" key", kv.DeleteKV(ctx, key), tenon.EINVALID)
	}
	wantCode(t, "PutKV of a value over the limit", kv.PutKV(ctx, "k", make([]byte, tenon.MaxKVValueSize+1)), tenon.ETOOLARGE)
	_, err := kv.DeleteKVPrefix(ctx, "")
	wantCode(t, "DeleteKVPrefix with an empty prefix", err, tenon.EINVALID)
	_, err = kv.ListKV(ctx, "a\x00", "", 10)
	wantCode(t, "ListKV with a NUL in the prefix", err, tenon.EINVALID)
	if got, err := kv.ListKV(ctx, "", "", 0); err != nil || len(got) != 1 || got[0].Key != longest {
		t.Errorf("after the refused writes the store holds %d keys (%v), want only the valid one", len(got), err)
	}
}

func testKVList(t *testing.T, kv tenon.KVStore, _ *Clock) {
	ctx := context.Background()
	// Byte order, with LIKE metacharacters as plain characters.
	keys := []string{"acme/b", "acme/a%", "acme/a", "acme_x", "acme/a/deep", "acmf", "acme/\u00e9", "acme/Z", "acm"}
	for _, k := range keys {
		if err := kv.PutKV(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	list := func(prefix, after string, limit int) []string {
		t.Helper()
		infos, err := kv.ListKV(ctx, prefix, after, limit)
		if err != nil {
			t.Fatalf("ListKV(%q, %q, %d): %v", prefix, after, limit, err)
		}
		var out []string
		for _, in := range infos {
			if in.Size != int64(len(in.Key)) {
				t.Errorf("ListKV: %q has size %d, want %d", in.Key, in.Size, len(in.Key))
			}
			out = append(out, in.Key)
		}
		return out
	}
	tests := []struct {
		prefix, after string
		limit         int
		want          []string
	}{
		{"acme/", "", 0, []string{"acme/Z", "acme/a", "acme/a%", "acme/a/deep", "acme/b", "acme/\u00e9"}},
		{"acme/", "acme/a%", 0, []string{"acme/a/deep", "acme/b", "acme/\u00e9"}},
		{"acme/", "", 2, []string{"acme/Z", "acme/a"}},
		{"acme/a", "", 0, []string{"acme/a", "acme/a%", "acme/a/deep"}},
		{"acme_", "", 0, []string{"acme_x"}},
		{"", "acme_x", 0, []string{"acmf"}},
		{"nothing/", "", 0, nil},
	}
	for _, tc := range tests {
		if got := list(tc.prefix, tc.after, tc.limit); !equalStrings(got, tc.want) {
			t.Errorf("ListKV(%q, %q, %d) = %q, want %q", tc.prefix, tc.after, tc.limit, got, tc.want)
		}
	}
}

func testKVDeletePrefix(t *testing.T, kv tenon.KVStore, _ *Clock) {
	ctx := context.Background()
	for _, k := range []string{"certs/a.example/crt", "certs/a.example/key", "certs/a.example.org/crt", "certs/b/crt", "certs/a"} {
		if err := kv.PutKV(ctx, k, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	n, err := kv.DeleteKVPrefix(ctx, "certs/a.example/")
	if err != nil || n != 2 {
		t.Fatalf("DeleteKVPrefix = %d, %v; want 2", n, err)
	}
	infos, err := kv.ListKV(ctx, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, in := range infos {
		left = append(left, in.Key)
	}
	if want := []string{"certs/a", "certs/a.example.org/crt", "certs/b/crt"}; !equalStrings(left, want) {
		t.Errorf("left after DeleteKVPrefix: %q, want %q", left, want)
	}
	if n, err := kv.DeleteKVPrefix(ctx, "nothing/"); err != nil || n != 0 {
		t.Errorf("DeleteKVPrefix of nothing = %d, %v", n, err)
	}
}

func testLockExclusive(t *testing.T, l tenon.Locker, _ *Clock) {
	ctx := context.Background()
	try := func(name, owner string, want bool) {
		t.Helper()
		got, err := l.TryLock(ctx, name, owner, time.Minute)
		if err != nil {
			t.Fatalf("TryLock(%q, %q): %v", name, owner, err)
		}
		if got != want {
			t.Fatalf("TryLock(%q, %q) = %v, want %v", name, owner, got, want)
		}
	}
	try("issue_cert_a", "node-1", true)
	try("issue_cert_a", "node-2", false)
	try("issue_cert_a", "node-1", true) // the holder extends its lease
	try("issue_cert_b", "node-2", true) // other names are independent
	if err := l.Unlock(ctx, "issue_cert_a", "node-2"); err != nil {
		t.Fatalf("Unlock by a non-holder: %v", err)
	}
	try("issue_cert_a", "node-2", false) // a non-holder's unlock released nothing
	if err := l.Unlock(ctx, "issue_cert_a", "node-1"); err != nil {
		t.Fatal(err)
	}
	try("issue_cert_a", "node-2", true)
	if err := l.Unlock(ctx, "never_taken", "node-1"); err != nil {
		t.Errorf("Unlock of a free lock: %v", err)
	}
}

func testLockExpiry(t *testing.T, l tenon.Locker, c *Clock) {
	ctx := context.Background()
	if ok, err := l.TryLock(ctx, "job", "node-1", time.Minute); err != nil || !ok {
		t.Fatalf("first TryLock: %v, %v", ok, err)
	}
	c.Advance(59 * time.Second)
	if ok, err := l.TryLock(ctx, "job", "node-2", time.Minute); err != nil || ok {
		t.Fatalf("TryLock during the lease: %v, %v; want false", ok, err)
	}
	// The holder renews; the lease now ends a minute from here.
	if ok, err := l.TryLock(ctx, "job", "node-1", time.Minute); err != nil || !ok {
		t.Fatalf("renewal: %v, %v", ok, err)
	}
	c.Advance(59 * time.Second)
	if ok, err := l.TryLock(ctx, "job", "node-2", time.Minute); err != nil || ok {
		t.Fatalf("TryLock during the renewed lease: %v, %v; want false", ok, err)
	}
	c.Advance(time.Second)
	if ok, err := l.TryLock(ctx, "job", "node-2", time.Minute); err != nil || !ok {
		t.Fatalf("TryLock after the lease ran out: %v, %v; want true", ok, err)
	}
	// The old holder's late Unlock must not free the new holder's lock.
	if err := l.Unlock(ctx, "job", "node-1"); err != nil {
		t.Fatal(err)
	}
	if ok, err := l.TryLock(ctx, "job", "node-3", time.Minute); err != nil || ok {
		t.Fatalf("TryLock after a stale Unlock: %v, %v; want false", ok, err)
	}
}

func testLockConcurrent(t *testing.T, l tenon.Locker, _ *Clock) {
	ctx := context.Background()
	const holders = 8
	for round := range 5 {
		name := fmt.Sprintf("round-%d", round)
		var won atomic.Int32
		var wg sync.WaitGroup
		for i := range holders {
			wg.Go(func() {
				ok, err := l.TryLock(ctx, name, fmt.Sprintf("node-%d", i), time.Minute)
				if err != nil {
					t.Errorf("TryLock: %v", err)
				}
				if ok {
					won.Add(1)
				}
			})
		}
		wg.Wait()
		if n := won.Load(); n != 1 {
			t.Errorf("round %d: %d holders got the lock, want exactly 1", round, n)
		}
	}
}

func testLockValidation(t *testing.T, l tenon.Locker, _ *Clock) {
	ctx := context.Background()
	bad := []struct {
		what        string
		name, owner string
		ttl         time.Duration
	}{
		{"empty name", "", "o", time.Minute},
		{"NUL in name", "a\x00", "o", time.Minute},
		{"empty owner", "n", "", time.Minute},
		{"zero TTL", "n", "o", 0},
		{"negative TTL", "n", "o", -time.Second},
	}
	for _, b := range bad {
		ok, err := l.TryLock(ctx, b.name, b.owner, b.ttl)
		wantCode(t, "TryLock with "+b.what, err, tenon.EINVALID)
		if ok {
			t.Errorf("TryLock with %s reported the lock taken", b.what)
		}
	}
	wantCode(t, "Unlock with an empty owner", l.Unlock(ctx, "n", ""), tenon.EINVALID)
}
