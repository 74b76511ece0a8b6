package loadseed_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/loadseed"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/sqlite"
)

func TestSeed(t *testing.T) {
	kr, err := keyring.New(bytes.Repeat([]byte{7}, keyring.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "tenon.db"), sqlite.Options{SecretBox: kr})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var progress []int
	if err := loadseed.Seed(context.Background(), st, 2000, loadseed.Options{AppKey: "app", Progress: func(n int) { progress = append(progress, n) }}); err != nil {
		t.Fatal(err)
	}
	list, err := st.Installations(context.Background(), tenon.StateEnabled)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2000 || len(progress) != 2 {
		t.Fatalf("%d tenants, progress %v", len(list), progress)
	}
	in, err := st.Installation(context.Background(), loadseed.ClientKey(1234))
	if err != nil {
		t.Fatal(err)
	}
	if in.SharedSecret != loadseed.Secret(1234) || len(in.SharedSecret) != 64 || loadseed.Secret(1) == loadseed.Secret(2) {
		t.Errorf("secret %q", in.SharedSecret)
	}
}
