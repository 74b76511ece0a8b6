package cli

import (
	"fmt"
	"sort"
	"strings"
)

// An environment variable whose name starts with TENON_ is either a
// setting (serveSettings), another name tenon itself reads (otherEnvNames),
// or reserved for tenon's own test suite (reservedEnvPrefixes,
// reservedEnvNames); anything else is a typo and stops the command at
// start, as an unknown name in the configuration file does. A mistyped
// TENON_CLOCK_SKEW or TENON_DB must not silently fall back to a default.

// otherEnvNames are read by tenon outside the settings table.
var otherEnvNames = []string{
	"TENON_RELEASES_DIR",      // tenon release: the releases directory
	"TENON_UPGRADE_LISTENERS", // set by a serving process for its successor (upgrade package)
	"TENON_UPGRADE_READY_FD",  // likewise
}

// Names reserved for the test suite: CI exports them into the
// environment of the binary under test, which must start regardless.
var (
	reservedEnvPrefixes = []string{"TENON_TEST_", "TENON_REQUIRE_"}
	reservedEnvNames    = []string{"TENON_SCREENSHOT_DIR", "TENON_MEASURE"}
)

// knownEnvName reports whether name is a setting, another name tenon
// reads, or reserved for its tests.
func knownEnvName(name string) bool {
	for _, s := range serveSettings {
		if s.Env == name {
			return true
		}
	}
	for _, n := range append(append([]string{}, otherEnvNames...), reservedEnvNames...) {
		if n == name {
			return true
		}
	}
	for _, p := range reservedEnvPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// checkEnvNames reports every TENON_ variable of environ (KEY=value
// entries, as os.Environ returns them) that is not a known name, with
// the closest setting it may have meant. A nil environ checks nothing.
func checkEnvNames(environ []string) error {
	var problems []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "TENON_") || knownEnvName(name) {
			continue
		}
		problems = append(problems, fmt.Sprintf("unknown environment variable %s (did you mean %s?); unset it, or see docs/CONFIGURATION.md for the names tenon reads", name, closestEnvName(name)))
	}
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	return &ConfigError{Problems: problems}
}

// closestEnvName is the setting or other tenon name nearest to name by
// edit distance; ties go to the first in documentation order.
func closestEnvName(name string) string {
	var names []string
	for _, s := range serveSettings {
		names = append(names, s.Env)
	}
	names = append(names, otherEnvNames...)
	best, bestD := "", -1
	for _, n := range names {
		if d := editDistance(name, n); bestD < 0 || d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b, by bytes (names
// are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
