package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/cli"
	"github.com/tenon-dev/tenon/postgres"
	"github.com/tenon-dev/tenon/sqlite"
)

// tenantStore is a store under test and the --db that names it.
type tenantStore struct {
	db    string
	store interface {
		tenon.Store
		tenon.JobQueue
	}
}

type storeMaker func(t *testing.T, box tenon.SecretBox) tenantStore

func sqliteMaker(t *testing.T, box tenon.SecretBox) tenantStore {
	db := filepath.Join(t.TempDir(), "tenon.db")
	st, err := sqlite.Open(db, sqlite.Options{SecretBox: box})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return tenantStore{db: db, store: st}
}

// postgresMaker gives each store a schema of its own on the test server.
func postgresMaker(t *testing.T, box tenon.SecretBox) tenantStore {
	base := os.Getenv("TENON_TEST_POSTGRES_DSN")
	if base == "" || !strings.HasPrefix(base, "postgres") {
		if os.Getenv("TENON_REQUIRE_POSTGRES") == "1" {
			t.Fatal("PostgreSQL is required (TENON_REQUIRE_POSTGRES=1) but TENON_TEST_POSTGRES_DSN is not a postgres:// URL")
		}
		t.Skip("TENON_TEST_POSTGRES_DSN is not set")
	}
	ctx := context.Background()
	schema := "tenon_tenants_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		conn.Close(context.Background())
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	dsn := base + sep + "search_path=" + schema
	st, err := postgres.Open(ctx, dsn, postgres.Options{SecretBox: box})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return tenantStore{db: dsn, store: st}
}

func tenantsCmd(t *testing.T, f func(context.Context, cli.Env, cli.App, []string) error, vars map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := f(context.Background(), cli.Env{Stdout: &out, Stderr: &errb, Getenv: env(vars)}, nil, args)
	return out.String(), errb.String(), err
}

func TestTenantsExportImport(t *testing.T) {
	for name, mk := range map[string]storeMaker{"sqlite": sqliteMaker, "postgres": postgresMaker} {
		t.Run(name, func(t *testing.T) { testTenantsExportImport(t, mk) })
	}
}

func testTenantsExportImport(t *testing.T, mk storeMaker) {
	ctx := context.Background()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret.key")
	kr := writeKeyFile(t, keyFile)
	src := mk(t, kr)
	for _, k := range []string{"t1", "t2"} {
		if err := src.store.SaveInstallation(ctx, &tenon.Installation{ClientKey: k, SharedSecret: "secret-of-" + k, BaseURL: "https://" + k + ".atlassian.net", Payload: []byte(`{"k":"` + k + `"}`)}); err != nil {
			t.Fatal(err)
		}
		if err := src.store.PutValue(ctx, k, "doc", json.RawMessage(`{"owner":"`+k+`","text":"a\"b\nc"}`)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := src.store.Enqueue(ctx, "webhooks", tenon.NewJob{ClientKey: k, DedupeKey: "d-" + k, Payload: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	vars := map[string]string{"TENON_DB": src.db, "TENON_SECRET_KEY_FILE": keyFile}
	file := filepath.Join(dir, "t1.tenant")

	// Refusals: no tenant named, no output named, a tenant that does not exist.
	if _, _, err := tenantsCmd(t, cli.RunTenantsExport, vars, "-o", file); err == nil || !strings.Contains(err.Error(), "name one tenant") {
		t.Fatalf("no tenant: %v", err)
	}
	if _, _, err := tenantsCmd(t, cli.RunTenantsExport, vars, "t1"); err == nil || !strings.Contains(err.Error(), "set -o") {
		t.Fatalf("no -o: %v", err)
	}
	if _, _, err := tenantsCmd(t, cli.RunTenantsExport, vars, "nobody", "-o", file); err == nil || !strings.Contains(err.Error(), `no tenant "nobody"`) {
		t.Fatalf("unknown tenant: %v", err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("a failed export left %s: %v", file, err)
	}
	_, msg, err := tenantsCmd(t, cli.RunTenantsExport, vars, "t1", "-o", file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "1 installations") || !strings.Contains(msg, "1 app_data") || !strings.Contains(msg, "1 jobs") || !strings.Contains(msg, kr.SealingKeyID()) {
		t.Fatalf("export said %q", msg)
	}
	raw, _ := os.ReadFile(file)
	if bytes.Contains(raw, []byte("secret-of-t1")) || bytes.Contains(raw, []byte("owner")) {
		t.Fatal("the export is not encrypted")
	}

	// Back into the store it came from: refused, nothing changed.
	_, _, err = tenantsCmd(t, cli.RunTenantsImport, vars, "t1", "-i", file)
	if err == nil || !strings.Contains(err.Error(), "already exists") || !strings.Contains(err.Error(), "--replace") {
		t.Fatalf("import over an existing tenant: %v", err)
	}
	// The file holds t1, not t2.
	if _, _, err := tenantsCmd(t, cli.RunTenantsImport, vars, "t2", "-i", file, "--replace"); err == nil || !strings.Contains(err.Error(), `holds tenant "t1"`) {
		t.Fatalf("wrong tenant named: %v", err)
	}
	// A cut-short file is refused.
	cut := filepath.Join(dir, "cut.tenant")
	os.WriteFile(cut, raw[:len(raw)-20], 0o600)
	if _, _, err := tenantsCmd(t, cli.RunTenantsImport, vars, "t1", "-i", cut, "--replace"); err == nil || !strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("cut-short file: %v", err)
	}
	// Another key file cannot read it.
	otherKey := filepath.Join(dir, "other.key")
	writeKeyFile(t, otherKey)
	other := map[string]string{"TENON_DB": src.db, "TENON_SECRET_KEY_FILE": otherKey}
	if _, _, err := tenantsCmd(t, cli.RunTenantsImport, other, "t1", "-i", file, "--replace"); err == nil || !strings.Contains(err.Error(), "does not decrypt") {
		t.Fatalf("other key file: %v", err)
	}
	if in, err := src.store.Installation(ctx, "t1"); err != nil || in.SharedSecret != "secret-of-t1" {
		t.Fatalf("source changed by refused imports: %+v, %v", in, err)
	}

	// Into another store: every row arrives, secrets open.
	dst := mk(t, kr)
	if err := dst.store.SaveInstallation(ctx, &tenon.Installation{ClientKey: "resident", SharedSecret: "r", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := dst.store.Enqueue(ctx, "webhooks", tenon.NewJob{ClientKey: "resident", Payload: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	dvars := map[string]string{"TENON_DB": dst.db, "TENON_SECRET_KEY_FILE": keyFile}
	out, _, err := tenantsCmd(t, cli.RunTenantsImport, dvars, "-i", file, "t1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "imported tenant t1: ") {
		t.Fatalf("import said %q", out)
	}
	checkTenant(t, dst.store, "t1", "secret-of-t1")
	if _, err := dst.store.Installation(ctx, "t2"); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Fatalf("t2 came along: %v", err)
	}
	// The imported job took an id of the new store's own.
	if _, _, err := dst.store.Enqueue(ctx, "webhooks", tenon.NewJob{ClientKey: "resident", Payload: json.RawMessage(`{}`)}); err != nil {
		t.Fatalf("enqueue after import: %v", err)
	}

	// --replace puts the exported state back over a changed tenant.
	if err := src.store.SaveInstallation(ctx, &tenon.Installation{ClientKey: "t1", SharedSecret: "rotated", Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if err := src.store.PutValue(ctx, "t1", "extra", json.RawMessage(`1`)); err != nil {
		t.Fatal(err)
	}
	out, _, err = tenantsCmd(t, cli.RunTenantsImport, vars, "t1", "-i", file, "--replace")
	if err != nil || !strings.HasPrefix(out, "replaced tenant t1") {
		t.Fatalf("replace: %q, %v", out, err)
	}
	checkTenant(t, src.store, "t1", "secret-of-t1")
	if _, err := src.store.GetValue(ctx, "t1", "extra"); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Fatalf("a value written after the export survived --replace: %v", err)
	}
	checkTenant(t, src.store, "t2", "secret-of-t2")
}

func checkTenant(t *testing.T, st tenon.Store, clientKey, secret string) {
	t.Helper()
	ctx := context.Background()
	in, err := st.Installation(ctx, clientKey)
	if err != nil || in.SharedSecret != secret || string(in.Payload) != fmt.Sprintf(`{"k":"%s"}`, clientKey) {
		t.Fatalf("tenant %s: %+v, %v", clientKey, in, err)
	}
	v, err := st.GetValue(ctx, clientKey, "doc")
	if err != nil || string(v) != `{"owner":"`+clientKey+`","text":"a\"b\nc"}` {
		t.Fatalf("value of %s: %s, %v", clientKey, v, err)
	}
}
