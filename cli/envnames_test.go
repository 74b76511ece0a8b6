package cli_test

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/tenon-dev/tenon/cli"
)

// runWithEnviron runs the command line with vars as the whole process
// environment, as Main does with os.Environ.
func runWithEnviron(vars map[string]string, args ...string) (int, string) {
	var list []string
	for k, v := range vars {
		list = append(list, k+"="+v)
	}
	var stderr bytes.Buffer
	code := cli.Run(context.Background(), cli.Env{Stdout: io.Discard, Stderr: &stderr, Getenv: env(vars),
		Environ: func() []string { return list }}, skewApp{}, args)
	return code, stderr.String()
}

func TestUnknownTenonVariableStopsServe(t *testing.T) {
	good := map[string]string{"TENON_BASE_URL": "https://app.example.com", "TENON_SECRET_KEY_FILE": "/nonexistent/secret.key",
		"HOME": "/root", "TENONX": "not ours"}
	for typo, want := range map[string]string{
		"TENON_BASEURL":     "TENON_BASE_URL",
		"TENON_CLOCKSKEW":   "TENON_CLOCK_SKEW",
		"TENON_DBB":         "TENON_DB",
		"TENON_LOGLEVEL":    "TENON_LOG_LEVEL",
		"TENON_RELEASE_DIR": "TENON_RELEASES_DIR",
	} {
		vars := map[string]string{typo: "x"}
		for k, v := range good {
			vars[k] = v
		}
		code, stderr := runWithEnviron(vars, "serve")
		if code != 1 || !strings.Contains(stderr, "unknown environment variable "+typo+" (did you mean "+want+"?)") {
			t.Errorf("%s: exit %d: %s", typo, code, stderr)
		}
	}
	// Every unknown name is listed at once.
	code, stderr := runWithEnviron(map[string]string{"TENON_ADR": ":1", "TENON_ENVIROMENT": "dev"}, "serve")
	if code != 1 || !strings.Contains(stderr, "TENON_ADR (did you mean TENON_ADDR?)") || !strings.Contains(stderr, "TENON_ENVIROMENT (did you mean TENON_ENVIRONMENT?)") {
		t.Errorf("two typos: exit %d: %s", code, stderr)
	}
}

// The admin commands refuse the same typos before touching the store.
func TestUnknownTenonVariableStopsAdminCommands(t *testing.T) {
	db, _ := settingsDB(t)
	before, _ := os.ReadFile(db)
	for _, args := range [][]string{{"maintenance", "on", "--db", db}, {"notice", "list", "--db", db}, {"jobs", "list", "--db", db}} {
		code, stderr := runWithEnviron(map[string]string{"TENON_SECRET_KEYFILE": "/k"}, args...)
		if code != 1 || !strings.Contains(stderr, "unknown environment variable TENON_SECRET_KEYFILE (did you mean TENON_SECRET_KEY_FILE?)") {
			t.Errorf("%v: exit %d: %s", args, code, stderr)
		}
	}
	if after, _ := os.ReadFile(db); !bytes.Equal(before, after) {
		t.Error("a refused command changed the database")
	}
}

// Every TENON_ name the repository uses — settings, names other commands
// read, and the test suite's own, which CI exports into the environment
// of the binary under test — lets serve start.
func TestEveryTenonNameInTheRepositoryIsKnown(t *testing.T) {
	deliberateTypos := map[string]bool{
		"TENON_BASEURL": true, "TENON_CLOCKSKEW": true, "TENON_DBB": true, "TENON_LOGLEVEL": true,
		"TENON_RELEASE_DIR": true, "TENON_ADR": true, "TENON_ENVIROMENT": true, "TENON_SECRET_KEYFILE": true,
	}
	re := regexp.MustCompile(`TENON_[A-Z0-9_]+`)
	found := map[string]bool{}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" || d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		if info, err := d.Info(); err != nil || info.Size() > 1<<20 {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, name := range re.FindAllString(string(raw), -1) {
			// A name ending in _ is a prefix (TENON_REQUIRE_*), not a variable.
			if !deliberateTypos[name] && !strings.HasSuffix(name, "_") {
				found[name] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range []string{"TENON_TEST_POSTGRES_DSN", "TENON_REQUIRE_POSTGRES", "TENON_SCREENSHOT_DIR", "TENON_MEASURE", "TENON_UPGRADE_LISTENERS"} {
		if !found[must] {
			t.Errorf("the scan missed %s", must)
		}
	}
	vars := map[string]string{}
	var names []string
	for n := range found {
		vars[n] = "x"
		names = append(names, n)
	}
	sort.Strings(names)
	code, stderr := runWithEnviron(vars, "serve")
	if code == 0 || strings.Contains(stderr, "unknown environment variable") {
		t.Errorf("serve with %s:\nexit %d: %s", strings.Join(names, " "), code, stderr)
	}
}
