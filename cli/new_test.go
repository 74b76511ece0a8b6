package cli_test

import (
	"bufio"
	"context"
	"html"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/cli"
)

func TestWriteSkeletonRefuses(t *testing.T) {
	good := cli.Skeleton{Name: "app", Title: "app", Module: "example.com/app", Key: "app", TenonVersion: "v0.1.0"}
	nonEmpty := t.TempDir()
	if err := os.WriteFile(filepath.Join(nonEmpty, "keep.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		dir  string
		edit func(*cli.Skeleton)
		want string
	}{
		{"a directory with files", nonEmpty, nil, "exists and is not empty"},
		{"a bad app key", filepath.Join(t.TempDir(), "x"), func(s *cli.Skeleton) { s.Key = "no spaces allowed" }, "app key"},
		{"a too long app key", filepath.Join(t.TempDir(), "x"), func(s *cli.Skeleton) { s.Key = strings.Repeat("k", 65) }, "app key"},
		{"a bad module path", filepath.Join(t.TempDir(), "x"), func(s *cli.Skeleton) { s.Module = "not a path" }, "not a Go module path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sk := good
			if tc.edit != nil {
				tc.edit(&sk)
			}
			before := listDir(t, tc.dir)
			_, err := cli.WriteSkeleton(tc.dir, sk)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
			if after := listDir(t, tc.dir); after != before {
				t.Fatalf("%s changed: %q, was %q", tc.dir, after, before)
			}
		})
	}
	code, _, errOut := runCLI(t, nil, "new")
	if code == 0 || !strings.Contains(errOut, "takes one directory") {
		t.Fatalf("new without a directory: exit %d, %q", code, errOut)
	}
}

func listDir(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "(none)"
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return strings.Join(names, ",")
}

// The README's worked example is the skeleton, word for word.
func TestREADMEExampleIsTheSkeleton(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "hello")
	if _, err := cli.WriteSkeleton(dir, cli.Skeleton{Name: "hello", Title: "hello", Module: "example.com/hello", Key: "hello", TenonVersion: "v0.1.0"}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"main.go", "atlassian-connect.json"} {
		raw, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(readme), string(raw)) {
			t.Errorf("README.md does not show the skeleton's %s as `tenon new hello` writes it:\n%s", f, raw)
		}
	}
}

// tenon new writes a project that builds, passes its own tests, and runs
// under dev, where its page works.
func TestNewProjectBuildsTestsAndRuns(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("the go command is needed to build the generated project")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"connect", nil},
		{"forge", []string{"--forge"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "acme-"+tc.name)
			args := append([]string{"new", "--tenon", root}, tc.flags...)
			code, out, errOut := runCLI(t, nil, append(args, dir)...)
			if code != 0 {
				t.Fatalf("tenon new: exit %d\n%s\n%s", code, out, errOut)
			}
			if _, err := os.Stat(filepath.Join(dir, "manifest.yml")); (err == nil) != (tc.name == "forge") {
				t.Fatalf("manifest.yml present = %v with flags %v", err == nil, tc.flags)
			}
			goCmd(t, dir, "vet", "./...")
			goCmd(t, dir, "test", "-count=1", "./...")
			bin := filepath.Join(dir, "acme")
			goCmd(t, dir, "build", "-o", bin, ".")
			runDevAndOpenPage(t, bin, tc.name == "forge")
		})
	}
}

func goCmd(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s in the generated project: %v\n%s", strings.Join(args, " "), err, out)
	}
}

var iframeSrc = regexp.MustCompile(`<iframe[^>]* src="([^"]+)"`)

// runDevAndOpenPage starts `bin dev`, opens the page it prints and the
// app's iframe in it, then stops it. dev installs the Forge app exactly
// when the app has Forge routes.
func runDevAndOpenPage(t *testing.T, bin string, forge bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "dev", "--data", t.TempDir(), "--addr", "127.0.0.1:0", "--fake-addr", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	pageURL, forgeInstalled := "", false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "the Forge app ") {
			forgeInstalled = true
		}
		if _, u, ok := strings.Cut(sc.Text(), "Open in your browser:"); ok {
			pageURL = strings.TrimSpace(u)
			break
		}
	}
	if forgeInstalled != forge {
		t.Errorf("dev installed the Forge app: %v; the app has Forge routes: %v", forgeInstalled, forge)
	}
	go io.Copy(io.Discard, stdout)
	if pageURL == "" {
		t.Fatalf("dev printed no page to open; stderr:\n%s", stderr.String())
	}
	client := &http.Client{Timeout: 10 * time.Second}
	page := getPage(t, client, pageURL)
	m := iframeSrc.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the fake page %s has no app iframe:\n%s", pageURL, page)
	}
	if body := getPage(t, client, html.UnescapeString(m[1])); !strings.Contains(body, "Issues created since the app was installed: 0") {
		t.Fatalf("the app's page in the iframe says:\n%s", body)
	}
}

func getPage(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	res, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, res.StatusCode, raw)
	}
	return string(raw)
}
