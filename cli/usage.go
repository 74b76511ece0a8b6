package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// isHelp reports whether arg asks for help instead of naming a subcommand.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// settingValue is the flag.Value of a setting's flag. It records only
// the text given: resolve() merges flags with the environment, the file
// and defaults, so the flag's own default stays empty.
type settingValue struct {
	s   setting
	val string
}

func (v *settingValue) String() string     { return v.val }
func (v *settingValue) Set(s string) error { v.val = s; return nil }

// placeholder names what a setting's value is, for the help text.
func placeholder(s setting) string {
	name := s.Flag
	switch {
	case name == "db":
		return "PATH|URL"
	case name == "config" || strings.HasSuffix(name, "-file") || strings.HasSuffix(name, "-roots"):
		return "FILE"
	case strings.HasSuffix(name, "-url") || name == "acme-ca":
		return "URL"
	case name == "addr" || strings.HasSuffix(name, "-addr"):
		return "HOST:PORT"
	case strings.HasSuffix(name, "-dir"):
		return "DIR"
	case strings.HasSuffix(name, "-email"):
		return "EMAIL"
	case strings.HasSuffix(name, "-schedule"):
		return "SCHEDULE"
	case name == "domains" || name == "allowed-hosts" || name == "trusted-proxies":
		return "LIST"
	case s.Default == "true" || s.Default == "false":
		return "true|false"
	}
	if _, err := time.ParseDuration(s.Default); err == nil && s.Default != "0" {
		return "DURATION"
	}
	if s.Default != "" && strings.Trim(s.Default, "0123456789") == "" {
		return "N"
	}
	return "VALUE"
}

// printFlags writes fs's flags in the style of the settings table: the
// flag with a placeholder, then what it does, its environment variable and
// default. Backquotes in a usage text are typographic here, never a
// placeholder (as flag.PrintDefaults would take them).
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		var b strings.Builder
		if sv, ok := f.Value.(*settingValue); ok {
			fmt.Fprintf(&b, "  --%s %s\n", f.Name, placeholder(sv.s))
			fmt.Fprintf(&b, "      %s\n", strings.ReplaceAll(sv.s.Usage, "`", ""))
			extra := "env " + sv.s.Env
			if sv.s.Default != "" {
				extra += ", default " + sv.s.Default
			}
			fmt.Fprintf(&b, "      (%s)\n", extra)
		} else {
			name, usage := flag.UnquoteUsage(f)
			if name != "" {
				name = " " + strings.ToUpper(name)
			}
			fmt.Fprintf(&b, "  --%s%s\n      %s", f.Name, name, usage)
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
				fmt.Fprintf(&b, " (default %s)", f.DefValue)
			}
			b.WriteString("\n")
		}
		io.WriteString(w, b.String())
	})
}
