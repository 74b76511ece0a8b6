package sqlite_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/sqlite"
	"github.com/tenon-dev/tenon/storetest"
)

// TestLookupsEndWithTheirContext: the point reads stop when their context
// does, before they start or while they wait for a lookup connection, and
// the store reads normally afterwards. (During the read itself the driver
// watches the context, as it does for every other statement.)
func TestLookupsEndWithTheirContext(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tenon.db")
	st, err := sqlite.Open(path, sqlite.Options{SecretBox: testKeyring(t), MaxReaders: 1, BusyTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	in := storetest.NewInstallation("ctx-tenant")
	if err := st.SaveInstallation(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := st.PutValue(ctx, in.ClientKey, "kept", json.RawMessage(`1`)); err != nil {
		t.Fatal(err)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := st.GetValue(cancelled, in.ClientKey, "kept"); !errors.Is(err, context.Canceled) {
		t.Errorf("GetValue under a cancelled context: %v, want context.Canceled", err)
	}
	if _, err := st.Installation(cancelled, in.ClientKey); !errors.Is(err, context.Canceled) {
		t.Errorf("Installation under a cancelled context: %v, want context.Canceled", err)
	}

	// A read in progress holds the only lookup connection, so the next
	// waits for it, and stops when its deadline passes.
	release, err := sqlite.HoldLookup(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	_, err = st.Installation(short, in.ClientKey)
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) || tenon.ErrorCode(err) != tenon.EUNAVAILABLE {
		t.Errorf("Installation waiting for a lookup connection past its deadline: %v (code %s), want EUNAVAILABLE from the deadline", err, tenon.ErrorCode(err))
	}
	waiting, cancelWaiting := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := st.GetValue(waiting, in.ClientKey, "kept")
		done <- err
	}()
	cancelWaiting()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("GetValue waiting for a lookup connection, then cancelled: %v, want context.Canceled", err)
	}
	if w := st.PoolStats()[2].WaitCount; w < 1 {
		t.Errorf("lookup WaitCount = %d after a wait", w)
	}
	// A waiting read goes on once the connection is free.
	go func() {
		_, err := st.GetValue(ctx, in.ClientKey, "kept")
		done <- err
	}()
	release()
	if err := <-done; err != nil {
		t.Errorf("GetValue waiting for a lookup connection that came back: %v", err)
	}

	if v, err := st.GetValue(ctx, in.ClientKey, "kept"); err != nil || string(v) != "1" {
		t.Errorf("GetValue after the lock is gone: %s, %v", v, err)
	}
	if got, err := st.Installation(ctx, in.ClientKey); err != nil || got.ClientKey != in.ClientKey {
		t.Errorf("Installation after the lock is gone: %+v, %v", got, err)
	}
}

// TestLookupInterruptedByItsContext: a statement on a lookup connection
// that would run for minutes stops when its deadline passes, and the
// connection then serves the next read.
func TestLookupInterruptedByItsContext(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "tenon.db"), sqlite.Options{SecretBox: testKeyring(t), MaxReaders: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.PutValue(ctx, "tenant-a", "kept", json.RawMessage(`1`)); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := sqlite.SlowLookup(short, st); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a long statement past its deadline: %v, want context.DeadlineExceeded", err)
	}
	// The only lookup connection is the one interrupted.
	if v, err := st.GetValue(ctx, "tenant-a", "kept"); err != nil || string(v) != "1" {
		t.Errorf("GetValue after an interrupted statement: %s, %v", v, err)
	}
	cancelled, cancel2 := context.WithCancel(ctx)
	go cancel2()
	if err := sqlite.SlowLookup(cancelled, st); !errors.Is(err, context.Canceled) {
		t.Errorf("a long statement, cancelled: %v, want context.Canceled", err)
	}
}

// TestLookupBusyHandler: a lookup waiting for a lock another process
// holds waits as SQLite's own handler does, up to the busy timeout, and
// no longer once its context is done.
func TestLookupBusyHandler(t *testing.T) {
	ctx := context.Background()
	if !sqlite.LookupBusy(ctx, time.Second, 0) {
		t.Error("the first wait, well within the timeout, was refused")
	}
	if sqlite.LookupBusy(ctx, 10*time.Millisecond, 5) {
		t.Error("a wait past the busy timeout was granted")
	}
	if !sqlite.LookupBusy(ctx, time.Hour, 40) {
		t.Error("a late wait within a long timeout was refused")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if sqlite.LookupBusy(cancelled, time.Hour, 0) {
		t.Error("a wait under a cancelled context was granted")
	}
}

// TestLookupWaitsForALockUntilItsContextEnds: a lookup waiting for a lock
// another connection holds (here on a rollback-journal database, where a
// writer's exclusive lock shuts readers out) gives up at the busy
// timeout, or as soon as its context ends, whichever comes first.
func TestLookupWaitsForALockUntilItsContextEnds(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "rollback.db")
	db := writableDB(t, path)
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `PRAGMA journal_mode = DELETE;
		CREATE TABLE app_data (client_key TEXT, key TEXT, value BLOB, PRIMARY KEY (client_key, key)) WITHOUT ROWID;
		CREATE TABLE installations (client_key TEXT PRIMARY KEY, app_key, shared_secret, base_url, display_url,
			product_type, oauth_client_id, installation_id, cloud_id, state, payload, installed_at, updated_at,
			uninstalled_at, superseded_by);
		INSERT INTO app_data VALUES ('tenant-a', 'kept', x'31')`); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		busyTimeout time.Duration
		ctxTimeout  time.Duration
		want        func(error) bool
	}{
		{"busy timeout first", 30 * time.Millisecond, time.Hour, func(err error) bool {
			return tenon.ErrorCode(sqlite.Fail(err)) == tenon.EUNAVAILABLE && !errors.Is(err, context.DeadlineExceeded)
		}},
		{"context first", time.Hour, 30 * time.Millisecond, func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			get, closeLookup, err := sqlite.OpenLookup(path, tc.busyTimeout)
			if err != nil {
				t.Fatal(err)
			}
			defer closeLookup()
			if v, err := get(ctx, "tenant-a", "kept"); err != nil || string(v) != "1" {
				t.Fatalf("before the lock: %s, %v", v, err)
			}
			conn, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
				t.Fatal(err)
			}
			cctx, cancel := context.WithTimeout(ctx, tc.ctxTimeout)
			_, err = get(cctx, "tenant-a", "kept")
			cancel()
			if !tc.want(err) {
				t.Errorf("read while another connection holds the lock: %v", err)
			}
			if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
				t.Fatal(err)
			}
			if v, err := get(ctx, "tenant-a", "kept"); err != nil || string(v) != "1" {
				t.Errorf("after the lock: %s, %v", v, err)
			}
		})
	}
}
