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
