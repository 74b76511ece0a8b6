package postgres_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/pgtest"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/postgres"
	"github.com/tenon-dev/tenon/storetest"
)

// baseDSN returns the test database from TENON_TEST_POSTGRES_DSN. Without
// one the test is skipped, unless TENON_REQUIRE_POSTGRES=1 (as in CI) makes
// a missing or unreachable database a failure.
func baseDSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv("TENON_TEST_POSTGRES_DSN")
	if dsn == "" {
		unavailable(tb, "TENON_TEST_POSTGRES_DSN is not set")
	}
	return dsn
}

func unavailable(tb testing.TB, why string) {
	tb.Helper()
	if os.Getenv("TENON_REQUIRE_POSTGRES") == "1" {
		tb.Fatalf("PostgreSQL is required (TENON_REQUIRE_POSTGRES=1): %s", why)
	}
	tb.Skipf("PostgreSQL tests skipped: %s", why)
}

// MustSchema creates an empty schema for tb, drops it at cleanup, and
// returns a DSN whose search_path selects it, so tests and packages running
// in parallel never share tables.
func MustSchema(tb testing.TB) string {
	tb.Helper()
	base := baseDSN(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		unavailable(tb, "cannot connect: "+err.Error())
	}
	defer conn.Close(ctx)
	var b [8]byte
	rand.Read(b[:])
	schema := "tenon_test_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return withSearchPath(base, schema)
}

// withSearchPath adds search_path to a DSN in either of the forms pgx takes.
func withSearchPath(dsn, schema string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return dsn + sep + "search_path=" + schema
	}
	return dsn + " search_path=" + schema
}

func testKeyring(tb testing.TB) *keyring.Keyring {
	tb.Helper()
	kr, err := keyring.New(bytes.Repeat([]byte{7}, keyring.KeySize))
	if err != nil {
		tb.Fatal(err)
	}
	return kr
}

// MustOpenDSN opens a store on dsn and closes it at cleanup.
func MustOpenDSN(tb testing.TB, dsn string, now func() time.Time) *postgres.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, dsn, postgres.Options{SecretBox: testKeyring(tb), Now: now})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// MustOpen opens a store in a fresh schema.
func MustOpen(tb testing.TB, now func() time.Time) *postgres.Store {
	tb.Helper()
	return MustOpenDSN(tb, MustSchema(tb), now)
}

func TestConformance(t *testing.T) {
	var mu sync.Mutex
	dsns := make(map[tenon.Store]string)
	storetest.Run(t, func(t *testing.T, now func() time.Time) tenon.Store {
		dsn := MustSchema(t)
		s := MustOpenDSN(t, dsn, now)
		mu.Lock()
		dsns[s] = dsn
		mu.Unlock()
		return s
	}, storetest.Options{
		RawInstallation: func(t *testing.T, s tenon.Store, clientKey string) string {
			mu.Lock()
			dsn := dsns[s]
			mu.Unlock()
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			// The whole row in PostgreSQL's text form.
			var raw string
			if err := conn.QueryRow(ctx, "SELECT i::text FROM installations i WHERE client_key = $1", clientKey).Scan(&raw); err != nil {
				t.Fatal(err)
			}
			return raw
		},
		Rows: func(t *testing.T, s tenon.Store, needle string) map[string]int {
			mu.Lock()
			dsn := dsns[s]
			mu.Unlock()
			return rowsMentioning(t, dsn, needle)
		},
		Outage: outage(pgtest.Fast),
		Reopen: func(t *testing.T, s tenon.Store, box tenon.SecretBox, now func() time.Time) tenon.Store {
			mu.Lock()
			dsn := dsns[s]
			mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			other, err := postgres.Open(ctx, dsn, postgres.Options{SecretBox: box, Now: now})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { other.Close() })
			return other
		},
	})
}

// TestOutageImmediate is the outage case with the server crashing rather
// than shutting down: no goodbye on the connections, crash recovery on
// the next start.
func TestOutageImmediate(t *testing.T) {
	storetest.RunOutage(t, outage(pgtest.Immediate))
}

// outage opens a store on a private PostgreSQL server, which it stops in
// mode and starts again on the same port.
func outage(mode pgtest.Mode) storetest.OutageFunc {
	return func(t *testing.T, now func() time.Time) (tenon.Store, func(), func()) {
		srv := pgtest.Start(t, pgtest.Options{})
		s := MustOpenDSN(t, srv.CreateDatabase("tenon"), now)
		return s, func() { srv.Stop(mode) }, srv.Start
	}
}

func TestOpenRequiresSecretBox(t *testing.T) {
	_, err := postgres.Open(context.Background(), "postgres://127.0.0.1:1/x", postgres.Options{})
	if err == nil || !strings.Contains(err.Error(), "SecretBox") {
		t.Errorf("err = %v, want one naming SecretBox", err)
	}
}

func TestOpenBadDSNHidesPassword(t *testing.T) {
	_, err := postgres.Open(context.Background(), "postgres://u:hunter2@host:notaport/db", postgres.Options{SecretBox: testKeyring(t)})
	if err == nil {
		t.Fatal("Open with a bad DSN succeeded")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error reveals the password: %v", err)
	}
}

func TestOpenMissingSchema(t *testing.T) {
	dsn := withSearchPath(baseDSN(t), "tenon_no_such_schema")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, dsn, postgres.Options{SecretBox: testKeyring(t)})
	if err == nil {
		s.Close()
		t.Fatal("Open with a missing schema succeeded")
	}
	if !strings.Contains(err.Error(), "schema") {
		t.Errorf("err = %v, want it to mention the schema", err)
	}
}

// TestConcurrentOpen starts several nodes at once on an empty schema: all
// must come up, and the migrations must have run exactly once.
func TestConcurrentOpen(t *testing.T) {
	dsn := MustSchema(t)
	const nodes = 6
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stores := make([]*postgres.Store, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() {
			stores[i], errs[i] = postgres.Open(ctx, dsn, postgres.Options{SecretBox: testKeyring(t)})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d: %v", i, err)
			continue
		}
		defer stores[i].Close()
	}
	if t.Failed() {
		return
	}
	// Every node sees the same tables.
	in := storetest.NewInstallation("tenant-a")
	if err := stores[0].SaveInstallation(ctx, in); err != nil {
		t.Fatal(err)
	}
	if _, err := stores[nodes-1].Installation(ctx, "tenant-a"); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var applied int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM tenon_migrations WHERE version_id > 0").Scan(&applied); err != nil {
		t.Fatal(err)
	}
	// Each migration applied once, however many nodes raced to apply it.
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no migration files: %v", err)
	}
	if applied != len(files) {
		t.Errorf("%d migration rows, want %d (one per migration file)", applied, len(files))
	}
}

func TestWatchInstallations(t *testing.T) {
	dsn := MustSchema(t)
	a := MustOpenDSN(t, dsn, nil)
	b := MustOpenDSN(t, dsn, nil)
	other := MustOpen(t, nil) // another deployment in the same database

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 100)
	done := make(chan error, 1)
	go func() {
		done <- b.WatchInstallations(ctx, func(clientKey string) { got <- clientKey })
	}()

	// Once listening, the watch says every tenant is stale ("").
	select {
	case key := <-got:
		if key != "" {
			t.Fatalf("first report %q, want \"\" (every tenant) once listening", key)
		}
	case err := <-done:
		t.Fatalf("watch ended early: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("the watch did not report that it listens")
	}

	// Every change from now on must be reported.
	await := func(want string, change func()) {
		t.Helper()
		deadline := time.After(15 * time.Second)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		change()
		for {
			select {
			case key := <-got:
				if key == want {
					return
				}
				if key != "tenant-a" { // repeats of earlier changes are fine
					t.Fatalf("watch reported %q while waiting for %q", key, want)
				}
			case <-tick.C:
				change()
			case err := <-done:
				t.Fatalf("watch ended early: %v", err)
			case <-deadline:
				t.Fatalf("no notification for %q", want)
			}
		}
	}
	ctxBg := context.Background()
	await("tenant-a", func() {
		if err := a.SaveInstallation(ctxBg, storetest.NewInstallation("tenant-a")); err != nil {
			t.Fatal(err)
		}
	})
	// Now listening. A change in another schema must not be heard; the
	// next change here arrives after it would have.
	if err := other.SaveInstallation(ctxBg, storetest.NewInstallation("tenant-other")); err != nil {
		t.Fatal(err)
	}
	if err := a.SaveInstallation(ctxBg, storetest.NewInstallation("tenant-b")); err != nil {
		t.Fatal(err)
	}
	await("tenant-b", func() {})
	if _, err := a.SetState(ctxBg, "tenant-b", tenon.StateUninstalled); err != nil {
		t.Fatal(err)
	}
	await("tenant-b", func() {})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("WatchInstallations after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WatchInstallations did not return after cancel")
	}
}

func TestWatchEndsWithContext(t *testing.T) {
	// A watcher holds its own connection; it must return nil, not hang or
	// fail, when its context ends.
	s := MustOpen(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := s.WatchInstallations(ctx, func(string) {}); err != nil {
		t.Errorf("WatchInstallations = %v, want nil at the end of ctx", err)
	}
}

func TestWrongKeyringRefuses(t *testing.T) {
	dsn := MustSchema(t)
	s := MustOpenDSN(t, dsn, nil)
	ctx := context.Background()
	in := storetest.NewInstallation("tenant-a")
	if err := s.SaveInstallation(ctx, in); err != nil {
		t.Fatal(err)
	}
	other, _ := keyring.New(bytes.Repeat([]byte{8}, keyring.KeySize))
	s2, err := postgres.Open(ctx, dsn, postgres.Options{SecretBox: other})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	_, err = s2.Installation(ctx, "tenant-a")
	if err == nil {
		t.Fatal("Installation with the wrong keyring succeeded")
	}
	if strings.Contains(err.Error(), in.SharedSecret) {
		t.Error("the error reveals the secret")
	}
}

// rowsMentioning counts, in every table of the store's schema that
// information_schema lists, the rows whose text form, or one of whose
// bytea columns, contains needle.
func rowsMentioning(t *testing.T, dsn, needle string) map[string]int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT t.table_name, coalesce(string_agg(c.column_name, ',') FILTER (WHERE c.data_type = 'bytea'), '')
		FROM information_schema.tables t JOIN information_schema.columns c USING (table_schema, table_name)
		WHERE t.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
		GROUP BY t.table_name`)
	if err != nil {
		t.Fatal(err)
	}
	cols := map[string]string{}
	for rows.Next() {
		var table, bytea string
		if err := rows.Scan(&table, &bytea); err != nil {
			t.Fatal(err)
		}
		cols[table] = bytea
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(cols) < 10 {
		t.Fatalf("the schema lists only %d tables: %v", len(cols), cols)
	}
	out := map[string]int{}
	for table, bytea := range cols {
		conds := []string{"position($1 in r::text) > 0"}
		for _, c := range strings.Split(bytea, ",") {
			if c != "" {
				conds = append(conds, fmt.Sprintf("position(convert_to($1, 'UTF8') in r.%s) > 0", pgx.Identifier{c}.Sanitize()))
			}
		}
		var n int
		q := fmt.Sprintf("SELECT count(*) FROM %s r WHERE %s", pgx.Identifier{table}.Sanitize(), strings.Join(conds, " OR "))
		if err := conn.QueryRow(ctx, q, needle).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if n > 0 {
			out[table] = n
		}
	}
	return out
}
