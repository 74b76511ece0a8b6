package postgres_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/pgtest"
)

// A read or a put that meets a restart of the server is repeated while the
// caller's deadline allows, and succeeds once the server is back; without
// a deadline it answers EUNAVAILABLE at once, and a write that is not
// idempotent is never repeated.
func TestIdempotentCallsRideOutARestart(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	st := MustOpenDSN(t, srv.CreateDatabase("tenon"), nil)
	bg := context.Background()
	if err := st.PutValue(bg, "tenant-r", "k", json.RawMessage(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}

	srv.Stop(pgtest.Fast)
	if _, err := st.GetValue(bg, "tenant-r", "k"); tenon.ErrorCode(err) != tenon.EUNAVAILABLE {
		t.Fatalf("without a deadline, with the server down: %v, want EUNAVAILABLE", err)
	}
	if _, err := st.Installations(bg, ""); tenon.ErrorCode(err) != tenon.EUNAVAILABLE {
		t.Fatalf("a list with the server down: %v, want EUNAVAILABLE", err)
	}

	back := make(chan struct{})
	go func() {
		defer close(back)
		time.Sleep(500 * time.Millisecond)
		srv.Start()
	}()
	ctx, cancel := context.WithTimeout(bg, 20*time.Second)
	defer cancel()
	raw, err := st.GetValue(ctx, "tenant-r", "k")
	if err != nil || string(raw) != `{"v":1}` {
		t.Fatalf("a read within a deadline across the restart: %s, %v", raw, err)
	}
	<-back

	srv.Stop(pgtest.Fast)
	go func() {
		time.Sleep(500 * time.Millisecond)
		srv.Start()
	}()
	ctx2, cancel2 := context.WithTimeout(bg, 20*time.Second)
	defer cancel2()
	if err := st.PutValue(ctx2, "tenant-r", "k", json.RawMessage(`{"v":2}`)); err != nil {
		t.Fatalf("a put within a deadline across the restart: %v", err)
	}
	if raw, err := st.GetValue(ctx2, "tenant-r", "k"); err != nil || string(raw) != `{"v":2}` {
		t.Fatalf("after the retried put: %s, %v", raw, err)
	}
}
