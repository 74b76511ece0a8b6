package cli_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/cli"
	"github.com/tenon-dev/tenon/server"
)

// pureForgeApp is a pure Forge app: no Connect descriptor, a lifecycle
// route and one remote route.
type pureForgeApp struct {
	installed chan string // installation ids of installed events
	noRoutes  bool
}

func (pureForgeApp) Descriptor() []byte { return nil }

func (a pureForgeApp) Routes(s *server.Server) error {
	if a.noRoutes {
		return nil
	}
	s.ForgeLifecycle("/forge/lifecycle", server.ForgeLifecycleHooks{
		Installed: func(_ context.Context, in *tenon.ForgeInstallation) { a.installed <- in.InstallationID },
	})
	s.ForgeRemote("GET /forge/hello", func(w http.ResponseWriter, r *http.Request) error {
		p := tenon.PrincipalFrom(r.Context())
		_, err := io.WriteString(w, `{"hello":"`+p.ClientKey()+`"}`)
		return err
	})
	return nil
}

func TestDevForgeOnly(t *testing.T) {
	app := pureForgeApp{installed: make(chan string, 4)}
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, cli.Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}, app,
			[]string{"dev", "--data", t.TempDir(), "--addr", "127.0.0.1:0", "--fake-addr", "127.0.0.1:0"})
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("dev exited with %d\n%s", code, stderr.String())
		}
	}()
	re := regexp.MustCompile(`App \(Forge remote\):\s+(\S+)[\s\S]*Fake Atlassian:\s+(\S+)`)
	var m []string
	for deadline := time.Now().Add(60 * time.Second); m == nil; m = re.FindStringSubmatch(stdout.String()) {
		select {
		case code := <-done:
			done <- code
			t.Fatalf("dev exited early with %d\n%s\n%s", code, stdout.String(), stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev printed no addresses\n%s\n%s", stdout.String(), stderr.String())
		}
	}
	appURL, fakeURL := m[1], m[2]
	out := stdout.String()
	for _, want := range []string{
		"without a Connect descriptor",
		"sent avi:forge:installed:app to /forge/lifecycle: 204",
		"curl -s -X POST " + fakeURL + "/_fake/sites/dev/forge/invoke",
		`"path":"/forge/hello"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dev's output lacks %q:\n%s", want, out)
		}
	}
	select {
	case id := <-app.installed:
		if !strings.HasPrefix(id, "ari:cloud:ecosystem::installation/") {
			t.Errorf("installed hook for %q", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the app's Installed hook was not called")
	}
	// No descriptor is served, and no Connect install happened.
	if body := call(t, "GET", appURL+"/atlassian-connect.json", "", "", http.StatusNotFound); !strings.Contains(body, "not_found") {
		t.Errorf("descriptor: %s", body)
	}
	// The remote answers Forge's invocation, for the Forge-only tenant.
	got := call(t, "POST", fakeURL+"/_fake/sites/dev/forge/invoke", "", `{"path":"/forge/hello","method":"GET"}`, http.StatusOK)
	if !strings.Contains(got, `"status":200`) || !strings.Contains(got, `"hello":"forge:`) {
		t.Errorf("invocation: %s", got)
	}
}

func TestDevForgeOnlyNeedsForgeRoutes(t *testing.T) {
	var stdout, stderr syncBuffer
	code := cli.Run(context.Background(), cli.Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }},
		pureForgeApp{noRoutes: true}, []string{"dev", "--data", t.TempDir(), "--addr", "127.0.0.1:0", "--fake-addr", "127.0.0.1:0"})
	if code == 0 || !strings.Contains(stderr.String(), "registers no Forge route") {
		t.Errorf("exit %d\n%s", code, stderr.String())
	}
}
