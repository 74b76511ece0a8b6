package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/sqlite"
	"github.com/tenon-dev/tenon/storetest"
)

// testKeyring returns a keyring with one fixed key; tests need no secrecy.
func testKeyring(tb testing.TB) *keyring.Keyring {
	tb.Helper()
	kr, err := keyring.New(bytes.Repeat([]byte{7}, keyring.KeySize))
	if err != nil {
		tb.Fatal(err)
	}
	return kr
}

// MustOpen opens a store in a fresh file under tb's temporary directory
// and closes it at cleanup.
func MustOpen(tb testing.TB, now func() time.Time) *sqlite.Store {
	tb.Helper()
	return MustOpenPath(tb, filepath.Join(tb.TempDir(), "tenon.db"), now)
}

// MustOpenPath opens the store at path and closes it at cleanup.
func MustOpenPath(tb testing.TB, path string, now func() time.Time) *sqlite.Store {
	tb.Helper()
	s, err := sqlite.Open(path, sqlite.Options{SecretBox: testKeyring(tb), Now: now})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Error(err)
		}
	})
	return s
}

// rawDB opens the database file directly, bypassing the store.
func rawDB(tb testing.TB, path string) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=query_only(1)")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	// Subtests run in parallel; remember each store's file for RawInstallation.
	var mu sync.Mutex
	paths := make(map[tenon.Store]string)
	storetest.Run(t, func(t *testing.T, now func() time.Time) tenon.Store {
		path := filepath.Join(t.TempDir(), "tenon.db")
		s := MustOpenPath(t, path, now)
		mu.Lock()
		paths[s] = path
		mu.Unlock()
		return s
	}, storetest.Options{
		RawInstallation: func(t *testing.T, s tenon.Store, clientKey string) string {
			mu.Lock()
			path := paths[s]
			mu.Unlock()
			// Read the whole row as stored, every column as text.
			var row []any
			cols := []string{"client_key", "app_key", "shared_secret", "base_url", "display_url", "product_type",
				"oauth_client_id", "installation_id", "cloud_id", "state", "payload", "installed_at", "updated_at", "uninstalled_at"}
			for range cols {
				row = append(row, new(sql.NullString))
			}
			q := "SELECT " + strings.Join(cols, ", ") + " FROM installations WHERE client_key = ?"
			if err := rawDB(t, path).QueryRow(q, clientKey).Scan(row...); err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for _, v := range row {
				fmt.Fprintln(&b, v.(*sql.NullString).String)
			}
			return b.String()
		},
		Rows: func(t *testing.T, s tenon.Store, needle string) map[string]int {
			mu.Lock()
			path := paths[s]
			mu.Unlock()
			return rowsMentioning(t, rawDB(t, path), needle)
		},
		// A closed store is the outage SQLite can have underneath a
		// running program; busy, full and failing disks have their own
		// tests (unavailable_test.go).
		Outage: func(t *testing.T, now func() time.Time) (tenon.Store, func(), func()) {
			s := MustOpenPath(t, filepath.Join(t.TempDir(), "tenon.db"), now)
			return s, func() { s.Close() }, nil
		},
		Reopen: func(t *testing.T, s tenon.Store, box tenon.SecretBox, now func() time.Time) tenon.Store {
			mu.Lock()
			path := paths[s]
			mu.Unlock()
			other, err := sqlite.Open(path, sqlite.Options{SecretBox: box, Now: now})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { other.Close() })
			return other
		},
	})
}

func TestOpenRequiresSecretBox(t *testing.T) {
	_, err := sqlite.Open(filepath.Join(t.TempDir(), "x.db"), sqlite.Options{})
	if err == nil || !strings.Contains(err.Error(), "SecretBox") {
		t.Errorf("err = %v, want one naming SecretBox", err)
	}
}

func TestOpenRejectsNonFiles(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file::memory:?cache=shared"} {
		if s, err := sqlite.Open(path, sqlite.Options{SecretBox: testKeyring(t)}); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", path)
		}
	}
}

func TestOpenMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "x.db")
	if s, err := sqlite.Open(path, sqlite.Options{SecretBox: testKeyring(t)}); err == nil {
		s.Close()
		t.Fatal("Open in a missing directory succeeded")
	}
}

// TestDurabilitySettings checks the settings a crash-safety promise rests
// on, as a separate connection sees them in the file.
func TestDurabilitySettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenon.db")
	MustOpenPath(t, path, nil)
	var mode string
	if err := rawDB(t, path).QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
}

func TestNewFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenon.db")
	MustOpenPath(t, path, nil)
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %04o, want no access for group and others", filepath.Base(p), perm)
		}
	}
}

func TestPathWithSpecialCharacters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a dir?x=1#frag %20", "tenon.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	s := MustOpenPath(t, path, nil)
	if err := s.PutValue(context.Background(), "t", "k", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not created at %q", path)
	}
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tenon.db")
	kr := testKeyring(t)
	ctx := context.Background()
	s, err := sqlite.Open(path, sqlite.Options{SecretBox: kr})
	if err != nil {
		t.Fatal(err)
	}
	in := storetest.NewInstallation("tenant-a")
	if err := s.SaveInstallation(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := s.PutValue(ctx, "tenant-a", "k", []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening runs the migrations again (a no-op) and finds everything.
	s2 := MustOpenPath(t, path, nil)
	got, err := s2.Installation(ctx, "tenant-a")
	if err != nil || got.SharedSecret != in.SharedSecret {
		t.Fatalf("after reopen: %v", err)
	}
	if v, err := s2.GetValue(ctx, "tenant-a", "k"); err != nil || string(v) != `{"v":1}` {
		t.Errorf("after reopen: GetValue = %s, %v", v, err)
	}

	// A store given a keyring without the old key cannot read the secret
	// and says so, instead of returning garbage.
	other, _ := keyring.New(bytes.Repeat([]byte{8}, keyring.KeySize))
	s3, err := sqlite.Open(path, sqlite.Options{SecretBox: other})
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if _, err := s3.Installation(ctx, "tenant-a"); err == nil || !strings.Contains(err.Error(), "key") {
		t.Errorf("Installation with the wrong keyring: %v", err)
	} else if strings.Contains(err.Error(), in.SharedSecret) {
		t.Error("the error reveals the secret")
	}
}

func TestClosedStoreFails(t *testing.T) {
	s, err := sqlite.Open(filepath.Join(t.TempDir(), "x.db"), sqlite.Options{SecretBox: testKeyring(t)})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.Installation(context.Background(), "a"); err == nil {
		t.Error("Installation on a closed store succeeded")
	}
}

// rowsMentioning counts, in every table sqlite_master lists, the rows with
// a column whose text (BLOBs read as text) contains needle.
func rowsMentioning(t *testing.T, db *sql.DB, needle string) map[string]int {
	t.Helper()
	rows, err := db.Query(`SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid`)
	if err != nil {
		t.Fatal(err)
	}
	cols := map[string][]string{}
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			t.Fatal(err)
		}
		cols[table] = append(cols[table], col)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if len(cols) < 10 {
		t.Fatalf("the schema lists only %d tables: %v", len(cols), cols)
	}
	out := map[string]int{}
	for table, cs := range cols {
		var conds []string
		for _, c := range cs {
			conds = append(conds, fmt.Sprintf("instr(CAST(%q AS TEXT), ?1) > 0", c))
		}
		var n int
		q := fmt.Sprintf("SELECT count(*) FROM %q WHERE %s", table, strings.Join(conds, " OR "))
		if err := db.QueryRow(q, needle).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if n > 0 {
			out[table] = n
		}
	}
	return out
}
