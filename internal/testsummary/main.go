// Command testsummary reads `go test -json` on its standard input, prints
// what a person needs from it — one line per package, the output of every
// failed test, and a count of skipped tests grouped by the reason they
// gave — and exits non-zero when anything failed.
//
// A skipped test passes quietly in plain `go test` output; here it is
// counted, so a run on a machine without PostgreSQL, Chromium or pebble
// says how much it did not check:
//
//	SKIPPED: 12 tests: set TENON_TEST_POSTGRES_DSN to run the PostgreSQL tests
//
// It is used by `make test`.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

func main() {
	os.Exit(run(os.Stdin, os.Stdout))
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	ImportPath string // of build-output and build-fail events
	Test       string
	Elapsed    float64
	Output     string
}

type key struct{ pkg, test string }

// summary accumulates a run.
type summary struct {
	out       io.Writer
	output    map[key][]string // output of tests and packages still running
	skips     map[string][]key // reason -> skipped tests
	failed    []key
	pkgFailed int
	passed    int
	broken    []string // lines that were not JSON: build errors
}

func run(in io.Reader, out io.Writer) int {
	s := &summary{out: out, output: map[key][]string{}, skips: map[string][]key{}}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil {
			// The go command prints build failures as plain text.
			s.broken = append(s.broken, string(line))
			fmt.Fprintln(out, string(line))
			continue
		}
		s.add(ev)
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(out, "testsummary: reading go test output: %v\n", err)
		return 2
	}
	return s.report()
}

func (s *summary) add(ev event) {
	k := key{ev.Package, ev.Test}
	switch ev.Action {
	case "build-output":
		s.broken = append(s.broken, ev.Output)
		fmt.Fprint(s.out, ev.Output)
	case "output":
		s.output[k] = append(s.output[k], ev.Output)
	case "pass":
		if ev.Test == "" {
			fmt.Fprintf(s.out, "ok  \t%s\t%.2fs\n", ev.Package, ev.Elapsed)
		} else {
			s.passed++
		}
		delete(s.output, k)
	case "skip":
		if ev.Test == "" {
			fmt.Fprintf(s.out, "?   \t%s\t[no test files]\n", ev.Package)
		} else {
			r := reason(s.output[k])
			s.skips[r] = append(s.skips[r], k)
		}
		delete(s.output, k)
	case "fail":
		if ev.Test == "" {
			s.pkgFailed++
			// A package that fails outside any test (a panic, a build
			// error, TestMain) has its output under the package key.
			for _, l := range s.output[k] {
				if !strings.HasPrefix(l, "=== ") {
					fmt.Fprint(s.out, l)
				}
			}
			fmt.Fprintf(s.out, "FAIL\t%s\t%.2fs\n", ev.Package, ev.Elapsed)
		} else {
			s.failed = append(s.failed, k)
			fmt.Fprintf(s.out, "--- FAIL: %s (%s)\n", ev.Test, ev.Package)
			for _, l := range s.output[k] {
				fmt.Fprint(s.out, l)
			}
		}
		delete(s.output, k)
	}
}

// reason is the message a skipped test gave: its output without the
// test runner's own lines, the file:line prefix removed, on one line.
func reason(lines []string) string {
	var parts []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- ") {
			continue
		}
		if i := strings.Index(t, ": "); i > 0 && strings.Contains(t[:i], ".go:") {
			t = t[i+2:]
		}
		parts = append(parts, t)
	}
	if len(parts) == 0 {
		return "no reason given"
	}
	return strings.Join(parts, " ")
}

func (s *summary) report() int {
	reasons := make([]string, 0, len(s.skips))
	skipped := 0
	for r, ks := range s.skips {
		reasons = append(reasons, r)
		skipped += len(ks)
	}
	sort.Slice(reasons, func(i, j int) bool {
		a, b := len(s.skips[reasons[i]]), len(s.skips[reasons[j]])
		if a != b {
			return a > b
		}
		return reasons[i] < reasons[j]
	})
	fmt.Fprintln(s.out)
	for _, r := range reasons {
		n := len(s.skips[r])
		fmt.Fprintf(s.out, "SKIPPED: %d %s: %s\n", n, plural(n, "test"), r)
	}
	fmt.Fprintf(s.out, "%d passed, %d skipped, %d failed", s.passed, skipped, len(s.failed))
	if s.pkgFailed > 0 {
		fmt.Fprintf(s.out, ", %d %s failed", s.pkgFailed, plural(s.pkgFailed, "package"))
	}
	fmt.Fprintln(s.out)
	if s.pkgFailed > 0 || len(s.failed) > 0 || len(s.broken) > 0 {
		return 1
	}
	return 0
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
