package cli_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenon-dev/tenon/cli"
	"github.com/tenon-dev/tenon/examples/checklist"
	"github.com/tenon-dev/tenon/examples/hello"
	"github.com/tenon-dev/tenon/keyring"
)

// renamedHook is the checklist app whose descriptor names another event
// than the one its OnWebhook handles: the descriptor's url has no route,
// and the handled event is declared nowhere.
type renamedHook struct{ *checklist.App }

func (a renamedHook) Descriptor() []byte {
	return bytes.Replace(a.App.Descriptor(), []byte(`"jira:issue_deleted"`), []byte(`"jira:issue_removed"`), 1)
}

const renamedHookProblems = `atlassian-connect.json:27:5: OnWebhook("jira:issue_deleted"): the descriptor declares no webhook for this event; add {"event": "jira:issue_deleted", "url": "/..."} to modules.webhooks
atlassian-connect.json:30:16: modules.webhooks[0].url: no route serves POST /webhooks/issue-deleted; register it with OnWebhook("jira:issue_removed", ...) or Webhook("/webhooks/issue-deleted", ...)
`

func runLint(t *testing.T, app cli.App, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Run(context.Background(), cli.Env{Stdout: &out, Stderr: &errOut, Getenv: env(nil)}, app, append([]string{"lint"}, args...))
	return code, out.String(), errOut.String()
}

func TestLintExamples(t *testing.T) {
	for name, app := range map[string]cli.App{"checklist": checklist.New(checklist.Options{}), "hello": hello.New()} {
		if code, out, errOut := runLint(t, app); code != 0 || out != "" || errOut != "" {
			t.Errorf("%s: lint exit %d, output %q %q", name, code, out, errOut)
		}
	}
}

func TestLintCrossChecksRoutes(t *testing.T) {
	code, out, _ := runLint(t, renamedHook{checklist.New(checklist.Options{})})
	if code != 1 || out != renamedHookProblems {
		t.Errorf("lint exit %d, output:\n%s\nwant:\n%s", code, out, renamedHookProblems)
	}
}

func TestLintFiles(t *testing.T) {
	dir := t.TempDir()
	desc := filepath.Join(dir, "atlassian-connect.json")
	raw := bytes.Replace(checklist.New(checklist.Options{}).Descriptor(), []byte(`"webPanels"`), []byte(`"webPanel"`), 1)
	if err := os.WriteFile(desc, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	man := filepath.Join(dir, "manifest.yml")
	if err := os.WriteFile(man, []byte("app:\n  id: ari:cloud:ecosystem::app/x\n  runtime:\n    name: nodejs22.x\nmodules:\n  jira:issuePanel:\n    - key: p\n      title: P\n      resource: ui\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runLint(t, nil, "--descriptor", desc, "--manifest", man)
	want := desc + `:19:5: unknown module type "webPanel"; did you mean "webPanels"?` + "\n" +
		man + `:9:17: modules.jira:issuePanel[0].resource: resource "ui" is not defined; add it to resources` + "\n"
	if code != 1 || out != want {
		t.Errorf("lint exit %d, output:\n%s\nwant:\n%s", code, out, want)
	}
	ok := filepath.Join(dir, "ok.json")
	if err := os.WriteFile(ok, hello.New().Descriptor(), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runLint(t, nil, "--descriptor", ok); code != 0 || out != "" {
		t.Errorf("a clean file: exit %d, output %q", code, out)
	}
	if code, _, errOut := runLint(t, nil, "--descriptor", filepath.Join(dir, "missing.json")); code != 1 || !strings.Contains(errOut, "read the descriptor") {
		t.Errorf("a missing file: exit %d, %q", code, errOut)
	}
}

// pagelessHello declares no page, so its Module route is never loaded.
type pagelessHello struct{ *hello.App }

func (a pagelessHello) Descriptor() []byte {
	return bytes.Replace(a.App.Descriptor(), []byte(`{ "key": "hello", "name": { "value": "Hello" }, "url": "/hello" }`), nil, 1)
}

// A warning alone is printed and exits 0.
func TestLintWarningExitsZero(t *testing.T) {
	code, out, _ := runLint(t, pagelessHello{hello.New()})
	want := `atlassian-connect.json:17:3: warning: Module route GET /hello is the url of no module: the product never loads it (fine if the app links to it itself)` + "\n"
	if code != 0 || out != want {
		t.Errorf("lint exit %d, output:\n%s\nwant:\n%s", code, out, want)
	}
}

// serve refuses to start on an app whose descriptor and routes
// disagree, and says every problem at once: no panic, no store left open.
func TestServeRefusesProblems(t *testing.T) {
	dir := t.TempDir()
	key, err := keyring.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "secret.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := cli.LoadConfig([]string{"--db", filepath.Join(dir, "tenon.db"), "--secret-key-file", keyFile, "--base-url", "https://app.example.com"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	b, err := cli.Open(context.Background(), cfg, renamedHook{checklist.New(checklist.Options{})}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		b.Close()
		t.Fatal("the backend opened")
	}
	for _, line := range strings.Split(strings.TrimSpace(renamedHookProblems), "\n") {
		if !strings.Contains(err.Error(), "  "+line) {
			t.Errorf("error %q lacks %q", err, line)
		}
	}
	if !strings.Contains(err.Error(), "has 2 problem(s)") {
		t.Errorf("error %q does not count the problems", err)
	}
}
