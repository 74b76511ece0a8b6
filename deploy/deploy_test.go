package deploy_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repoLink is a link into this repository's main branch.
var repoLink = regexp.MustCompile(`https://github\.com/tenon-dev/tenon/blob/main/([^\s)"'#]+)`)

// mdLink is a relative Markdown link target.
var mdLink = regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)

// Every repository file a deploy file or a document links to exists.
func TestLinksExist(t *testing.T) {
	root := ".."
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "testdata", "tenon-dev":
				return filepath.SkipDir
			}
			return nil
		}
		inDeploy := strings.HasPrefix(filepath.ToSlash(path), "../deploy/")
		isDoc := strings.HasSuffix(path, ".md")
		if !inDeploy && !isDoc {
			return nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range repoLink.FindAllStringSubmatch(string(raw), -1) {
			checked++
			if _, err := os.Stat(filepath.Join(root, m[1])); err != nil {
				t.Errorf("%s links to %s, which does not exist", path, m[0])
			}
		}
		if isDoc {
			for _, m := range mdLink.FindAllStringSubmatch(string(raw), -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				checked++
				if _, err := os.Stat(filepath.Join(filepath.Dir(path), target)); err != nil {
					t.Errorf("%s links to %s, which does not exist", path, target)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no links found: the walk did not reach the documents")
	}
}

// The unit refuses to start without a release, a configuration and a
// key file, and the paths it checks are the ones it uses.
func TestUnitNeedsARelease(t *testing.T) {
	raw, err := os.ReadFile("systemd/tenon.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(raw)
	exec := regexp.MustCompile(`(?m)^ExecStart=(\S+) serve --config (\S+)$`).FindStringSubmatch(unit)
	if exec == nil {
		t.Fatal("no ExecStart=<binary> serve --config <file> line")
	}
	for _, want := range []string{
		"AssertFileIsExecutable=" + exec[1],
		"AssertPathExists=" + exec[2],
		"AssertPathExists=/etc/tenon/secret.key",
		"LoadCredential=secret.key:/etc/tenon/secret.key",
	} {
		if !strings.Contains(unit, want+"\n") {
			t.Errorf("the unit lacks %q", want)
		}
	}
}
