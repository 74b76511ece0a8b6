package storeutil_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/storeutil"
)

func TestPrefixEnd(t *testing.T) {
	tests := []struct {
		prefix, want string
		ok           bool
	}{
		{"", "", false},
		{"a", "b", true},
		{"ab", "ac", true},
		{"a\u007f", "a\u0080", true},
		{"a\uD7FF", "a\uE000", true},
		{"a\U0010FFFF", "b", true},
		{"\U0010FFFF\U0010FFFF", "", false},
		{"x%_\\", "x%_]", true},
	}
	for _, tt := range tests {
		got, ok := storeutil.PrefixEnd(tt.prefix)
		if got != tt.want || ok != tt.ok {
			t.Errorf("PrefixEnd(%q) = %q, %v; want %q, %v", tt.prefix, got, ok, tt.want, tt.ok)
		}
		if ok && !utf8.ValidString(got) {
			t.Errorf("PrefixEnd(%q) = %q is not valid UTF-8", tt.prefix, got)
		}
	}
}

// TestPrefixEndBoundsPrefix checks the defining property on keys around
// the bound: a key is in [prefix, end) exactly when it starts with prefix.
func TestPrefixEndBoundsPrefix(t *testing.T) {
	prefixes := []string{"a", "ab", "é", "a\U0010FFFF", "\uD7FF", "z~"}
	suffixes := []string{"", "a", "\x7f", "é", "\uFFFF", "\U0010FFFF"}
	others := []string{"", "a", "b", "aa", "ac", "\U0010FFFF", "\uE000", "ab\U0010FFFF", "é\U0010FFFF", "ê", "{"}
	for _, p := range prefixes {
		end, ok := storeutil.PrefixEnd(p)
		var keys []string
		for _, s := range suffixes {
			keys = append(keys, p+s)
		}
		keys = append(keys, others...)
		for _, k := range keys {
			in := k >= p && (!ok || k < end)
			if in != strings.HasPrefix(k, p) {
				t.Errorf("prefix %q end %q: key %q in range = %v", p, end, k, in)
			}
		}
	}
}

func TestListRange(t *testing.T) {
	r, err := storeutil.ListRange("b/", "")
	if err != nil || r.Lower != "b/" || r.LowerStrict || r.Upper != "b0" || !r.HasUpper {
		t.Errorf("ListRange(b/, \"\") = %+v, %v", r, err)
	}
	r, _ = storeutil.ListRange("b/", "b/x")
	if r.Lower != "b/x" || !r.LowerStrict {
		t.Errorf("after inside the prefix: %+v", r)
	}
	r, _ = storeutil.ListRange("b/", "a")
	if r.Lower != "b/" || r.LowerStrict {
		t.Errorf("after before the prefix: %+v", r)
	}
	for _, bad := range []string{"\x00", "\xff", strings.Repeat("k", tenon.MaxKeyLength+1)} {
		if _, err := storeutil.ListRange(bad, ""); tenon.ErrorCode(err) != tenon.EINVALID {
			t.Errorf("prefix %q: %v", bad, err)
		}
		if _, err := storeutil.ListRange("", bad); tenon.ErrorCode(err) != tenon.EINVALID {
			t.Errorf("after %q: %v", bad, err)
		}
	}
}

func TestTransition(t *testing.T) {
	E, D, U := tenon.StateEnabled, tenon.StateDisabled, tenon.StateUninstalled
	tests := []struct {
		from, to tenon.State
		changed  bool
		code     string
	}{
		{E, D, true, ""},
		{D, E, true, ""},
		{E, E, false, ""},
		{E, U, true, ""},
		{D, U, true, ""},
		{U, U, false, ""},
		{U, E, false, tenon.ECONFLICT},
		{U, D, false, tenon.ECONFLICT},
		{E, "deleted", false, tenon.EINVALID},
	}
	for _, tt := range tests {
		changed, err := storeutil.Transition(tt.from, tt.to)
		if changed != tt.changed || tenon.ErrorCode(err) != tt.code {
			t.Errorf("Transition(%s, %s) = %v, %v; want %v, %q", tt.from, tt.to, changed, err, tt.changed, tt.code)
		}
	}
}

func TestListLimit(t *testing.T) {
	for in, want := range map[int]int{-1: tenon.MaxListLimit, 0: tenon.MaxListLimit, 1: 1, tenon.MaxListLimit: tenon.MaxListLimit, tenon.MaxListLimit + 1: tenon.MaxListLimit} {
		if got := storeutil.ListLimit(in); got != want {
			t.Errorf("ListLimit(%d) = %d, want %d", in, got, want)
		}
	}
}
