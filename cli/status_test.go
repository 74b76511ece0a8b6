package cli_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenon-dev/tenon/leader"
)

func TestStatusOnSQLite(t *testing.T) {
	db, _ := settingsDB(t)
	code, out, errOut := runCLI(t, map[string]string{"TENON_DB": db}, "status")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"node:", "store:       SQLite " + db, "migrations:  up to date", "leader:      this node"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

func TestStatusRefusesAMissingStore(t *testing.T) {
	db := filepath.Join(t.TempDir(), "typo.db")
	code, out, errOut := runCLI(t, map[string]string{"TENON_DB": db}, "status")
	if code != 1 || out != "" || !strings.Contains(errOut, "no database at "+db) {
		t.Errorf("exit %d, out %q, err %q", code, out, errOut)
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Errorf("status created %s: %v", db, err)
	}
}

// TestStatusShowsTheLeader runs `tenon status` on a PostgreSQL schema
// before any node campaigned, while one leads, and after it stopped.
func TestStatusShowsTheLeader(t *testing.T) {
	base := os.Getenv("TENON_TEST_POSTGRES_DSN")
	if base == "" {
		if os.Getenv("TENON_REQUIRE_POSTGRES") == "1" {
			t.Fatal("PostgreSQL is required (TENON_REQUIRE_POSTGRES=1) but TENON_TEST_POSTGRES_DSN is not set")
		}
		t.Skip("TENON_TEST_POSTGRES_DSN is not set")
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Skip("this test needs TENON_TEST_POSTGRES_DSN as a postgres:// URL, the form --db takes")
	}
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var r [8]byte
	rand.Read(r[:])
	schema := "tenon_status_" + hex.EncodeToString(r[:])
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	defer admin.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	vars := map[string]string{"TENON_DB": u.String()}
	status := func() string {
		t.Helper()
		code, out, errOut := runCLI(t, vars, "status")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if strings.Contains(out, "password") || !strings.Contains(out, "primary") || !strings.Contains(out, "migrations:  up to date") {
			t.Errorf("status:\n%s", out)
		}
		return out
	}
	if out := status(); !strings.Contains(out, "leader:      none yet") {
		t.Errorf("before any campaign:\n%s", out)
	}

	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		t.Fatal(err)
	}
	el, err := leader.NewPostgres(cfg, leader.PostgresOptions{Node: "node-7", CheckInterval: 50 * time.Millisecond, TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	changed := el.Changed()
	go func() { defer close(done); el.Campaign(cctx) }()
	select {
	case <-changed:
	case <-time.After(20 * time.Second):
		t.Fatal("the elector did not lead")
	}
	if out := status(); !strings.Contains(out, "leader:      node-7 (term ") {
		t.Errorf("while node-7 leads:\n%s", out)
	}
	stop()
	<-done
	if out := status(); !strings.Contains(out, "leader:      none now: the lease is free (last held by node-7, term ") {
		t.Errorf("after node-7 stopped:\n%s", out)
	}
}
