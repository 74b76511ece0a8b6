package cli_test

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenon-dev/tenon/cli"
	"github.com/tenon-dev/tenon/keyring"
)

// No command but serve (and dev) creates a database: a mistyped path is
// refused with a message naming it, and the path stays absent.
func TestAdminCommandsNeverCreateADatabase(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret.key")
	line, err := keyring.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "typo.db")
	conf := filepath.Join(dir, "tenon.conf")
	os.WriteFile(conf, []byte("TENON_DB="+missing+"\nTENON_SECRET_KEY_FILE="+keyFile+"\n"), 0o600)
	commands := [][]string{
		{"jobs", "list"},
		{"jobs", "retry", "1"},
		{"maintenance", "on", "--message", "Back soon."},
		{"maintenance", "off"},
		{"maintenance", "status"},
		{"notice", "set", "--message", "Hello."},
		{"notice", "clear"},
		{"notice", "list"},
	}
	ways := map[string]struct {
		args []string
		vars map[string]string
	}{
		"flag":        {[]string{"--db", missing}, map[string]string{"TENON_SECRET_KEY_FILE": keyFile}},
		"environment": {nil, map[string]string{"TENON_DB": missing, "TENON_SECRET_KEY_FILE": keyFile}},
		"file":        {[]string{"--config", conf}, nil},
	}
	for name, way := range ways {
		for _, c := range commands {
			args := append(append([]string{}, c...), way.args...)
			if c[1] == "retry" { // ids come last
				args = append(append([]string{c[0], c[1]}, way.args...), c[2:]...)
			}
			code, _, errOut := runCLI(t, way.vars, args...)
			if code == 0 || !strings.Contains(errOut, "no database at "+missing) || !strings.Contains(errOut, "--db / TENON_DB") {
				t.Errorf("%s %v: exit %d: %s", name, c, code, errOut)
			}
			if _, err := os.Stat(missing); !os.IsNotExist(err) {
				t.Fatalf("%s %v created %s: %v", name, c, missing, err)
			}
		}
	}

	// Nothing set: the default (tenon.db in the working directory) is
	// tried, and the message says so.
	if _, err := os.Stat("tenon.db"); !os.IsNotExist(err) {
		t.Skipf("a tenon.db exists in the working directory: %v", err)
	}
	abs, _ := filepath.Abs("tenon.db")
	for _, c := range commands {
		code, _, errOut := runCLI(t, map[string]string{"TENON_SECRET_KEY_FILE": keyFile}, c...)
		if code == 0 || !strings.Contains(errOut, "no database at "+abs) || !strings.Contains(errOut, "not set, so the default was tried") {
			t.Errorf("%v without --db: exit %d: %s", c, code, errOut)
		}
		if _, err := os.Stat("tenon.db"); !os.IsNotExist(err) {
			os.Remove("tenon.db")
			t.Fatalf("%v created the default database: %v", c, err)
		}
	}

	// A directory is not a database either.
	code, _, errOut := runCLI(t, nil, "maintenance", "status", "--db", dir)
	if code == 0 || !strings.Contains(errOut, dir+" is not a database file") {
		t.Errorf("a directory as --db: exit %d: %s", code, errOut)
	}
}

// serve still creates a fresh database where none is.
func TestServeCreatesTheDatabase(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret.key")
	line, _ := keyring.Generate(nil)
	os.WriteFile(keyFile, []byte(line+"\n"), 0o600)
	db := filepath.Join(dir, "new", "..", "fresh.db")
	cfg, err := cli.LoadConfig([]string{"--base-url", "https://app.example.com", "--secret-key-file", keyFile, "--db", db}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "new"), 0o700)
	b, err := cli.Open(context.Background(), cfg, skewApp{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := os.Stat(db); err != nil {
		t.Fatalf("serve did not create its database: %v", err)
	}
	// And now the admin commands find it.
	if code, out, errOut := runCLI(t, map[string]string{"TENON_DB": db}, "maintenance", "status"); code != 0 || !strings.Contains(out, "maintenance: off") {
		t.Errorf("status on serve's database: exit %d: %s %s", code, out, errOut)
	}
}

// A PostgreSQL URL naming a database that does not exist is refused, and
// the database is not created.
func TestAdminCommandsNeverCreateAPostgreSQLDatabase(t *testing.T) {
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
	typo := *u
	typo.Path = "/tenon_typo_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	code, _, errOut := runCLI(t, map[string]string{"TENON_DB": typo.String()}, "maintenance", "status")
	if code == 0 || !strings.Contains(errOut, strings.TrimPrefix(typo.Path, "/")) || !strings.Contains(errOut, "--db / TENON_DB") {
		t.Errorf("exit %d: %s", code, errOut)
	}
	conn, err := pgx.Connect(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_database WHERE datname = $1", strings.TrimPrefix(typo.Path, "/")).Scan(&n); err != nil || n != 0 {
		t.Errorf("database created: %d, %v", n, err)
	}
}
