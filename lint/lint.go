// Package lint checks an app's atlassian-connect.json and Forge
// manifest.yml before anything serves them: against tenon's own JSON
// schemas of the module types apps use (embedded here), and against the
// routes the app registers. Every problem carries its file, line and
// column and says what to do, so all of them can be fixed in one pass:
//
//	atlassian-connect.json:14:7: unknown module type "generalPage"; did you mean "generalPages"?
//
// The functions are pure: they read bytes and a list of routes and
// return problems. `tenon lint` prints them; `tenon serve` and
// `tenon dev` refuse to start while there is an error among them.
package lint

import (
	"embed"
	"fmt"
	"sort"
	"strings"
)

// Severity says whether a problem stops the app from starting.
type Severity int

const (
	// Error: the product or tenon would refuse or ignore what the file
	// says. serve and dev do not start; lint exits 1.
	Error Severity = iota
	// Warning: probably a mistake, but the app works as far as tenon
	// can tell. It is printed and nothing else happens.
	Warning
)

func (s Severity) String() string {
	if s == Warning {
		return "warning"
	}
	return "error"
}

// Problem is one finding, positioned in its file. Line and Col count
// from 1; Col counts characters.
type Problem struct {
	File      string
	Line, Col int
	Severity  Severity
	Msg       string
}

// String formats the problem the way compilers do, so editors and CI
// logs link to the place: "file:line:col: message", with "warning: "
// before the message of a warning.
func (p Problem) String() string {
	sev := ""
	if p.Severity == Warning {
		sev = "warning: "
	}
	return fmt.Sprintf("%s:%d:%d: %s%s", p.File, p.Line, p.Col, sev, p.Msg)
}

// HasErrors reports whether any problem is an Error.
func HasErrors(probs []Problem) bool {
	for _, p := range probs {
		if p.Severity == Error {
			return true
		}
	}
	return false
}

// Sort orders problems by file, line and column, the order they are
// fixed in.
func Sort(probs []Problem) {
	sort.SliceStable(probs, func(i, j int) bool {
		a, b := probs[i], probs[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

//go:embed *.schema.json
var schemaFiles embed.FS

// Default file names, used in problems when the caller names none.
const (
	DescriptorFile = "atlassian-connect.json"
	ManifestFile   = "manifest.yml"
)

// Check validates a Connect descriptor. name is the file name problems
// carry (DescriptorFile when empty).
func Check(descriptor []byte, name string) []Problem {
	_, probs := checkDescriptor(descriptor, name)
	return probs
}

func checkDescriptor(raw []byte, name string) (*doc, []Problem) {
	if name == "" {
		name = DescriptorFile
	}
	d, probs := parseJSON(raw, name)
	if d == nil {
		return nil, probs
	}
	probs = append(probs, validate(d, "connect-descriptor.schema.json")...)
	Sort(probs)
	return d, probs
}

// suggest returns the candidate nearest to got, when it is near enough
// to be the likely meaning of a typo.
func suggest(got string, candidates []string) string {
	best, bestDist := "", 1<<30
	for _, c := range candidates {
		d := distance(strings.ToLower(got), strings.ToLower(c))
		if d < bestDist || (d == bestDist && c < best) {
			best, bestDist = c, d
		}
	}
	limit := max(1, len(got)/3)
	if len(got) >= 5 {
		limit = max(limit, 2)
	}
	if bestDist <= limit {
		return best
	}
	// A key cut short ("exclude" for "excludeBody") is a likely typo too.
	if len(got) >= 4 {
		for _, c := range candidates {
			if strings.HasPrefix(strings.ToLower(c), strings.ToLower(got)) {
				return c
			}
		}
	}
	return ""
}

// distance is the edit distance of a and b by bytes, counting a swap of
// two neighbours as one edit (optimal string alignment).
func distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// didYouMean is "; did you mean %q?" for a near candidate, else "".
func didYouMean(got string, candidates []string) string {
	if s := suggest(got, candidates); s != "" {
		return fmt.Sprintf("; did you mean %q?", s)
	}
	return ""
}
