package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/pgtest"
	"github.com/tenon-dev/tenon/postgres"
	"github.com/tenon-dev/tenon/storetest"
)

// TestFailureClasses: what says the database cannot serve now is
// EUNAVAILABLE; what says the statement itself is wrong is not.
func TestFailureClasses(t *testing.T) {
	pg := func(code string) error { return fmt.Errorf("exec: %w", &pgconn.PgError{Code: code, Message: "m"}) }
	for _, tc := range []struct {
		name string
		err  error
		want string // part of the message; "" for not unavailable
	}{
		{"admin shutdown 57P01", pg("57P01"), "cannot be reached"},
		{"crash shutdown 57P02", pg("57P02"), "cannot be reached"},
		{"cannot connect now 57P03", pg("57P03"), "cannot be reached"},
		{"connection failure 08006", pg("08006"), "cannot be reached"},
		{"connection exception 08000", pg("08000"), "cannot be reached"},
		{"read-only transaction 25006", pg("25006"), "accepts no changes"},
		{"disk full 53100", pg("53100"), "disk space"},
		{"too many connections 53300", pg("53300"), "busy"},
		{"statement timeout 57014", &pgconn.PgError{Code: "57014", Message: "canceling statement due to statement timeout"}, "in time"},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, "cannot be reached"},
		{"connection reset", fmt.Errorf("read: %w", syscall.ECONNRESET), "cannot be reached"},
		{"unexpected EOF", fmt.Errorf("receive message: %w", io.ErrUnexpectedEOF), "cannot be reached"},
		{"conn closed", fmt.Errorf("query: %w", pgconn.ErrConnClosed), "cannot be reached"},
		{"deadline", fmt.Errorf("acquire: %w", context.DeadlineExceeded), "in time"},
		{"unique violation 23505", pg("23505"), ""},
		{"undefined table 42P01", pg("42P01"), ""},
		{"user cancel 57014", &pgconn.PgError{Code: "57014", Message: "canceling statement due to user request"}, ""},
		{"caller gave up", fmt.Errorf("acquire: %w", context.Canceled), ""},
		{"anything else", errors.New("cannot scan NULL into *string"), ""},
	} {
		got := postgres.UnavailableMessage(tc.err)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want a message saying %q", tc.name, got, tc.want)
		}
	}
}

// TestReadOnlyIsUnavailable: a database that takes no writes — a standby
// just promoted to primary or not yet, a server in read-only mode —
// answers writes with EUNAVAILABLE, changes nothing, and still serves
// reads.
func TestReadOnlyIsUnavailable(t *testing.T) {
	ctx := context.Background()
	dsn := MustSchema(t)
	rw := MustOpenDSN(t, dsn, nil)
	in := storetest.NewInstallation("ro-tenant")
	if err := rw.SaveInstallation(ctx, in); err != nil {
		t.Fatal(err)
	}
	ro := MustOpenDSN(t, dsn+"&options=-c%20default_transaction_read_only%3Don", nil)
	err := ro.PutValue(ctx, in.ClientKey, "refused", json.RawMessage(`1`))
	if tenon.ErrorCode(err) != tenon.EUNAVAILABLE || !strings.Contains(tenon.ErrorMessage(err), "accepts no changes") {
		t.Fatalf("PutValue on a read-only database: %v, want EUNAVAILABLE saying it accepts no changes", err)
	}
	if _, err := ro.Installation(ctx, in.ClientKey); err != nil {
		t.Errorf("reads stopped on a read-only database: %v", err)
	}
	if _, err := rw.GetValue(ctx, in.ClientKey, "refused"); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("a refused write was stored: %v", err)
	}
}

// TestWatchAfterOutage: a watch ends with EUNAVAILABLE when its server
// goes away; watching again once the server is back first reports every
// tenant stale, then hears changes as before, on the same store.
func TestWatchAfterOutage(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	st := MustOpenDSN(t, srv.CreateDatabase("tenon"), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	watch := func() (<-chan string, <-chan error) {
		got, done := make(chan string, 16), make(chan error, 1)
		go func() { done <- st.WatchInstallations(ctx, func(k string) { got <- k }) }()
		return got, done
	}
	next := func(got <-chan string, done <-chan error, want string) {
		t.Helper()
		select {
		case k := <-got:
			if k != want {
				t.Fatalf("watch reported %q, want %q", k, want)
			}
		case err := <-done:
			t.Fatalf("watch ended: %v", err)
		case <-time.After(15 * time.Second):
			t.Fatalf("no report of %q", want)
		}
	}

	got, done := watch()
	next(got, done, "")
	srv.Stop(pgtest.Fast)
	select {
	case err := <-done:
		if tenon.ErrorCode(err) != tenon.EUNAVAILABLE {
			t.Fatalf("watch ended with %v, want EUNAVAILABLE", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the watch did not notice that its server stopped")
	}
	srv.Start()

	got, done = watch()
	next(got, done, "")
	if err := st.SaveInstallation(context.Background(), storetest.NewInstallation("after-outage")); err != nil {
		t.Fatalf("the store does not write after its server came back: %v", err)
	}
	next(got, done, "after-outage")
}
