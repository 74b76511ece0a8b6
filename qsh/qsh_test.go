package qsh_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/tenon-dev/tenon/qsh"
)

type vector struct {
	Name       string `json:"name"`
	Method     string `json:"method"`
	URL        string `json:"url"`
	Path       string `json:"path"`
	RawQuery   string `json:"rawQuery"`
	AppBaseURL string `json:"appBaseUrl"`
	Canonical  string `json:"canonical"`
	QSH        string `json:"qsh"`
}

type vectorFile struct {
	Interop    []vector `json:"interop"`
	Unit       []vector `json:"unit"`
	Haskell    []vector `json:"haskell"`
	ContextQSH struct {
		Literal string `json:"literal"`
	} `json:"context_qsh"`
}

func loadVectors(t testing.TB) vectorFile {
	t.Helper()
	raw, err := os.ReadFile("../testdata/qsh-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f vectorFile
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Interop) == 0 || len(f.Unit) == 0 || len(f.Haskell) == 0 {
		t.Fatal("vector file has empty sections")
	}
	return f
}

// splitURL takes the raw path and query from a vector URL without
// normalising them (url.Parse would re-escape the path's quote).
func splitURL(t *testing.T, raw string) (path, query string) {
	t.Helper()
	rest := raw[strings.Index(raw, "://")+3:]
	i := strings.IndexByte(rest, '/')
	if i < 0 {
		return "", ""
	}
	rest = rest[i:]
	path, query, _ = strings.Cut(rest, "?")
	return path, query
}

func basePath(t *testing.T, appBaseURL string) string {
	t.Helper()
	if strings.HasPrefix(appBaseURL, "/") || appBaseURL == "" {
		return appBaseURL
	}
	u, err := url.Parse(appBaseURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Path
}

func check(t *testing.T, v vector, path, query string) {
	t.Helper()
	base := basePath(t, v.AppBaseURL)
	if got := qsh.Canonical(v.Method, path, query, base); got != v.Canonical {
		t.Errorf("canonical\n got %q\nwant %q", got, v.Canonical)
	}
	if got := qsh.Hash(v.Method, path, query, base); got != v.QSH {
		t.Errorf("qsh got %s want %s", got, v.QSH)
	}
	sum := sha256.Sum256([]byte(v.Canonical))
	if hex.EncodeToString(sum[:]) != v.QSH {
		t.Errorf("vector file inconsistent: sha256(canonical) != qsh")
	}
}

func TestPublishedVectors(t *testing.T) {
	f := loadVectors(t)
	for _, v := range append(append([]vector{}, f.Interop...), f.Haskell...) {
		t.Run(v.Name, func(t *testing.T) {
			path, query := splitURL(t, v.URL)
			check(t, v, path, query)
		})
	}
	for _, v := range f.Unit {
		t.Run(v.Name, func(t *testing.T) {
			query := strings.ReplaceAll(v.RawQuery, "<any>", "eyJhbGciOiJIUzI1NiJ9.e30.sig")
			switch {
			case strings.HasPrefix(query, "(body) "):
				// Form-body parameters hashed when the query is empty.
				query = strings.TrimPrefix(query, "(body) ")
			case strings.HasPrefix(query, "(body ignored)"):
				query = ""
			}
			check(t, v, v.Path, query)
		})
	}
	if f.ContextQSH.Literal != qsh.ContextQSH {
		t.Errorf("ContextQSH = %q, vectors say %q", qsh.ContextQSH, f.ContextQSH.Literal)
	}
}

func TestFromRequestUsesRawTarget(t *testing.T) {
	f := loadVectors(t)
	for _, v := range f.Interop {
		path, query := splitURL(t, v.URL)
		target := path
		if query != "" {
			target += "?" + query
		}
		r := httptest.NewRequest(v.Method, target, nil)
		if got := qsh.FromRequest(r, basePath(t, v.AppBaseURL)); got != v.QSH {
			t.Errorf("%s: FromRequest = %s want %s", v.Name, got, v.QSH)
		}
	}
}

func TestEdgeCases(t *testing.T) {
	tests := []struct {
		name, method, path, query, base, want string
	}{
		{"lower-case method", "get", "/a", "", "", "GET&/a&"},
		{"base path stripped on segment only", "GET", "/wikix/page", "", "/wiki", "GET&/wikix/page&"},
		{"base path equal to path", "GET", "/wiki", "", "/wiki", "GET&/&"},
		{"base path with trailing slash", "GET", "/wiki/rest", "", "/wiki/", "GET&/rest&"},
		{"no leading slash", "GET", "rest", "", "", "GET&/rest&"},
		{"semicolon pairs kept", "GET", "/a", "x=1;y=2", "", "GET&/a&x=1%3By%3D2"},
		{"empty pairs ignored", "GET", "/a", "&&b=2&", "", "GET&/a&b=2"},
		{"all jwt dropped", "GET", "/a", "jwt=1&jwt=2&a=b", "", "GET&/a&a=b"},
		{"encoded jwt key dropped", "GET", "/a", "%6Awt=1&a=b", "", "GET&/a&a=b"},
		{"malformed escape kept", "GET", "/a", "a=%zz", "", "GET&/a&a=%25zz"},
		{"dot segments untouched", "GET", "/a/../b", "", "", "GET&/a/../b&"},
		{"encoded keys collide after decoding", "GET", "/a", "a%20b=1&a+b=2", "", "GET&/a&a%20b=1,2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := qsh.Canonical(tc.method, tc.path, tc.query, tc.base); got != tc.want {
				t.Errorf("got %q want %q", got, tc.want)
			}
		})
	}
}

func FuzzCanonical(f *testing.F) {
	f.Add("GET", "/test", "param=value", "")
	f.Add("POST", "/jira/rest/api/2/project/jira&a=b", "x=y&x=z&jwt=1", "/jira")
	f.Add("get", "", "a&b=&=c&%zz=%", "/")
	f.Add("PUT", "/path!$&'()*+,;=", "chars=%E5%AE%AE&chars=%E5%B4%8E", "/path")
	f.Fuzz(func(t *testing.T, method, path, query, base string) {
		c1 := qsh.Canonical(method, path, query, base)
		c2 := qsh.Canonical(method, path, query, base)
		if c1 != c2 {
			t.Fatalf("not deterministic: %q vs %q", c1, c2)
		}
		sum := sha256.Sum256([]byte(c1))
		if h := qsh.Hash(method, path, query, base); h != hex.EncodeToString(sum[:]) {
			t.Fatalf("Hash disagrees with Canonical")
		}
		if !qsh.Matches(qsh.Hash(method, path, query, base), method, path, query, base) {
			t.Fatalf("Matches refuses its own Hash")
		}
		if strings.Count(c1, "&") < 2 {
			t.Fatalf("canonical %q lacks its separators", c1)
		}
	})
}

func TestMatches(t *testing.T) {
	f := loadVectors(t)
	for _, v := range f.Interop {
		path, query := splitURL(t, v.URL)
		base := basePath(t, v.AppBaseURL)
		if !qsh.Matches(v.QSH, v.Method, path, query, base) {
			t.Errorf("%s: Matches refused the published qsh", v.Name)
		}
		r := httptest.NewRequest(v.Method, path+"?"+query, nil)
		if !qsh.MatchesRequest(v.QSH, r, base) {
			t.Errorf("%s: MatchesRequest refused the published qsh", v.Name)
		}
	}
	good := qsh.Hash("GET", "/a", "b=c", "")
	refused := map[string]string{
		"empty":          "",
		"context-qsh":    qsh.ContextQSH,
		"upper case":     strings.ToUpper(good),
		"truncated":      good[:63],
		"extended":       good + "0",
		"not hex":        "zz" + good[2:],
		"other request":  qsh.Hash("GET", "/a", "b=d", ""),
		"other method":   qsh.Hash("POST", "/a", "b=c", ""),
		"canonical text": qsh.Canonical("GET", "/a", "b=c", ""),
	}
	for name, claim := range refused {
		if qsh.Matches(claim, "GET", "/a", "b=c", "") {
			t.Errorf("%s: Matches accepted %q", name, claim)
		}
	}
}

const benchQuery = "lic=active&tz=Europe%2FBerlin&cp=&user_key=&loc=en-US&user_id=&xdm_e=https%3A%2F%2Fexample.atlassian.net&xdm_c=channel-issue-panel&cv=1001.0.0&issueKey=PROJ-1&projectKey=PROJ&jwt=eyJhbGciOiJIUzI1NiJ9.e30.sig"

func BenchmarkMatches(b *testing.B) {
	claim := qsh.Hash("GET", "/panel/issue", benchQuery, "")
	b.ReportAllocs()
	for b.Loop() {
		if !qsh.Matches(claim, "GET", "/panel/issue", benchQuery, "") {
			b.Fatal("no match")
		}
	}
}

func BenchmarkHash(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		qsh.Hash("GET", "/panel/issue", benchQuery, "")
	}
}
