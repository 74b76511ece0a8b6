package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/keyring"
)

// Keys of the re-sealing cases: A is the key rotated out, B the new one, C
// one the store never gets (values sealed with it open with no keyring).
var (
	resealKeyA = bytes.Repeat([]byte{0xa1}, keyring.KeySize)
	resealKeyB = bytes.Repeat([]byte{0xb2}, keyring.KeySize)
	resealKeyC = bytes.Repeat([]byte{0xc3}, keyring.KeySize)
)

// resealFixture is a database written under key A, then opened by a node
// that rotated to key B.
type resealFixture struct {
	s       *suite
	base    tenon.Store
	clock   *Clock
	rotated tenon.Store // keys B, A
	tenants map[string]*tenon.Installation
	kv      map[string][]byte
	idA     string
	idB     string
}

func (s *suite) reopen(t *testing.T, base tenon.Store, c *Clock, keys ...[]byte) tenon.Store {
	t.Helper()
	kr, err := keyring.New(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return s.reopenBox(t, base, c, kr)
}

func (s *suite) reopenBox(t *testing.T, base tenon.Store, c *Clock, box tenon.SecretBox) tenon.Store {
	t.Helper()
	st := s.opts.Reopen(t, base, box, c.Now)
	if st == nil {
		t.Fatal("storetest: Reopen returned a nil store")
	}
	return st
}

// newResealFixture writes installations (one with neither secret nor
// payload), tokens (one expired) and KV values under key A, and one
// installation and one KV value under key C, which no later keyring has.
func (s *suite) newResealFixture(t *testing.T) *resealFixture {
	t.Helper()
	base, c := s.store(t)
	if _, ok := base.(tenon.Resealer); !ok {
		t.Skipf("%T does not implement tenon.Resealer", base)
	}
	if s.opts.Reopen == nil {
		t.Fatal("storetest: Options.Reopen is required for a store that implements tenon.Resealer")
	}
	if _, ok := base.(tenon.KVStore); !ok {
		t.Fatalf("%T implements tenon.Resealer but not tenon.KVStore", base)
	}
	ctx := context.Background()
	f := &resealFixture{s: s, base: base, clock: c, tenants: map[string]*tenon.Installation{}, kv: map[string][]byte{},
		idA: keyring.KeyID(resealKeyA), idB: keyring.KeyID(resealKeyB)}
	old := s.reopen(t, base, c, resealKeyA)
	for i := range 5 {
		in := NewInstallation(fmt.Sprintf("reseal-%d", i))
		if i == 0 {
			in.SharedSecret, in.Payload = "", nil
		}
		f.tenants[in.ClientKey] = mustSave(t, old, in)
		c.Advance(time.Second)
	}
	tc := old.(tenon.TokenCache)
	mustPutToken(t, tc, "reseal/valid", "token-valid", Start.Add(time.Hour))
	mustPutToken(t, tc, "reseal/expired", "token-expired", Start.Add(-time.Hour))
	for i, v := range []string{"cert", "key", strings.Repeat("large ", 20000)} {
		k := fmt.Sprintf("reseal/kv/%d", i)
		if err := old.(tenon.KVStore).PutKV(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
		f.kv[k] = []byte(v)
	}
	foreign := s.reopen(t, base, c, resealKeyC)
	mustSave(t, foreign, NewInstallation("reseal-foreign"))
	if err := foreign.(tenon.KVStore).PutKV(ctx, "reseal/foreign", []byte("sealed elsewhere")); err != nil {
		t.Fatal(err)
	}
	f.rotated = s.reopen(t, base, c, resealKeyB, resealKeyA)
	return f
}

func (f *resealFixture) counts(t *testing.T, st tenon.Store) map[string]int {
	t.Helper()
	got, err := st.(tenon.Resealer).SealedCounts(context.Background())
	if err != nil {
		t.Fatalf("SealedCounts: %v", err)
	}
	return got
}

func (f *resealFixture) wantCounts(t *testing.T, what string, st tenon.Store, want map[string]int) {
	t.Helper()
	if got := f.counts(t, st); !maps.Equal(got, want) {
		t.Errorf("%s: SealedCounts = %v, want %v", what, got, want)
	}
}

// checkAll reads every value of the fixture through st and compares it
// with what was written.
func (f *resealFixture) checkAll(t *testing.T, what string, st tenon.Store) {
	t.Helper()
	ctx := context.Background()
	for k, want := range f.tenants {
		checkInstallation(t, what+": "+k, mustGet(t, st, k), want)
	}
	wantToken(t, st.(tenon.TokenCache), "reseal/valid", Start, "token-valid", Start.Add(time.Hour))
	for k, want := range f.kv {
		got, _, err := st.(tenon.KVStore).GetKV(ctx, k)
		if err != nil {
			t.Errorf("%s: GetKV(%q): %v", what, k, err)
		} else if !bytes.Equal(got, want) {
			t.Errorf("%s: GetKV(%q) differs (len %d, want len %d)", what, k, len(got), len(want))
		}
	}
}

// testReseal checks the optional tenon.Resealer capability.
func (s *suite) testReseal(t *testing.T) {
	cases := []struct {
		name string
		fn   func(t *testing.T, f *resealFixture)
	}{
		{"CountsChangeNothing", testResealCounts},
		{"RotateResealRetire", testResealRetire},
		{"Resumable", testResealResumable},
		{"ConcurrentWrites", testResealConcurrent},
		{"NeedsKeyedBox", testResealNeedsKeyedBox},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, s.newResealFixture(t))
		})
	}
}

func testResealCounts(t *testing.T, f *resealFixture) {
	before := f.s.opts.RawInstallation(t, f.base, "reseal-1")
	want := map[string]int{f.idA: 5 + 2 + 3, tenon.SealedUnreadable: 2}
	f.wantCounts(t, "after rotation", f.rotated, want)
	f.wantCounts(t, "counted twice", f.rotated, want)
	if after := f.s.opts.RawInstallation(t, f.base, "reseal-1"); after != before {
		t.Error("SealedCounts changed a stored installation")
	}
	// The key that sealed is what counts, not the one that opens: under
	// key A alone the same rows are still A's, and B's new row unreadable.
	mustSave(t, f.rotated, NewInstallation("reseal-new"))
	f.wantCounts(t, "after a new install", f.rotated, map[string]int{f.idA: 10, f.idB: 1, tenon.SealedUnreadable: 2})
	onlyA := f.s.reopen(t, f.base, f.clock, resealKeyA)
	f.wantCounts(t, "under key A alone", onlyA, map[string]int{f.idA: 10, tenon.SealedUnreadable: 3})
}

func testResealRetire(t *testing.T, f *resealFixture) {
	ctx := context.Background()
	foreignBefore := f.s.opts.RawInstallation(t, f.base, "reseal-foreign")
	var calls []int
	n, err := f.rotated.(tenon.Resealer).Reseal(ctx, 3, func(done int) { calls = append(calls, done) })
	if err != nil {
		t.Fatalf("Reseal: %v", err)
	}
	if n != 10 {
		t.Errorf("Reseal re-sealed %d rows, want 10", n)
	}
	if len(calls) < 4 || calls[len(calls)-1] != n {
		t.Errorf("progress calls %v, want one per batch of 3 ending at %d", calls, n)
	}
	for i := 1; i < len(calls); i++ {
		if calls[i] < calls[i-1] {
			t.Errorf("progress went backwards: %v", calls)
		}
	}
	f.wantCounts(t, "after Reseal", f.rotated, map[string]int{f.idB: 10, tenon.SealedUnreadable: 2})
	f.checkAll(t, "rotated store after Reseal", f.rotated)

	// Idempotent: nothing left to do.
	if n, err := f.rotated.(tenon.Resealer).Reseal(ctx, 0, nil); err != nil || n != 0 {
		t.Errorf("second Reseal = %d, %v; want 0, nil", n, err)
	}

	// Retire key A: a node with key B alone reads everything, and the
	// rows nobody could open are still there, untouched.
	retired := f.s.reopen(t, f.base, f.clock, resealKeyB)
	f.checkAll(t, "key A retired", retired)
	f.wantCounts(t, "key A retired", retired, map[string]int{f.idB: 10, tenon.SealedUnreadable: 2})
	if after := f.s.opts.RawInstallation(t, f.base, "reseal-foreign"); after != foreignBefore {
		t.Error("Reseal changed an installation no key opens")
	}
	if _, err := retired.(tenon.KVStore).StatKV(ctx, "reseal/foreign"); err != nil {
		t.Errorf("the unreadable KV entry is gone: %v", err)
	}
	if _, _, err := retired.(tenon.KVStore).GetKV(ctx, "reseal/foreign"); err == nil {
		t.Error("GetKV opened a value sealed with a key the store never had")
	}
	// Re-sealing changes no record's times: it is not an update.
	for k, want := range f.tenants {
		got := mustGet(t, retired, k)
		checkTime(t, k+": UpdatedAt after Reseal", got.UpdatedAt, want.UpdatedAt)
	}
}

func testResealResumable(t *testing.T, f *resealFixture) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := f.rotated.(tenon.Resealer)
	first, err := r.Reseal(ctx, 2, func(int) { cancel() }) // interrupted after one batch
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Reseal: err = %v, want context.Canceled", err)
	}
	if first != 2 {
		t.Errorf("interrupted Reseal re-sealed %d rows, want the 2 of its first batch", first)
	}
	f.wantCounts(t, "after the interruption", f.rotated, map[string]int{f.idA: 10 - first, f.idB: first, tenon.SealedUnreadable: 2})
	rest, err := r.Reseal(context.Background(), 2, nil)
	if err != nil {
		t.Fatalf("resumed Reseal: %v", err)
	}
	if first+rest != 10 {
		t.Errorf("Reseal re-sealed %d then %d rows, want 10 in all", first, rest)
	}
	f.wantCounts(t, "after resuming", f.rotated, map[string]int{f.idB: 10, tenon.SealedUnreadable: 2})
	f.checkAll(t, "after resuming", f.s.reopen(t, f.base, f.clock, resealKeyB))
}

// testResealConcurrent re-seals while a node that still seals with key A
// reinstalls tenants again and again: whatever the interleaving, every
// tenant ends with the secret of its last acknowledged install.
func testResealConcurrent(t *testing.T, f *resealFixture) {
	old := f.s.reopen(t, f.base, f.clock, resealKeyA)
	const rounds = 4
	var wg sync.WaitGroup
	last := make(map[string]*tenon.Installation)
	wg.Go(func() {
		for round := range rounds {
			for k := range f.tenants {
				in := NewInstallation(k)
				in.SharedSecret = fmt.Sprintf("secret-%s-round-%d-0123456789abcdef", k, round)
				if err := old.SaveInstallation(context.Background(), in); err != nil {
					t.Errorf("SaveInstallation(%q): %v", k, err)
					return
				}
				last[k] = in
			}
		}
	})
	r := f.rotated.(tenon.Resealer)
	for range rounds {
		if _, err := r.Reseal(context.Background(), 1, nil); err != nil {
			t.Errorf("Reseal: %v", err)
		}
	}
	wg.Wait()
	for k, want := range last {
		if got := mustGet(t, f.rotated, k); got.SharedSecret != want.SharedSecret {
			t.Errorf("%s: the secret is not the one of the last install: Reseal overwrote a newer write", k)
		}
	}
	// Once the old node is gone, one more run finishes the job.
	if _, err := r.Reseal(context.Background(), 1, nil); err != nil {
		t.Fatal(err)
	}
	f.wantCounts(t, "after the last Reseal", f.rotated, map[string]int{f.idB: 10, tenon.SealedUnreadable: 2})
	retired := f.s.reopen(t, f.base, f.clock, resealKeyB)
	for k, want := range last {
		if got := mustGet(t, retired, k); got.SharedSecret != want.SharedSecret {
			t.Errorf("%s: wrong secret after key A was retired", k)
		}
	}
}

// plainBox hides every method but Seal and Open of the box it wraps.
type plainBox struct{ box tenon.SecretBox }

func (p plainBox) Seal(b []byte) (string, error) { return p.box.Seal(b) }
func (p plainBox) Open(s string) ([]byte, error) { return p.box.Open(s) }

func testResealNeedsKeyedBox(t *testing.T, f *resealFixture) {
	kr, err := keyring.New(resealKeyB, resealKeyA)
	if err != nil {
		t.Fatal(err)
	}
	st := f.s.reopenBox(t, f.base, f.clock, plainBox{kr})
	r := st.(tenon.Resealer)
	if _, err := r.SealedCounts(context.Background()); err == nil || !strings.Contains(err.Error(), "does not name its keys") {
		t.Errorf("SealedCounts with a box without key ids: err = %v, want one saying it does not name its keys", err)
	}
	n, err := r.Reseal(context.Background(), 0, nil)
	if err == nil || !strings.Contains(err.Error(), "does not name its keys") {
		t.Errorf("Reseal with a box without key ids: err = %v, want one saying it does not name its keys", err)
	}
	if n != 0 {
		t.Errorf("Reseal re-sealed %d rows with a box without key ids", n)
	}
	f.wantCounts(t, "after the refused Reseal", f.rotated, map[string]int{f.idA: 10, tenon.SealedUnreadable: 2})
}
