package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tenon-dev/tenon/cli"
)

// runCLI runs one command with args and returns its exit code and output.
func runCLI(t *testing.T, vars map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Run(context.Background(), cli.Env{Stdout: &out, Stderr: &errOut, Getenv: env(vars)}, nil, args)
	return code, out.String(), errOut.String()
}

// releasesDir makes <dir>/releases/<v>/tenon for each version.
func releasesDir(t *testing.T, versions ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, v := range versions {
		rd := filepath.Join(dir, "releases", v)
		if err := os.MkdirAll(rd, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(rd, "tenon"), []byte("#!/bin/sh\necho "+v+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func current(t *testing.T, dir string) string {
	t.Helper()
	target, err := os.Readlink(filepath.Join(dir, "current"))
	if err != nil {
		t.Fatalf("current: %v", err)
	}
	return target
}

func TestReleaseActivateAndRollback(t *testing.T) {
	dir := releasesDir(t, "1.0.0", "1.1.0", "1.2.0")
	vars := map[string]string{"TENON_RELEASES_DIR": dir}
	steps := []struct {
		args []string
		want string // target of current afterwards
	}{
		{[]string{"release", "activate", "1.0.0"}, "releases/1.0.0"},
		{[]string{"release", "activate", "1.1.0"}, "releases/1.1.0"},
		{[]string{"release", "activate", "1.1.0"}, "releases/1.1.0"}, // again: no change, no history entry
		{[]string{"release", "activate", "--releases-dir", dir, "1.2.0"}, "releases/1.2.0"},
		{[]string{"release", "rollback"}, "releases/1.1.0"},
		{[]string{"release", "rollback"}, "releases/1.0.0"},
	}
	for _, s := range steps {
		code, out, errOut := runCLI(t, vars, s.args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", s.args, code, errOut)
		}
		if got := current(t, dir); got != s.want {
			t.Fatalf("after %v current -> %s, want %s (output %q)", s.args, got, s.want, out)
		}
	}
	// Nothing before 1.0.0: rollback refuses and changes nothing.
	code, _, errOut := runCLI(t, vars, "release", "rollback")
	if code == 0 || !strings.Contains(errOut, "no earlier release") {
		t.Fatalf("rollback past the first release: exit %d: %s", code, errOut)
	}
	if got := current(t, dir); got != "releases/1.0.0" {
		t.Fatalf("a refused rollback changed current to %s", got)
	}
	if _, out, _ := runCLI(t, vars, "release", "list"); !strings.Contains(out, "* 1.0.0") || !strings.Contains(out, "  1.2.0") {
		t.Errorf("list:\n%s", out)
	}
	// No temporary links are left behind.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".current-") {
			t.Errorf("left over: %s", e.Name())
		}
	}
}

func TestReleaseRefusesBadVersions(t *testing.T) {
	dir := releasesDir(t, "1.0.0")
	if err := os.MkdirAll(filepath.Join(dir, "releases", "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"TENON_RELEASES_DIR": dir}
	tests := []struct {
		version, want string
	}{
		{"2.0.0", "no release 2.0.0"},
		{"../..", "not a version name"},
		{"1.0.0/../../x", "not a version name"},
		{".hidden", "not a version name"},
		{"-rf", "not a version name"},
		{"empty", "holds no executable file"},
	}
	for _, tc := range tests {
		t.Run(tc.version, func(t *testing.T) {
			code, _, errOut := runCLI(t, vars, "release", "activate", "--", tc.version)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d: %s; want an error with %q", code, errOut, tc.want)
			}
			if _, err := os.Lstat(filepath.Join(dir, "current")); !os.IsNotExist(err) {
				t.Fatalf("current was created by a refused activation: %v", err)
			}
		})
	}
}

// A current link switched by hand is not silently overridden by rollback.
func TestReleaseRollbackAfterManualSwitch(t *testing.T) {
	dir := releasesDir(t, "1.0.0", "1.1.0", "1.2.0")
	vars := map[string]string{"TENON_RELEASES_DIR": dir}
	for _, v := range []string{"1.0.0", "1.1.0"} {
		if code, _, errOut := runCLI(t, vars, "release", "activate", v); code != 0 {
			t.Fatal(errOut)
		}
	}
	os.Remove(filepath.Join(dir, "current"))
	if err := os.Symlink("releases/1.2.0", filepath.Join(dir, "current")); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, vars, "release", "rollback")
	if code == 0 || !strings.Contains(errOut, "changed by hand") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if got := current(t, dir); got != "releases/1.2.0" {
		t.Errorf("current -> %s", got)
	}
}

// Concurrent activations are serialized: the history names exactly the
// versions activated, and current is one of them.
func TestReleaseConcurrentActivations(t *testing.T) {
	versions := []string{"a", "b", "c", "d", "e", "f"}
	dir := releasesDir(t, versions...)
	vars := map[string]string{"TENON_RELEASES_DIR": dir}
	var wg sync.WaitGroup
	for _, v := range versions {
		wg.Go(func() {
			if code, _, errOut := runCLI(t, vars, "release", "activate", v); code != 0 {
				t.Errorf("activate %s: %s", v, errOut)
			}
		})
	}
	wg.Wait()
	raw, err := os.ReadFile(filepath.Join(dir, "releases.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range versions {
		if !strings.Contains(string(raw), `"`+v+`"`) {
			t.Errorf("history lacks %s:\n%s", v, raw)
		}
	}
	got := strings.TrimPrefix(current(t, dir), "releases/")
	if !strings.Contains(string(raw), `"active": [`) || !strings.Contains(string(raw), `"`+got+`"`+"\n  ]") {
		t.Errorf("current is %s but the history ends otherwise:\n%s", got, raw)
	}
}

func TestReleaseReloadNeedsPIDFile(t *testing.T) {
	dir := releasesDir(t, "1.0.0")
	code, _, errOut := runCLI(t, map[string]string{"TENON_RELEASES_DIR": dir}, "release", "activate", "--reload", "1.0.0")
	if code == 0 || !strings.Contains(errOut, "--pid-file") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	pidFile := filepath.Join(dir, "tenon.pid")
	os.WriteFile(pidFile, []byte("not a pid\n"), 0o644)
	code, _, errOut = runCLI(t, map[string]string{"TENON_RELEASES_DIR": dir, "TENON_PID_FILE": pidFile}, "release", "activate", "--reload", "1.0.0")
	if code == 0 || !strings.Contains(errOut, "does not hold a process id") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}
