package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/cli"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/sqlite"
	"github.com/tenon-dev/tenon/storetest"
)

type keysRun struct {
	t       *testing.T
	keyFile string
	db      string
}

func (k keysRun) run(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := cli.Run(context.Background(), cli.Env{Stdout: &out, Stderr: &errOut, Getenv: env(nil)}, nil, args)
	return code, out.String(), errOut.String()
}

func (k keysRun) keys(args ...string) (int, string, string) {
	return k.run(append(append([]string{"keys"}, args...), "--db", k.db, "--secret-key-file", k.keyFile)...)
}

func loadIDs(t *testing.T, file string) []string {
	t.Helper()
	kr, err := keyring.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return kr.KeyIDs()
}

// wantRow checks the status table has a row "id rows note...".
func wantRow(t *testing.T, what, out, id string, rows int, note string) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(id) + ` +` + fmt.Sprint(rows) + ` +` + regexp.QuoteMeta(note) + ` *$`)
	if !re.MatchString(out) {
		t.Errorf("%s: no row %q %d %q in\n%s", what, id, rows, note, out)
	}
}

func TestKeysRotateResealRetire(t *testing.T) {
	dir := t.TempDir()
	k := keysRun{t: t, keyFile: filepath.Join(dir, "secret.key"), db: filepath.Join(dir, "tenon.db")}
	code, _, errOut := k.run("keygen", "-o", k.keyFile)
	if code != 0 || !strings.Contains(errOut, "a backup without the key file cannot be restored") {
		t.Fatalf("keygen: exit %d\n%s", code, errOut)
	}
	idA := loadIDs(t, k.keyFile)[0]
	oldFile, _ := os.ReadFile(k.keyFile)

	kr, _ := keyring.Load(k.keyFile)
	st, err := sqlite.Open(k.db, sqlite.Options{SecretBox: kr})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var tenants []string
	for i := range 3 {
		in := storetest.NewInstallation(fmt.Sprintf("site-%d", i))
		if err := st.SaveInstallation(ctx, in); err != nil {
			t.Fatal(err)
		}
		tenants = append(tenants, in.ClientKey)
	}
	if err := st.PutKV(ctx, "certmagic/cert", []byte("-----BEGIN CERTIFICATE-----")); err != nil {
		t.Fatal(err)
	}
	if err := st.PutToken(ctx, "user:1", "token", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	st.Close()

	code, out, errOut := k.keys("status")
	if code != 0 {
		t.Fatalf("keys status: exit %d\n%s", code, errOut)
	}
	wantRow(t, "one key", out, idA, 5, "seals new values")
	wantRow(t, "one key", out, "unreadable", 0, "")
	if !strings.Contains(out, "Every readable row is sealed with key "+idA+", the only key") {
		t.Errorf("one key: status says\n%s", out)
	}

	code, _, errOut = k.run("keygen", "-rotate", "-o", k.keyFile)
	if code != 0 {
		t.Fatalf("keygen -rotate: exit %d\n%s", code, errOut)
	}
	idB := loadIDs(t, k.keyFile)[0]
	for _, want := range []string{"Key " + idB + " now seals new values; " + idA + " only open old ones", "tenon keys reseal", "cannot be restored"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("keygen -rotate does not say %q:\n%s", want, errOut)
		}
	}

	code, out, _ = k.keys("status")
	wantRow(t, "rotated", out, idB, 0, "seals new values")
	wantRow(t, "rotated", out, idA, 5, "older key")
	if code != 0 || !strings.Contains(out, "5 rows are still sealed with older keys: run tenon keys reseal") {
		t.Errorf("rotated: exit %d, status says\n%s", code, out)
	}

	code, out, errOut = k.keys("reseal", "-batch", "2")
	if code != 0 {
		t.Fatalf("keys reseal: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{"re-sealing 5 rows under key " + idB + ", 2 per transaction", "re-sealed 2 of 5 rows", "re-sealed 5 rows"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("keys reseal does not say %q:\n%s", want, errOut)
		}
	}
	wantRow(t, "resealed", out, idB, 5, "seals new values")
	wantRow(t, "resealed", out, idA, 0, "older key, seals nothing: can be removed")
	if !strings.Contains(out, "Remove the line of key "+idA+" from the key file") {
		t.Errorf("resealed: status says\n%s", out)
	}
	// A second run has nothing to do.
	if code, _, errOut := k.keys("reseal"); code != 0 || !strings.Contains(errOut, "re-sealed 0 rows") {
		t.Errorf("second reseal: exit %d\n%s", code, errOut)
	}

	// The key file as it was before the rotation opens nothing any more:
	// status says so instead of reporting zero rows to retire.
	oldOnly := keysRun{t: t, keyFile: filepath.Join(dir, "old.key"), db: k.db}
	os.WriteFile(oldOnly.keyFile, oldFile, 0o600)
	code, out, _ = oldOnly.keys("status")
	wantRow(t, "old key file", out, idA, 0, "seals new values")
	wantRow(t, "old key file", out, "unreadable", 5, "no key of the key file opens these")
	if code != 0 || !strings.Contains(out, "5 rows open with no key of this key file") {
		t.Errorf("old key file: exit %d, status says\n%s", code, out)
	}

	// Retire key A: the file keeps only its first line.
	data, _ := os.ReadFile(k.keyFile)
	first, _, _ := strings.Cut(string(data), "\n")
	if err := os.WriteFile(k.keyFile, []byte(first+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = k.keys("status")
	wantRow(t, "retired", out, idB, 5, "seals new values")
	wantRow(t, "retired", out, "unreadable", 0, "")
	if code != 0 || strings.Contains(out, idA) {
		t.Errorf("retired: exit %d, status says\n%s", code, out)
	}
	kr, _ = keyring.Load(k.keyFile)
	st, err = sqlite.Open(k.db, sqlite.Options{SecretBox: kr})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, ck := range tenants {
		if _, err := st.Installation(ctx, ck); err != nil {
			t.Errorf("after retiring key A, %s: %v", ck, err)
		}
	}
	if v, _, err := st.GetKV(ctx, "certmagic/cert"); err != nil || string(v) != "-----BEGIN CERTIFICATE-----" {
		t.Errorf("after retiring key A, the certificate: %q, %v", v, err)
	}
}

func TestKeysRefusals(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret.key")
	line, _ := keyring.Generate(nil)
	os.WriteFile(keyFile, []byte(line+"\n"), 0o600)
	db := filepath.Join(dir, "tenon.db")
	kr, _ := keyring.Load(keyFile)
	st, err := sqlite.Open(db, sqlite.Options{SecretBox: kr})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	before, _ := os.ReadFile(db)
	missing := filepath.Join(dir, "typo.db")
	k := keysRun{t: t, keyFile: keyFile, db: db}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", []string{"keys"}, "name a subcommand: status or reseal"},
		{"unknown subcommand", []string{"keys", "rotate"}, "name a subcommand: status or reseal"},
		{"missing database", []string{"keys", "status", "--db", missing, "--secret-key-file", keyFile}, "no database at " + missing + " (set --db / TENON_DB"},
		{"missing database, reseal", []string{"keys", "reseal", "--db", missing, "--secret-key-file", keyFile}, "no database at " + missing},
		{"no key file", []string{"keys", "status", "--db", db}, "set --secret-key-file / TENON_SECRET_KEY_FILE"},
		{"key file absent", []string{"keys", "status", "--db", db, "--secret-key-file", filepath.Join(dir, "nope.key")}, "secret key file:"},
		{"batch zero", []string{"keys", "reseal", "-batch", "0", "--db", db, "--secret-key-file", keyFile}, "-batch must be between 1 and 10000"},
		{"batch too large", []string{"keys", "reseal", "-batch", "10001", "--db", db, "--secret-key-file", keyFile}, "-batch must be between 1 and 10000"},
		{"extra arguments", []string{"keys", "status", "--db", db, "--secret-key-file", keyFile, "now"}, "unexpected arguments: now"},
		{"batch on status", []string{"keys", "status", "-batch", "5", "--db", db, "--secret-key-file", keyFile}, "flag provided but not defined: -batch"},
	} {
		code, out, errOut := k.run(tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want failure saying %q", tc.name, code, errOut, tc.want)
		}
		if out != "" {
			t.Errorf("%s: printed %q on stdout", tc.name, out)
		}
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("keys created a database at the mistyped path (stat: %v)", err)
	}
	if after, _ := os.ReadFile(db); !bytes.Equal(before, after) {
		t.Error("a refused command changed the database")
	}
	if code, _, errOut := k.run("keys", "-h"); code != 0 || !strings.Contains(errOut, "Retiring a key") {
		t.Errorf("keys -h: exit %d\n%s", code, errOut)
	}
}
