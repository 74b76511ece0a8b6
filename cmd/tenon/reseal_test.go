package main_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/tenon-dev/tenon/keyring"
)

// TestKeyRotationCompletes rotates the key file, re-seals while serve runs,
// removes the old key from the file, restarts and finds every tenant able
// to authenticate and its data intact, on both stores.
func TestKeyRotationCompletes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	t.Run("SQLite", func(t *testing.T) {
		keyRotation(t, bin, func(dir string) string { return filepath.Join(dir, "tenon.db") })
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		keyRotation(t, bin, func(string) string { return crashSchema(t) })
	})
}

func keyRotation(t *testing.T, bin string, db func(dir string) string) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret.key")
	if out, err := exec.Command(bin, "keygen", "-o", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	priv, keys := installKeyServer(t)
	addr := freeAddr(t)
	baseURL := "http://" + addr
	dsn := db(dir)
	store := []string{"--db", dsn, "--secret-key-file", keyFile}
	args := append([]string{
		"--addr", addr, "--base-url", baseURL, "--environment", "development",
		"--install-keys-url", keys.URL, "--log-level", "warn",
	}, store...)
	keysCmd := func(sub ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append(append([]string{"keys"}, sub...), store...)...)
		cmd.Env = append(os.Environ(), "TENON_CONFIG=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tenon keys %s: %v\n%s", strings.Join(sub, " "), err, out)
		}
		return string(out)
	}
	rows := func(out, id string) int {
		t.Helper()
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(id) + ` +(\d+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no row for key %s in\n%s", id, out)
		}
		var n int
		fmt.Sscan(m[1], &n)
		return n
	}

	p := startServer(t, bin, args, baseURL)
	secrets := map[string]string{}
	install := func(clientKey string) {
		t.Helper()
		secrets[clientKey] = strings.Repeat(clientKey[len(clientKey)-1:], 40)
		status, body := signedInstall(t, baseURL, clientKey, secrets[clientKey], "http://127.0.0.1:1/s/"+clientKey, priv)
		if status/100 != 2 {
			t.Fatalf("install %s answered %d %s\n%s", clientKey, status, body, p.stderr.String())
		}
	}
	addItem := func(clientKey, text string) {
		t.Helper()
		status, page := send(t, "POST", baseURL+"/api/checklists/DEMO-1/items", contextToken(t, clientKey, secrets[clientKey]), []byte(`{"text":"`+text+`"}`))
		if status != 201 {
			t.Fatalf("%s does not authenticate: %d %s\n%s", clientKey, status, page, p.stderr.String())
		}
	}
	for _, ck := range []string{"tenant-1", "tenant-2", "tenant-3"} {
		install(ck)
		addItem(ck, "before rotation")
	}

	// Rotate and restart: the new key seals, the old one still opens.
	if out, err := exec.Command(bin, "keygen", "-rotate", "-o", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("keygen -rotate: %v\n%s", err, out)
	}
	ids := loadKeyIDs(t, keyFile)
	idNew, idOld := ids[0], ids[1]
	stop(t, p)
	p = startServer(t, bin, args, baseURL)
	install("tenant-4")
	addItem("tenant-4", "after rotation")

	out := keysCmd("status")
	if n := rows(out, idOld); n < 3 {
		t.Fatalf("status before reseal: %d rows under the old key, want the 3 installs at least\n%s", n, out)
	}
	if n := rows(out, idNew); n < 1 {
		t.Fatalf("status before reseal: %d rows under the new key, want the new install at least\n%s", n, out)
	}

	// Re-seal while serve runs, and serve keeps authenticating.
	out = keysCmd("reseal", "--batch", "2")
	if n := rows(out, idOld); n != 0 {
		t.Fatalf("after reseal %d rows remain under the old key\n%s", n, out)
	}
	if n := rows(out, "unreadable"); n != 0 {
		t.Fatalf("after reseal %d rows are unreadable\n%s", n, out)
	}
	for ck := range secrets {
		addItem(ck, "during reseal")
	}

	// Retire the old key: the file keeps its first line only.
	data, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(data), "\n")
	if err := os.WriteFile(keyFile, []byte(first+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := loadKeyIDs(t, keyFile); len(got) != 1 || got[0] != idNew {
		t.Fatalf("key file after retiring holds %v, want only %s", got, idNew)
	}
	stop(t, p)
	p = startServer(t, bin, args, baseURL)
	for ck, secret := range secrets {
		status, page := send(t, "GET", baseURL+"/api/checklists/DEMO-1", contextToken(t, ck, secret), nil)
		if status != 200 || !strings.Contains(string(page), "during reseal") {
			t.Errorf("%s after retiring the old key: %d %s", ck, status, page)
		}
		if ck != "tenant-4" && !strings.Contains(string(page), "before rotation") {
			t.Errorf("%s lost the item written before the rotation: %s", ck, page)
		}
	}
	out = keysCmd("status")
	if rows(out, "unreadable") != 0 || strings.Contains(out, idOld) {
		t.Errorf("status after retiring the old key:\n%s", out)
	}
	if t.Failed() {
		t.Logf("server log:\n%s", p.stderr.String())
	}
}

func loadKeyIDs(t *testing.T, file string) []string {
	t.Helper()
	kr, err := keyring.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return kr.KeyIDs()
}

// stop ends serve gracefully and waits for it.
func stop(t *testing.T, p *proc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
}
