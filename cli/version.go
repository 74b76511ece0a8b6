package cli

import (
	"context"
	"fmt"
	"io"
	"path"
	"runtime/debug"
	"strings"
)

// modulePath is tenon's module. A vendor's binary has it as a dependency,
// tenon's own binary as its main module.
const modulePath = "github.com/tenon-dev/tenon"

// Version is what `version` prints, read from the build information the Go
// toolchain writes into every binary.
type Version struct {
	Program  string // the binary's main module, e.g. example.com/myapp
	Main     string // the main module's version: v0.1.0, a pseudo-version, or (devel)
	Tenon    string // tenon's module version in this binary
	Revision string // VCS revision the binary was built from, if known
	Time     string // commit time of that revision, RFC 3339
	Modified bool   // the work tree had uncommitted changes
	Go       string // Go toolchain version
}

// ReadVersion extracts a Version from build information; a nil bi (no
// build information, e.g. a binary stripped of it) gives "(unknown)".
func ReadVersion(bi *debug.BuildInfo) Version {
	v := Version{Main: "(unknown)", Tenon: "(unknown)"}
	if bi == nil {
		return v
	}
	v.Program, v.Go = bi.Main.Path, bi.GoVersion
	if bi.Main.Version != "" {
		v.Main = bi.Main.Version
	}
	if bi.Main.Path == modulePath {
		v.Tenon = v.Main
	}
	for _, d := range bi.Deps {
		if d.Path == modulePath {
			v.Tenon = d.Version
			if d.Replace != nil {
				v.Tenon += " => " + d.Replace.Path
				if d.Replace.Version != "" {
					v.Tenon += " " + d.Replace.Version
				}
			}
		}
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// Write prints v the way `version` shows it: one headline and one line per
// detail, so scripts can grep a field.
func (v Version) Write(w io.Writer, name string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", name, v.Main)
	if v.Program != "" && v.Program != modulePath {
		fmt.Fprintf(&b, "  module:   %s\n", v.Program)
		fmt.Fprintf(&b, "  tenon:    %s\n", v.Tenon)
	}
	if v.Revision != "" {
		rev := v.Revision
		if v.Modified {
			rev += " (modified)"
		}
		fmt.Fprintf(&b, "  revision: %s\n", rev)
	}
	if v.Time != "" {
		fmt.Fprintf(&b, "  built at: %s\n", v.Time)
	}
	if v.Go != "" {
		fmt.Fprintf(&b, "  go:       %s\n", v.Go)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func runVersion(ctx context.Context, env Env, app App, args []string) error {
	bi, _ := debug.ReadBuildInfo()
	v := ReadVersion(bi)
	return v.Write(env.Stdout, v.name())
}

// name is the program's name: tenon, or the last element of a vendor's
// module path.
func (v Version) name() string {
	if v.Program == "" || v.Program == modulePath {
		return "tenon"
	}
	return path.Base(v.Program)
}
