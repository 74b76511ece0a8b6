package pgtest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenon-dev/tenon/internal/pgtest"
)

func query(t *testing.T, dsn string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS t (v int); INSERT INTO t VALUES (1)")
	return err
}

func count(t *testing.T, dsn string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestStopAndRestart stops the server both ways and starts it again on
// the same port with the data it had.
func TestStopAndRestart(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	dsn := srv.CreateDatabase("app")
	if err := query(t, dsn); err != nil {
		t.Fatalf("first write: %v\n%s", err, srv.Log())
	}
	port, pid := srv.Port(), srv.PID()
	if pid == 0 {
		t.Fatal("PID is 0 while running")
	}
	for _, mode := range []pgtest.Mode{pgtest.Fast, pgtest.Immediate} {
		srv.Stop(mode)
		if srv.PID() != 0 {
			t.Errorf("%s: PID still set after Stop", mode)
		}
		if err := query(t, dsn); err == nil {
			t.Fatalf("%s: a stopped server answered", mode)
		}
		srv.Start()
		if srv.Port() != port {
			t.Errorf("%s: restarted on port %d, want %d", mode, srv.Port(), port)
		}
		if err := query(t, dsn); err != nil {
			t.Fatalf("%s: after restart: %v", mode, err)
		}
	}
	if n := count(t, dsn); n != 3 {
		t.Errorf("found %d rows after two restarts, want the 3 written", n)
	}
}

// TestStandbyPromotion writes through a primary that waits for its
// synchronous standby, crashes the primary, promotes the standby and
// finds every acknowledged write there; a DSN naming both hosts with
// target_session_attrs=read-write reaches whichever is the primary.
func TestStandbyPromotion(t *testing.T) {
	primary := pgtest.Start(t, pgtest.Options{})
	standby := primary.StartStandby("standby1")
	primary.Synchronous("standby1")
	both := fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/postgres?sslmode=disable&target_session_attrs=read-write&connect_timeout=2",
		primary.Port(), standby.Port())
	for range 5 {
		if err := query(t, both); err != nil {
			t.Fatalf("write through the primary: %v", err)
		}
	}
	if err := query(t, standby.DSN("postgres")); err == nil {
		t.Fatal("the standby accepted a write before its promotion")
	}
	primary.Stop(pgtest.Immediate)
	if err := query(t, both); err == nil {
		t.Fatal("a write succeeded with no primary")
	}
	standby.Promote()
	if n := count(t, standby.DSN("postgres")); n != 5 {
		t.Fatalf("%d acknowledged rows on the promoted standby, want 5", n)
	}
	if err := query(t, both); err != nil {
		t.Fatalf("write after the promotion: %v", err)
	}
	if n := count(t, both); n != 6 {
		t.Errorf("%d rows after the promotion, want 6", n)
	}
}

// TestArchiveBackupRestore takes a pgBackRest backup of an archiving
// server, writes after it, loses the data directory and restores it: the
// write after the backup comes back from the archived WAL.
func TestArchiveBackupRestore(t *testing.T) {
	s := pgtest.Start(t, pgtest.Options{Archive: &pgtest.Archive{Timeout: time.Second}})
	dsn := s.DSN("postgres")
	if err := query(t, dsn); err != nil {
		t.Fatal(err)
	}
	if out, err := s.PgBackRest("backup", "--type=full"); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	if err := query(t, dsn); err != nil {
		t.Fatal(err)
	}
	// Ship the segment holding the second insert.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_switch_wal()"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if out, err := s.PgBackRest("check"); err != nil {
		t.Fatalf("check: %v\n%s", err, out)
	}
	s.Stop(pgtest.Immediate)
	s.Wipe()
	if out, err := s.PgBackRest("restore"); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	s.Start()
	if n := count(t, dsn); n != 2 {
		t.Fatalf("%d rows after restore, want 2", n)
	}
}
