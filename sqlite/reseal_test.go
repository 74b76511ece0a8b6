package sqlite_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/sqlite"
	"github.com/tenon-dev/tenon/storetest"
)

// TestResealSwapIsConditional plays the race the conformance suite can
// only provoke: re-sealing reads a row, a reinstall replaces it, then the
// re-sealed old secret is written back. The write must change nothing.
func TestResealSwapIsConditional(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tenon.db")
	keyA, keyB := bytes.Repeat([]byte{1}, keyring.KeySize), bytes.Repeat([]byte{2}, keyring.KeySize)
	krA, _ := keyring.New(keyA)
	krB, _ := keyring.New(keyB)
	s, err := sqlite.Open(path, sqlite.Options{SecretBox: krA})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	raw := func() []string {
		var secret, payload string
		q := `SELECT shared_secret, payload FROM installations WHERE client_key = ?`
		if err := rawDB(t, path).QueryRow(q, "tenant").Scan(&secret, &payload); err != nil {
			t.Fatal(err)
		}
		return []string{secret, payload}
	}

	first := storetest.NewInstallation("tenant")
	if err := s.SaveInstallation(ctx, first); err != nil {
		t.Fatal(err)
	}
	read := raw() // what re-sealing read
	second := storetest.NewInstallation("tenant")
	second.SharedSecret = "the-secret-of-the-reinstall-0123456789abcdef"
	if err := s.SaveInstallation(ctx, second); err != nil {
		t.Fatal(err)
	}
	stored := raw()

	stale := sealAll(t, krB, first.SharedSecret, string(first.Payload))
	if n, err := sqlite.SwapSealed(ctx, s, "installations", "tenant", read, stale); err != nil || n != 0 {
		t.Fatalf("swap over a row changed since the read = %d, %v; want 0, nil", n, err)
	}
	if got := raw(); got[0] != stored[0] || got[1] != stored[1] {
		t.Fatal("the swap replaced a row written after the read")
	}
	if got, _ := s.Installation(ctx, "tenant"); got.SharedSecret != second.SharedSecret {
		t.Fatal("the tenant lost the secret of its reinstall")
	}

	fresh := sealAll(t, krB, second.SharedSecret, string(second.Payload))
	if n, err := sqlite.SwapSealed(ctx, s, "installations", "tenant", stored, fresh); err != nil || n != 1 {
		t.Fatalf("swap over an unchanged row = %d, %v; want 1, nil", n, err)
	}
	onlyB, err := sqlite.Open(path, sqlite.Options{SecretBox: krB})
	if err != nil {
		t.Fatal(err)
	}
	defer onlyB.Close()
	if got, err := onlyB.Installation(ctx, "tenant"); err != nil || got.SharedSecret != second.SharedSecret {
		t.Fatalf("after the swap, key B alone does not give the tenant's secret (err %v)", err)
	}
}

func sealAll(t *testing.T, kr *keyring.Keyring, plains ...string) []string {
	t.Helper()
	var out []string
	for _, p := range plains {
		s, err := kr.Seal([]byte(p))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}
