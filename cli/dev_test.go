package cli_test

import (
	"bytes"
	"context"
	"io"
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

// TestDevStartsAppAndFake runs `tenon dev` as the README's first command
// does and follows the URL it prints: the fake issue page must frame the
// installed app with a signed URL that the app accepts.
func TestDevStartsAppAndFake(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, cli.Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }},
			checklist.New(checklist.Options{}),
			[]string{"dev", "--data", dir, "--addr", "127.0.0.1:0", "--fake-addr", "127.0.0.1:0"})
	}()
	defer func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("dev exited with %d\n%s", code, stderr.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("dev did not stop after cancel")
		}
	}()

	urlRE := regexp.MustCompile(`Open in your browser:\s+(\S+)`)
	var pageURL string
	deadline := time.After(60 * time.Second)
	for pageURL == "" {
		if m := urlRE.FindStringSubmatch(stdout.String()); m != nil {
			pageURL = m[1]
			break
		}
		select {
		case code := <-done:
			t.Fatalf("dev exited early with %d\n%s\n%s", code, stdout.String(), stderr.String())
		case <-deadline:
			t.Fatalf("dev printed no URL\n%s\n%s", stdout.String(), stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if !strings.Contains(pageURL, "/browse/DEMO-1") {
		t.Fatalf("printed URL %q is not an issue page", pageURL)
	}
	page := get(t, pageURL)
	src := regexp.MustCompile(`<iframe[^>]*src="([^"]+)"`).FindStringSubmatch(page)
	if src == nil {
		t.Fatalf("issue page frames no app:\n%s", page)
	}
	frameURL := strings.ReplaceAll(src[1], "&amp;", "&")
	if frame := get(t, frameURL); !strings.Contains(frame, "DEMO-1") {
		t.Fatalf("app panel does not show the issue:\n%s", frame)
	}
	for _, name := range []string{"secret.key", "tenon.db"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("data directory lacks %s: %v", name, err)
		}
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d\n%s", url, resp.StatusCode, b)
	}
	return string(b)
}
