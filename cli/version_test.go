package cli_test

import (
	"runtime/debug"
	"strings"
	"testing"

	"github.com/tenon-dev/tenon/cli"
)

func TestReadVersion(t *testing.T) {
	tenonMain := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/tenon-dev/tenon", Version: "v0.1.0"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123abcd"},
			{Key: "vcs.time", Value: "2026-12-03T09:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	vendor := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "example.com/acme/checklist", Version: "(devel)"},
		Deps:      []*debug.Module{{Path: "github.com/tenon-dev/tenon", Version: "v0.1.2"}},
	}
	replaced := &debug.BuildInfo{
		Main: debug.Module{Path: "example.com/acme/checklist"},
		Deps: []*debug.Module{{Path: "github.com/tenon-dev/tenon", Version: "v0.1.2",
			Replace: &debug.Module{Path: "../tenon"}}},
	}
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		want cli.Version
		out  []string
	}{
		{"tenon itself", tenonMain,
			cli.Version{Program: "github.com/tenon-dev/tenon", Main: "v0.1.0", Tenon: "v0.1.0", Revision: "0123abcd",
				Time: "2026-12-03T09:00:00Z", Modified: true, Go: "go1.26.8"},
			[]string{"tenon v0.1.0\n", "revision: 0123abcd (modified)", "built at: 2026-12-03T09:00:00Z", "go:       go1.26.8"}},
		{"a vendor's binary", vendor,
			cli.Version{Program: "example.com/acme/checklist", Main: "(devel)", Tenon: "v0.1.2", Go: "go1.26.8"},
			[]string{"x (devel)\n", "module:   example.com/acme/checklist", "tenon:    v0.1.2"}},
		{"a replaced tenon", replaced,
			cli.Version{Program: "example.com/acme/checklist", Main: "(unknown)", Tenon: "v0.1.2 => ../tenon"},
			[]string{"tenon:    v0.1.2 => ../tenon"}},
		{"no build information", nil, cli.Version{Main: "(unknown)", Tenon: "(unknown)"}, []string{"x (unknown)\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := cli.ReadVersion(tc.bi)
			if got != tc.want {
				t.Fatalf("ReadVersion = %+v, want %+v", got, tc.want)
			}
			var b strings.Builder
			name := "x"
			if tc.bi == tenonMain {
				name = "tenon"
			}
			if err := got.Write(&b, name); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.out {
				if !strings.Contains(b.String(), w) {
					t.Errorf("output %q lacks %q", b.String(), w)
				}
			}
		})
	}
}

func TestVersionCommand(t *testing.T) {
	code, out, errOut := runCLI(t, nil, "version")
	if code != 0 {
		t.Fatalf("version exit %d: %s", code, errOut)
	}
	if !strings.HasPrefix(out, "tenon ") || !strings.Contains(out, "go:") {
		t.Fatalf("version printed %q", out)
	}
}

// A vendor's binary names itself in help and errors, and every
// settings flag shows a placeholder, not a word of its description.
func TestHelpUsesTheProgramName(t *testing.T) {
	var out, errOut strings.Builder
	env := cli.Env{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }, Name: "acme-checklist"}
	if code := cli.Run(t.Context(), env, nil, []string{"-h"}); code != 0 {
		t.Fatalf("help exit %d", code)
	}
	if !strings.Contains(errOut.String(), "Usage: acme-checklist <command>") || strings.Contains(errOut.String(), "tenon <command>") {
		t.Fatalf("help names the wrong program:\n%s", errOut.String())
	}
	for _, args := range [][]string{{"maintenance", "-h"}, {"notice", "-h"}, {"jobs", "-h"}} {
		errOut.Reset()
		cli.Run(t.Context(), env, nil, args)
		if !strings.Contains(errOut.String(), "acme-checklist "+args[0]) || !strings.Contains(errOut.String(), "--db PATH|URL") {
			t.Errorf("%v help lacks the program name or the store flags:\n%s", args, errOut.String())
		}
	}
	errOut.Reset()
	cli.Run(t.Context(), env, nil, []string{"serve", "-h"})
	help := errOut.String()
	for _, want := range []string{"--secret-key-file FILE", "--base-url URL", "--addr HOST:PORT", "--clock-skew DURATION", "(env TENON_DB, default tenon.db)"} {
		if !strings.Contains(help, want) {
			t.Errorf("serve -h lacks %q", want)
		}
	}
	if strings.Contains(help, "`") || strings.Contains(help, "--secret-key-file tenon keygen") {
		t.Errorf("serve -h shows a description word as a placeholder:\n%s", help)
	}
}
