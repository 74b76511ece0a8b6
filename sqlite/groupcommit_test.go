package sqlite_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/sqlite"
	"github.com/tenon-dev/tenon/storetest"
)

// holdWriter takes the write lock from another connection, as a backup
// tool may, so that writes queue for a group commit; release gives it
// back.
func holdWriter(t *testing.T, path string) (release func()) {
	t.Helper()
	ctx := context.Background()
	other, err := writableDB(t, path).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	return func() {
		if _, err := other.ExecContext(ctx, "ROLLBACK"); err != nil {
			t.Error(err)
		}
		other.Close()
	}
}

// waitForLeader waits until a write leads a group commit: it holds the
// single writer connection, waiting for the lock.
func waitForLeader(t *testing.T, st *sqlite.Store) {
	t.Helper()
	waitUntil(t, "a write leads", func() bool { return st.PoolStats()[0].InUse == 1 && sqlite.CommitsWaiting(st) == 0 })
}

// waitUntil polls cond, failing t if it never holds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 10000 {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("never: %s", what)
}

// TestGroupCommitIsolatesAFailingWrite queues lifecycle writes and jobs
// behind a held write lock so they share a commit, one of them refused
// by the database: that one fails, every other is acknowledged and
// stored.
func TestGroupCommitIsolatesAFailingWrite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tenon.db")
	st := MustOpenPath(t, path, nil)
	if err := st.SaveInstallation(ctx, storetest.NewInstallation("existing")); err != nil {
		t.Fatal(err)
	}
	if _, err := writableDB(t, path).ExecContext(ctx, `CREATE TRIGGER poison BEFORE INSERT ON installations
		WHEN NEW.client_key = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END`); err != nil {
		t.Fatal(err)
	}

	release := holdWriter(t, path)
	const n = 20
	errs := make([]error, n)
	var firstErr, jobErr, stateErr error
	var wg sync.WaitGroup
	// The first write leads and waits for the lock; the others queue up
	// behind it and share the next commit.
	wg.Go(func() { firstErr = st.SaveInstallation(ctx, storetest.NewInstallation("first")) })
	waitForLeader(t, st)
	for i := range n {
		wg.Go(func() {
			ck := fmt.Sprintf("tenant-%02d", i)
			if i == n/2 {
				ck = "poison"
			}
			errs[i] = st.SaveInstallation(ctx, storetest.NewInstallation(ck))
		})
	}
	wg.Go(func() {
		_, _, jobErr = st.Enqueue(ctx, "batch", tenon.NewJob{ClientKey: "existing", Payload: []byte(`{}`)})
	})
	wg.Go(func() { _, stateErr = st.SetState(ctx, "existing", tenon.StateDisabled) })
	waitUntil(t, "the writes queue for a commit", func() bool { return sqlite.CommitsWaiting(st) == n+2 })
	release()
	wg.Wait()

	for i, err := range errs {
		if i == n/2 {
			if err == nil || !strings.Contains(err.Error(), "poisoned") {
				t.Errorf("the refused install: err = %v, want the database's refusal", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("install %d, batched with a refused one: %v", i, err)
		} else if _, err := st.Installation(ctx, fmt.Sprintf("tenant-%02d", i)); err != nil {
			t.Errorf("install %d acknowledged but not stored: %v", i, err)
		}
	}
	if _, err := st.Installation(ctx, "poison"); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("the refused install was stored: %v", err)
	}
	if firstErr != nil {
		t.Errorf("the leading install: %v", firstErr)
	}
	if jobErr != nil {
		t.Errorf("Enqueue batched with a refused install: %v", jobErr)
	}
	if stateErr != nil {
		t.Errorf("SetState batched with a refused install: %v", stateErr)
	}
	if in, err := st.Installation(ctx, "existing"); err != nil || in.State != tenon.StateDisabled {
		t.Errorf("SetState acknowledged but not stored: %+v, %v", in, err)
	}
	if jobs, err := st.Jobs(ctx, tenon.JobFilter{Queue: "batch"}); err != nil || len(jobs) != 1 {
		t.Errorf("Enqueue acknowledged: jobs %+v, %v; want the one job", jobs, err)
	}
}

// TestGroupCommitRefusalsAreAnswers: a state change the installation's
// state refuses, or for a tenant that does not exist, is that call's
// answer and does not fail the commit it shares.
func TestGroupCommitRefusalsAreAnswers(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tenon.db")
	st := MustOpenPath(t, path, nil)
	for _, ck := range []string{"a", "gone"} {
		if err := st.SaveInstallation(ctx, storetest.NewInstallation(ck)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.SetState(ctx, "gone", tenon.StateUninstalled); err != nil {
		t.Fatal(err)
	}

	release := holdWriter(t, path)
	var missingErr, refusedErr, okErr error
	var wg sync.WaitGroup
	wg.Go(func() { _, missingErr = st.SetState(ctx, "missing", tenon.StateDisabled) })
	waitForLeader(t, st)
	wg.Go(func() { _, refusedErr = st.SetState(ctx, "gone", tenon.StateEnabled) })
	wg.Go(func() { _, okErr = st.SetState(ctx, "a", tenon.StateDisabled) })
	waitUntil(t, "the others queue", func() bool { return sqlite.CommitsWaiting(st) == 2 })
	release()
	wg.Wait()

	if tenon.ErrorCode(missingErr) != tenon.ENOTFOUND {
		t.Errorf("SetState of a missing tenant: %v, want ENOTFOUND", missingErr)
	}
	if refusedErr == nil {
		t.Error("SetState(enabled) of an uninstalled tenant succeeded")
	}
	if okErr != nil {
		t.Errorf("SetState batched with a refused one: %v", okErr)
	}
	if in, err := st.Installation(ctx, "a"); err != nil || in.State != tenon.StateDisabled {
		t.Errorf("after the batch: %+v, %v; want a disabled", in, err)
	}
}

// TestAcknowledgedInstallsSurviveACrash saves installations from many
// goroutines at once, then copies the database file and its WAL as they
// are on disk at that moment, with the store still open, as a crash of
// the process would leave them: every install that was acknowledged is
// in the copy.
func TestAcknowledgedInstallsSurviveACrash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "tenon.db")
	st := MustOpenPath(t, path, nil)
	const workers, each = 32, 8
	var wg sync.WaitGroup
	acked := make([][]string, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				ck := fmt.Sprintf("tenant-%02d-%02d", w, i)
				if err := st.SaveInstallation(ctx, storetest.NewInstallation(ck)); err != nil {
					t.Errorf("SaveInstallation(%s): %v", ck, err)
					continue
				}
				acked[w] = append(acked[w], ck)
			}
		})
	}
	wg.Wait()

	crashed := filepath.Join(t.TempDir(), "tenon.db")
	for _, suffix := range []string{"", "-wal"} {
		copyFile(t, path+suffix, crashed+suffix)
	}
	after := MustOpenPath(t, crashed, nil)
	n := 0
	for _, list := range acked {
		for _, ck := range list {
			n++
			if _, err := after.Installation(ctx, ck); err != nil {
				t.Errorf("acknowledged install %s lost: %v", ck, err)
			}
		}
	}
	if n != workers*each {
		t.Errorf("%d installs acknowledged, want %d", n, workers*each)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
