package cli

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"text/template"
)

// skeleton is the app `tenon new` writes. Its templates use [[ ]] so the
// Go templates inside the generated code keep their {{ }}.
//
//go:embed skeleton/*.tmpl
var skeleton embed.FS

// skeletonFiles maps template to generated file; forgeOnly ones are
// written with --forge only.
var skeletonFiles = []struct {
	tmpl, file string
	forgeOnly  bool
}{
	{"go.mod.tmpl", "go.mod", false},
	{"main.go.tmpl", "main.go", false},
	{"main_test.go.tmpl", "main_test.go", false},
	{"atlassian-connect.json.tmpl", "atlassian-connect.json", false},
	{"manifest.yml.tmpl", "manifest.yml", true},
	{"README.md.tmpl", "README.md", false},
	{"gitignore.tmpl", ".gitignore", false},
}

// Skeleton describes the app `tenon new` writes.
type Skeleton struct {
	Name         string // the directory's name; the binary's name
	Title        string // the app's name in the descriptor
	Module       string // Go module path
	Key          string // app key
	Forge        bool   // with a Forge manifest and a Forge Remote route
	TenonVersion string // the tenon version go.mod requires
	TenonDir     string // a local tenon checkout for a replace directive, or ""
}

// fallbackTenonVersion is required when this binary does not know its own
// tenon version (built from a work tree, not a tagged module).
const fallbackTenonVersion = "v0.1.0"

var (
	appKeyPattern = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,64}$`)
	nameChars     = regexp.MustCompile(`[^a-z0-9._-]+`)
)

// WriteSkeleton writes the skeleton sk into dir, which must not exist or
// be empty. It writes nothing when any template fails.
func WriteSkeleton(dir string, sk Skeleton) ([]string, error) {
	if !appKeyPattern.MatchString(sk.Key) {
		return nil, fmt.Errorf("app key %q: use 1 to 64 letters, digits, '.', '_' or '-'", sk.Key)
	}
	if sk.Module == "" || strings.ContainsAny(sk.Module, " \t\n\\") {
		return nil, fmt.Errorf("module path %q is not a Go module path; set --module, e.g. example.com/%s", sk.Module, sk.Name)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("%s exists and is not empty: choose a new directory", dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	out := map[string][]byte{}
	var names []string
	for _, f := range skeletonFiles {
		if f.forgeOnly && !sk.Forge {
			continue
		}
		raw, err := skeleton.ReadFile("skeleton/" + f.tmpl)
		if err != nil {
			return nil, fmt.Errorf("skeleton %s: %w", f.tmpl, err)
		}
		t, err := template.New(f.tmpl).Delims("[[", "]]").Option("missingkey=error").Parse(string(raw))
		if err != nil {
			return nil, fmt.Errorf("skeleton %s: %w", f.tmpl, err)
		}
		var b bytes.Buffer
		if err := t.Execute(&b, sk); err != nil {
			return nil, fmt.Errorf("skeleton %s: %w", f.tmpl, err)
		}
		out[f.file] = b.Bytes()
		names = append(names, f.file)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	for _, name := range names {
		if err := os.WriteFile(filepath.Join(dir, name), out[name], 0o644); err != nil {
			return nil, fmt.Errorf("write %s: %w", name, err)
		}
	}
	return names, nil
}

func runNew(ctx context.Context, env Env, _ App, args []string) error {
	fs := flag.NewFlagSet("new", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: tenon new [flags] DIR\n\nWrites a runnable app skeleton into DIR: go.mod, main.go with a module page, a browser-API\nroute and a webhook, the descriptor, and a test that runs the app against the fake Atlassian.\n\nFlags:")
		fs.PrintDefaults()
	}
	forge := fs.Bool("forge", false, "add a Forge manifest and a Forge Remote route")
	module := fs.String("module", "", "Go module path (default example.com/DIR)")
	key := fs.String("key", "", "app key in the descriptor (default: DIR's name)")
	tenonDir := fs.String("tenon", "", "a local tenon checkout to build against (a replace directive in go.mod)")
	tidy := fs.Bool("tidy", true, "run `go mod tidy` in DIR afterwards (needs the go command)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("tenon new takes one directory, e.g. tenon new myapp")
	}
	dir := fs.Arg(0)
	name := filepath.Base(filepath.Clean(dir))
	slug := strings.Trim(nameChars.ReplaceAllString(strings.ToLower(name), "-"), "-.")
	if slug == "" {
		return fmt.Errorf("%q gives no usable app name: choose a directory named with letters or digits", dir)
	}
	sk := Skeleton{Name: slug, Title: name, Module: *module, Key: *key, Forge: *forge, TenonVersion: fallbackTenonVersion}
	if sk.Module == "" {
		sk.Module = "example.com/" + slug
	}
	if sk.Key == "" {
		sk.Key = slug
	}
	bi, _ := debug.ReadBuildInfo()
	if v := ReadVersion(bi).Tenon; strings.HasPrefix(v, "v") && !strings.Contains(v, " ") {
		sk.TenonVersion = v
	}
	if *tenonDir != "" {
		abs, err := filepath.Abs(*tenonDir)
		if err != nil {
			return fmt.Errorf("--tenon %s: %w", *tenonDir, err)
		}
		if _, err := os.Stat(filepath.Join(abs, "go.mod")); err != nil {
			return fmt.Errorf("--tenon %s is not a tenon checkout (no go.mod there)", *tenonDir)
		}
		sk.TenonDir = abs
	}
	files, err := WriteSkeleton(dir, sk)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Wrote %s: %s\n", dir, strings.Join(files, ", "))
	if *tidy {
		cmd := exec.CommandContext(ctx, "go", "mod", "tidy")
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = env.Stderr, env.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go mod tidy in %s failed (%v): fix what it printed, or run it yourself; the files are written", dir, err)
		}
	}
	fmt.Fprintf(env.Stdout, "\nNext:\n  cd %s\n  go run . dev     # the app with a fake Jira; prints a URL to open\n  go test ./...    # its tests, against the fake\n", dir)
	return nil
}
