package sqlite_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/sqlite"
	"github.com/tenon-dev/tenon/storetest"
)

// wantUnavailable fails t unless err is EUNAVAILABLE saying msgPart.
func wantUnavailable(t *testing.T, what string, err error, msgPart string) {
	t.Helper()
	if code := tenon.ErrorCode(err); code != tenon.EUNAVAILABLE {
		t.Fatalf("%s: code %q, want %q (%v)", what, code, tenon.EUNAVAILABLE, err)
	}
	if msg := tenon.ErrorMessage(err); !strings.Contains(msg, msgPart) || strings.Contains(msg, "sqlite") {
		t.Errorf("%s: message %q, want one saying %q without driver detail", what, msg, msgPart)
	}
}

// TestBusyPastTimeoutIsUnavailable holds the write lock from another
// connection, as a backup tool or the sqlite3 shell may, for longer than
// the store waits: the write fails with EUNAVAILABLE and changes nothing;
// reads go on meanwhile, and writes work again once the lock is gone.
func TestBusyPastTimeoutIsUnavailable(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tenon.db")
	st, err := sqlite.Open(path, sqlite.Options{SecretBox: testKeyring(t), BusyTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	in := storetest.NewInstallation("busy-tenant")
	if err := st.SaveInstallation(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := st.PutValue(ctx, in.ClientKey, "kept", json.RawMessage(`1`)); err != nil {
		t.Fatal(err)
	}

	other, err := writableDB(t, path).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	err = st.PutValue(ctx, in.ClientKey, "refused", json.RawMessage(`2`))
	wantUnavailable(t, "PutValue while another process holds the write lock", err, "busy")
	_, err = st.SetState(ctx, in.ClientKey, tenon.StateDisabled)
	wantUnavailable(t, "SetState while another process holds the write lock", err, "busy")
	if v, err := st.GetValue(ctx, in.ClientKey, "kept"); err != nil || string(v) != "1" {
		t.Errorf("reads stopped while the write lock was held: %s, %v", v, err)
	}
	if _, err := other.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}

	if _, err := st.GetValue(ctx, in.ClientKey, "refused"); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("a refused write was stored: %v", err)
	}
	if got, err := st.Installation(ctx, in.ClientKey); err != nil || got.State != tenon.StateEnabled {
		t.Errorf("a refused state change was stored: %+v, %v", got, err)
	}
	if err := st.PutValue(ctx, in.ClientKey, "after", json.RawMessage(`3`)); err != nil {
		t.Errorf("write after the lock was released: %v", err)
	}
}

// TestDiskFullIsUnavailable lets the database grow no further, as a full
// disk would: the write fails with EUNAVAILABLE saying so and changes
// nothing; with room again, the same store writes.
func TestDiskFullIsUnavailable(t *testing.T) {
	ctx := context.Background()
	st := MustOpen(t, nil)
	in := storetest.NewInstallation("full-tenant")
	if err := st.SaveInstallation(ctx, in); err != nil {
		t.Fatal(err)
	}
	// max_page_count cannot go below the current size, so this caps the
	// file where it is.
	if err := sqlite.ExecWriter(st, "PRAGMA max_page_count = 1"); err != nil {
		t.Fatal(err)
	}
	big := json.RawMessage(`"` + strings.Repeat("x", 200<<10) + `"`)
	err := st.PutValue(ctx, in.ClientKey, "big", big)
	wantUnavailable(t, "PutValue with the disk full", err, "disk space")
	if _, err := st.GetValue(ctx, in.ClientKey, "big"); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("a write refused for lack of space was stored: %v", err)
	}
	if _, err := st.Installation(ctx, in.ClientKey); err != nil {
		t.Errorf("the tenant is gone after the disk filled: %v", err)
	}

	if err := sqlite.ExecWriter(st, "PRAGMA max_page_count = 1073741823"); err != nil {
		t.Fatal(err)
	}
	if err := st.PutValue(ctx, in.ClientKey, "big", big); err != nil {
		t.Errorf("write with room again: %v", err)
	}
}

// TestClosedStoreIsUnavailable: a call that races the shutdown of the
// process gets a 503 to retry, not a 500.
func TestClosedStoreIsUnavailable(t *testing.T) {
	st := MustOpen(t, nil)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := st.Installation(context.Background(), "any-tenant")
	wantUnavailable(t, "Installation on a closed store", err, "shutting down")
}

// TestResultCodes maps SQLite's result codes, extended ones included:
// lock, space and storage failures are EUNAVAILABLE, the rest (bugs,
// corruption, constraint violations) are not.
func TestResultCodes(t *testing.T) {
	for _, tc := range []struct {
		name string
		code int
		want string
	}{
		{"BUSY", sqlite3.SQLITE_BUSY, "busy"},
		{"BUSY_SNAPSHOT", sqlite3.SQLITE_BUSY | 2<<8, "busy"},
		{"LOCKED", sqlite3.SQLITE_LOCKED, "busy"},
		{"FULL", sqlite3.SQLITE_FULL, "disk space"},
		{"IOERR", sqlite3.SQLITE_IOERR, "storage"},
		{"IOERR_WRITE", sqlite3.SQLITE_IOERR | 3<<8, "storage"},
		{"IOERR_FSYNC", sqlite3.SQLITE_IOERR | 4<<8, "storage"},
		{"CANTOPEN", sqlite3.SQLITE_CANTOPEN, "storage"},
		{"CONSTRAINT", sqlite3.SQLITE_CONSTRAINT, ""},
		{"CORRUPT", sqlite3.SQLITE_CORRUPT, ""},
		{"ERROR", sqlite3.SQLITE_ERROR, ""},
		{"READONLY", sqlite3.SQLITE_READONLY, ""}, // a write sent to a reader: a bug
		{"MISUSE", sqlite3.SQLITE_MISUSE, ""},
	} {
		got := sqlite.CodeMessage(tc.code)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s (%d): %q, want a message saying %q", tc.name, tc.code, got, tc.want)
		}
	}
}
