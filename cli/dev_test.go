package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/cli"
	"github.com/tenon-dev/tenon/examples/checklist"
)

// syncBuffer is a bytes.Buffer safe for the command's goroutine and the
// test's polling.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type devRun struct {
	page, app, fake string
	stdout, stderr  *syncBuffer
	stop            func()
}

// startDev runs `tenon dev` as the README's first command does and reads
// the addresses it prints.
func startDev(t *testing.T, dir string, args ...string) *devRun {
	t.Helper()
	return startDevApp(t, dir, checklist.New(checklist.Options{}), args...)
}

// startDevApp is startDev with another app.
func startDevApp(t *testing.T, dir string, app cli.App, args ...string) *devRun {
	t.Helper()
	if len(args) == 0 {
		args = []string{"--addr", "127.0.0.1:0", "--fake-addr", "127.0.0.1:0"}
	}
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, cli.Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }},
			app, append([]string{"dev", "--data", dir}, args...))
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("dev exited with %d\n%s", code, stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("dev did not stop after cancel")
		}
	}
	t.Cleanup(stop)

	re := regexp.MustCompile(`Open in your browser:\s+(\S+)[\s\S]*App:\s+(\S+)[\s\S]*Fake Atlassian:\s+(\S+)`)
	deadline := time.After(60 * time.Second)
	for {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			return &devRun{page: m[1], app: m[2], fake: m[3], stdout: &stdout, stderr: &stderr, stop: stop}
		}
		select {
		case code := <-done:
			stopped = true
			t.Fatalf("dev exited early with %d\n%s\n%s", code, stdout.String(), stderr.String())
		case <-deadline:
			t.Fatalf("dev printed no URL\n%s\n%s", stdout.String(), stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestDevStartsAppAndFake follows the URL `tenon dev` prints: the fake
// issue page must frame the installed app with a signed URL that the app
// accepts. A checklist item added through the app's API is still there
// after dev restarts on the same data directory.
func TestDevStartsAppAndFake(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	run := startDev(t, dir)
	if !strings.Contains(run.page, "/browse/DEMO-1") {
		t.Fatalf("printed URL %q is not an issue page", run.page)
	}
	page := get(t, run.page)
	src := regexp.MustCompile(`<iframe[^>]*src="([^"]+)"`).FindStringSubmatch(page)
	if src == nil {
		t.Fatalf("issue page frames no app:\n%s", page)
	}
	frameURL := strings.ReplaceAll(src[1], "&amp;", "&")
	if frame := get(t, frameURL); !strings.Contains(frame, "DEMO-1") {
		t.Fatalf("app panel does not show the issue:\n%s", frame)
	}
	for _, name := range []string{"secret.key", "tenon.db", "site-dev.json"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("data directory lacks %s: %v", name, err)
		}
	}
	call(t, "POST", run.app+"/api/checklists/DEMO-1/items", contextToken(t, run.fake), `{"text":"kept across restarts"}`, 201)
	forgeApp := regexp.MustCompile(`the Forge app (\S+) is installed`).FindStringSubmatch(run.stdout.String())
	if forgeApp == nil {
		t.Fatalf("dev did not say which Forge app it installed:\n%s", run.stdout.String())
	}
	run.stop()

	run = startDev(t, dir)
	if !strings.Contains(run.stdout.String(), "the Forge app "+forgeApp[1]+" is installed") {
		t.Fatalf("the Forge app id changed across restarts (was %s):\n%s", forgeApp[1], run.stdout.String())
	}
	body := call(t, "GET", run.app+"/api/checklists/DEMO-1", contextToken(t, run.fake), "", 200)
	if !strings.Contains(body, "kept across restarts") {
		t.Fatalf("checklist lost across dev restarts: %s", body)
	}
	// The Forge successor installed by dev reads the same site's data.
	forge := call(t, "POST", run.fake+"/_fake/sites/dev/forge/invoke", "",
		`{"path":"/forge/checklists/DEMO-1","method":"GET","issueKey":"DEMO-1"}`, 200)
	if !strings.Contains(forge, "kept across restarts") || !strings.Contains(forge, `"status":200`) {
		t.Fatalf("Forge invocation does not see the Connect checklist: %s", forge)
	}
}

// dev says so when the ports it was asked for are taken.
func TestDevSaysWhenPortsAreBusy(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	run := startDev(t, t.TempDir(), "--addr", busy.Addr().String(), "--fake-addr", "127.0.0.1:0")
	want := "tenon dev: " + busy.Addr().String() + " is busy; the app listens on "
	if !strings.Contains(run.stderr.String(), want) {
		t.Fatalf("dev did not say the app's port was busy:\n%s", run.stderr.String())
	}
	if strings.Contains(run.stderr.String(), "fake Atlassian listens") {
		t.Fatalf("dev reported a port it was not asked for as busy:\n%s", run.stderr.String())
	}
}

// contextToken asks the fake's control API for what AP.context.getToken
// would give the panel on DEMO-1.
func contextToken(t *testing.T, fake string) string {
	t.Helper()
	body := call(t, "POST", fake+"/_fake/sites/dev/apps/tenon-checklist/context-token", "", `{"issueKey":"DEMO-1"}`, 200)
	var out struct{ Token string }
	if err := json.Unmarshal([]byte(body), &out); err != nil || out.Token == "" {
		t.Fatalf("context token answer %s: %v", body, err)
	}
	return out.Token
}

func call(t *testing.T, method, url, token, body string, want int) string {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "JWT "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d, want %d\n%s", method, url, resp.StatusCode, want, b)
	}
	return string(b)
}

func get(t *testing.T, url string) string {
	t.Helper()
	return call(t, "GET", url, "", "", 200)
}
