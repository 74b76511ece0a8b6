package fakeatlassian_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tenon-dev/tenon/fakeatlassian"
)

type qshVector struct {
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
	Interop       []qshVector `json:"interop"`
	Unit          []qshVector `json:"unit"`
	Haskell       []qshVector `json:"haskell"`
	SignedExample struct {
		SignedURL     string         `json:"signedUrl"`
		Secret        string         `json:"secret"`
		DecodedClaims map[string]any `json:"decodedClaims"`
	} `json:"interop_signed_url_example"`
	ContextQSH struct {
		Literal string `json:"literal"`
	} `json:"context_qsh"`
}

func loadVectors(t *testing.T) vectorFile {
	t.Helper()
	b, err := os.ReadFile("../testdata/qsh-vectors.json")
	if err != nil {
		t.Fatalf("read vectors: %v", err)
	}
	var v vectorFile
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode vectors: %v", err)
	}
	if len(v.Interop) == 0 || len(v.Unit) == 0 || len(v.Haskell) == 0 {
		t.Fatalf("vector file has empty sections: %d interop, %d unit, %d haskell", len(v.Interop), len(v.Unit), len(v.Haskell))
	}
	return v
}

// unitRequest turns a unit vector's pseudo values into a real request.
// "(body) <params>" means the parameters travel in a form body and are
// hashed because the query is empty: the canonical query is then built
// from the body. "(body ignored)" means the body is not hashed, which is
// an empty query. "jwt=<any>" stands for any token, which the hash drops.
func unitRequest(v qshVector) (path, rawQuery string) {
	q := v.RawQuery
	switch {
	case strings.HasPrefix(q, "(body ignored)"):
		q = ""
	case strings.HasPrefix(q, "(body) "):
		q = strings.TrimPrefix(q, "(body) ")
	}
	q = strings.ReplaceAll(q, "jwt=<any>", "jwt=eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl")
	return v.Path, q
}

func TestQSHVectors(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	check := func(t *testing.T, vec qshVector, got string, qsh string) {
		t.Helper()
		if got != vec.Canonical {
			t.Errorf("canonical = %q, want %q", got, vec.Canonical)
		}
		sum := sha256.Sum256([]byte(vec.Canonical))
		if want := hex.EncodeToString(sum[:]); want != vec.QSH {
			t.Errorf("vector file inconsistent: sha256(canonical) = %s, qsh = %s", want, vec.QSH)
		}
		if qsh != vec.QSH {
			t.Errorf("qsh = %s, want %s", qsh, vec.QSH)
		}
	}
	n := 0
	for _, section := range []struct {
		name string
		list []qshVector
	}{{"interop", v.Interop}, {"haskell", v.Haskell}} {
		for _, vec := range section.list {
			n++
			t.Run(section.name+"/"+vec.Name, func(t *testing.T) {
				path, query, _ := strings.Cut(afterHost(vec.URL), "?")
				base := afterHost(vec.AppBaseURL)
				check(t, vec, fakeatlassian.CanonicalRequest(vec.Method, path, base, query),
					fakeatlassian.QSHOfURL(vec.Method, vec.URL, vec.AppBaseURL))
			})
		}
	}
	for _, vec := range v.Unit {
		n++
		t.Run("unit/"+vec.Name, func(t *testing.T) {
			path, query := unitRequest(vec)
			base := vec.AppBaseURL
			if strings.Contains(base, "://") {
				base = afterHost(base)
			}
			check(t, vec, fakeatlassian.CanonicalRequest(vec.Method, path, base, query),
				fakeatlassian.QSH(vec.Method, path, base, query))
		})
	}
	if want := len(v.Interop) + len(v.Unit) + len(v.Haskell); n != want {
		t.Fatalf("ran %d vectors, want %d", n, want)
	}
}

// afterHost returns the path and query of an absolute URL, untouched.
func afterHost(u string) string {
	i := strings.Index(u, "://")
	if i < 0 {
		return u
	}
	rest := u[i+3:]
	j := strings.IndexAny(rest, "/?")
	if j < 0 {
		return ""
	}
	return rest[j:]
}

// The signed example must verify with the fake's qsh: the token's qsh is
// the hash of its own URL without the jwt parameter.
func TestSignedURLExample(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	ex := v.SignedExample
	_, query, _ := strings.Cut(ex.SignedURL, "?")
	var token string
	for _, p := range strings.Split(query, "&") {
		if tok, ok := strings.CutPrefix(p, "jwt="); ok {
			token = tok
		}
	}
	claims := jwt.MapClaims{}
	p := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(func() time.Time { return time.Unix(1466731100, 0) }))
	if _, err := p.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return []byte(ex.Secret), nil }); err != nil {
		t.Fatalf("verify example token: %v", err)
	}
	if got := fakeatlassian.QSHOfURL("GET", ex.SignedURL, "https://example.com"); got != claims["qsh"] {
		t.Fatalf("qsh of signed URL = %s, token says %v", got, claims["qsh"])
	}
	if v.ContextQSH.Literal != "context-qsh" {
		t.Fatalf("context qsh literal = %q", v.ContextQSH.Literal)
	}
}
