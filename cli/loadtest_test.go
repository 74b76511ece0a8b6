package cli_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenon-dev/tenon/cli"
	"github.com/tenon-dev/tenon/examples/reference"
	"github.com/tenon-dev/tenon/keyring"
)

func TestLoadtestFlagsRefused(t *testing.T) {
	mix := filepath.Join("..", "loadtest", "mixes", "reference.json")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no install workers", []string{"--install-workers", "0"}, "--install-workers must be from 1 to 64"},
		{"too many install workers", []string{"--install-workers", "65"}, "--install-workers must be from 1 to 64"},
		{"urls without install-only", []string{"--urls-out", filepath.Join(t.TempDir(), "u.txt")}, "--urls-out goes with --install-only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The target is never reached: the flags are refused first.
			args := append([]string{"loadtest", "--target", "http://127.0.0.1:1", "--mix", mix, "--quiet"}, tc.args...)
			code, _, errs := run(t, nil, args...)
			if code == 0 || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, stderr %q; want an error with %q", code, errs, tc.want)
			}
		})
	}
}

// `loadtest --install-only --urls-out` against the reference app served
// as serve serves it: tenants installed through the fake, their values
// stored by the setup route, and a file of signed URLs the app accepts.
func TestLoadtestInstallOnlyWritesURLs(t *testing.T) {
	dir := t.TempDir()
	line, err := keyring.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "secret.key")
	if err := os.WriteFile(keyFile, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The fake's address, fixed before the app starts so the app trusts
	// its key server.
	fl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fakeAddr := fl.Addr().String()
	fl.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	cfg, err := cli.LoadConfig([]string{"--environment", "development", "--base-url", base, "--db", filepath.Join(dir, "ref.db"),
		"--secret-key-file", keyFile, "--install-keys-url", "http://" + fakeAddr + "/connect-install-keys"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b, err := cli.Open(context.Background(), cfg, reference.New(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	ts := httptest.NewUnstartedServer(b.Server)
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	t.Cleanup(ts.Close)

	mix := filepath.Join(dir, "mix.json")
	if err := os.WriteFile(mix, []byte(`{"tenants": 3, "issuesPerTenant": 2,
		"routes": [{"kind": "page", "module": "reference-page", "share": 1}],
		"setup": [{"kind": "api", "method": "PUT", "path": "/api/reference-value", "body": {"greeting": "seeded"}}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	urlsFile := filepath.Join(dir, "urls.txt")
	var out, errb bytes.Buffer
	code := cli.Run(context.Background(), cli.Env{Stdout: &out, Stderr: &errb, Getenv: env(nil)}, nil,
		[]string{"loadtest", "--target", base, "--fake-addr", fakeAddr, "--mix", mix, "--install-only", "--urls-out", urlsFile,
			"--duration", "5m", "--install-workers", "2"})
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "installed 3 tenants") || !strings.Contains(out.String(), "wrote 6 signed page URLs") {
		t.Errorf("output:\n%s", out.String())
	}
	raw, err := os.ReadFile(urlsFile)
	if err != nil {
		t.Fatal(err)
	}
	urls := strings.Fields(string(raw))
	if len(urls) != 6 {
		t.Fatalf("%d URLs, want 6:\n%s", len(urls), raw)
	}
	for _, u := range urls {
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "seeded") {
			t.Errorf("%s: %d %s", u, res.StatusCode, body)
		}
	}
}
