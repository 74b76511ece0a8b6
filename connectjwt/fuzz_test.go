package connectjwt_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/tenon-dev/tenon/connectjwt"
)

// FuzzParse checks that Parse never panics, that every failure is
// ErrMalformed, and that what it accepts agrees with encoding/json on the
// string claims.
func FuzzParse(f *testing.F) {
	f.Add(mustSignHS(f, validClaims(), secret))
	f.Add("eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJxc2giOiJiZTE2OTEwODU4YTQxZmQxOWVhNWMxYjRlOWRlY2NhOWE3ODRkMTAyNGNiMDBiMjE1OGRlZmUyZjI5ZGM4NmRkIiwiY29udGV4dCI6e30sImlzcyI6ImppcmE6MTIzNC01Njc4LTkwMDAiLCJleHAiOjE0NjY3MzEyNTUsImlhdCI6MTQ2NjczMTA3NX0.ssbmLUBemh6nQW3MH5o2fSdnOFTIKf2w0KASnnH8aXo")
	f.Add(hsToken(`{"alg":"RS256","kid":"a/b"}`, `{"aud":["x","y"],"exp":1.5e9,"nbf":null,"context":[{"a":"\"}"}]}`, secret))
	f.Add(hsToken(`{"alg":"HS256"}`, `{"iss":"\u00e9\ud800","exp":-1}`, secret))
	f.Add("a.b.c")
	f.Add("..")
	f.Fuzz(checkParse)
}

// FuzzParseClaims is FuzzParse for payloads: random tokens rarely get past
// base64, so this one wraps the fuzzed JSON in a well-formed token.
func FuzzParseClaims(f *testing.F) {
	for _, p := range []string{
		`{"iss":"jira:1","exp":1767225780,"iat":1767225590,"qsh":"abc","context":{"user":{"accountId":"x"}}}`,
		`{"aud":["a","b"],"exp":1.7e9,"sub":"\u00e9\ud800","nbf":null}`,
		`{"exp":"1","iss":1}`, `{"\u0065xp":1,"exp":2}`, `[]`, `{"context":[[[[{}]]]]}`,
	} {
		f.Add([]byte(`{"alg":"HS256","typ":"JWT"}`), []byte(p))
	}
	f.Fuzz(func(t *testing.T, header, payload []byte) {
		checkParse(t, hsToken(string(header), string(payload), secret))
	})
}

func checkParse(t *testing.T, token string) {
	tok, err := connectjwt.Parse(token)
	if err != nil {
		if !errors.Is(err, connectjwt.ErrMalformed) {
			t.Fatalf("error not ErrMalformed: %v", err)
		}
		return
	}
	// Verification of anything parsed must not panic either.
	v := &connectjwt.Verifier{Now: fixedClock(now), Leeway: connectjwt.MaxLeeway}
	_ = v.VerifyHS256(tok, secret)
	_ = tok.Claims.HasAudience("https://app.example.com")

	parts := strings.Split(token, ".")
	for i, part := range parts[:2] {
		raw, err := base64.RawURLEncoding.DecodeString(part)
		if err != nil {
			t.Fatalf("accepted part %d is not base64url: %v", i, err)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil || m == nil {
			t.Fatalf("accepted part %d is not a JSON object: %v", i, err)
		}
		want := map[string]string{"alg": tok.Alg, "kid": tok.Kid, "typ": tok.Typ}
		if i == 1 {
			want = map[string]string{"iss": tok.Claims.Issuer, "sub": tok.Claims.Subject, "qsh": tok.Claims.QSH}
		}
		for name, got := range want {
			if s, _ := m[name].(string); s != got {
				t.Fatalf("%s = %q, encoding/json says %q", name, got, s)
			}
		}
	}
	if tok.Claims.Context != nil && !json.Valid(tok.Claims.Context) {
		t.Fatalf("context is not valid JSON: %q", tok.Claims.Context)
	}
}

// FuzzValidJSON compares the token's JSON validator with encoding/json.
func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{
		`{}`, `[]`, `{"a":[1,-0.5e+3,true,false,null,"\u00e9\"\\\/\b\f\n\r\t"]}`, ` {"a" : {"b":[{}]}} `,
		`01`, `1.`, `-`, `.5`, `1e`, `"\x"`, `"\u12"`, `[1,]`, `{"a":1,}`, `{"a"}`, `{1:2}`, `nul`, `"a` + "\x01" + `"`,
		`{"a":1}}`, `[[[]]`, `{"a":1 "b":2}`, `tru`, `1 2`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, want := connectjwt.ValidJSON(b), json.Valid(b)
		if got == want {
			return
		}
		if !got && want && strings.Count(string(b), "{")+strings.Count(string(b), "[") > connectjwt.MaxDepth {
			return // deeper than this package allows, maybe
		}
		t.Fatalf("validJSON(%q) = %v, json.Valid = %v", b, got, want)
	})
}
