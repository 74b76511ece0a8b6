package edge_test

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/sqlite"
)

// openStore opens a SQLite store in tb's temporary directory.
func openStore(tb testing.TB, now func() time.Time) *sqlite.Store {
	tb.Helper()
	return openStoreAt(tb, filepath.Join(tb.TempDir(), "tenon.db"), now)
}

// openStoreAt opens the store at path: two calls on one path are two
// nodes sharing a database.
func openStoreAt(tb testing.TB, path string, now func() time.Time) *sqlite.Store {
	tb.Helper()
	kr, err := keyring.New(bytes.Repeat([]byte{7}, keyring.KeySize))
	if err != nil {
		tb.Fatal(err)
	}
	s, err := sqlite.Open(path, sqlite.Options{SecretBox: kr, Now: now})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}
