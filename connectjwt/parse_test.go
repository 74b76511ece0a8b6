package connectjwt_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tenon-dev/tenon/connectjwt"
)

const hsHeader = `{"alg":"HS256","typ":"JWT"}`

func TestParseMalformed(t *testing.T) {
	good := mustSignHS(t, validClaims(), secret)
	parts := strings.Split(good, ".")
	h, p, s := parts[0], parts[1], parts[2]
	badLen := p // base64 of length 4n+1 cannot exist
	for len(badLen)%4 != 1 {
		badLen += "A"
	}
	tests := []struct {
		name, token string
	}{
		{"empty", ""},
		{"one part", h},
		{"two parts", h + "." + p},
		{"trailing dot", h + "." + p + "."},
		{"four parts", good + "." + s},
		{"extra dot at end", good + "."},
		{"empty header", "." + p + "." + s},
		{"empty payload", h + ".." + s},
		{"truncated signature", h + "." + p + "." + s[:len(s)-1]},
		{"padding", h + "." + p + "." + s + "="},
		{"standard base64 alphabet", h + "." + p + "." + strings.NewReplacer("-", "+", "_", "/").Replace(s) + "+/"},
		{"newline inside", h + "\n." + p + "." + s},
		{"space", " " + good},
		{"non-canonical last char", h + "." + p + "." + s[:len(s)-1] + string(s[len(s)-1]+1)},
		{"header not base64", "!!!." + p + "." + s},
		{"payload bad length", h + "." + badLen + "." + s},
		{"header is array", b64(`["HS256"]`) + "." + p + "." + s},
		{"header is string", b64(`"HS256"`) + "." + p + "." + s},
		{"header is number", b64(`1`) + "." + p + "." + s},
		{"header is null", b64(`null`) + "." + p + "." + s},
		{"header invalid JSON", b64(`{"alg":"HS256"`) + "." + p + "." + s},
		{"header trailing data", b64(`{"alg":"HS256"}{}`) + "." + p + "." + s},
		{"header without alg", b64(`{"typ":"JWT"}`) + "." + p + "." + s},
		{"alg not a string", b64(`{"alg":256}`) + "." + p + "." + s},
		{"alg twice", b64(`{"alg":"HS256","alg":"none"}`) + "." + p + "." + s},
		{"crit header", b64(`{"alg":"HS256","crit":["exp"]}`) + "." + p + "." + s},
		{"payload is array", h + "." + b64(`[1,2]`) + "." + s},
		{"payload is string", h + "." + b64(`"x"`) + "." + s},
		{"payload invalid JSON", h + "." + b64(`{"iss":}`) + "." + s},
		{"payload invalid UTF-8", h + "." + b64("{\"iss\":\"\xff\"}") + "." + s},
		{"exp is a string", h + "." + b64(`{"exp":"1767225700"}`) + "." + s},
		{"exp is bool", h + "." + b64(`{"exp":true}`) + "." + s},
		{"exp is object", h + "." + b64(`{"exp":{}}`) + "." + s},
		{"exp overflows int64", h + "." + b64(`{"exp":9223372036854775808}`) + "." + s},
		{"exp float overflows int64", h + "." + b64(`{"exp":1e19}`) + "." + s},
		{"iat is a string", h + "." + b64(`{"iat":"0"}`) + "." + s},
		{"nbf is a string", h + "." + b64(`{"nbf":"0"}`) + "." + s},
		{"exp twice", h + "." + b64(`{"exp":1,"exp":9999999999}`) + "." + s},
		{"iss twice", h + "." + b64(`{"iss":"a","iss":"b"}`) + "." + s},
		{"iss is a number", h + "." + b64(`{"iss":1}`) + "." + s},
		{"sub is an object", h + "." + b64(`{"sub":{}}`) + "." + s},
		{"qsh is an array", h + "." + b64(`{"qsh":["x"]}`) + "." + s},
		{"aud is a number", h + "." + b64(`{"aud":1}`) + "." + s},
		{"aud has a number", h + "." + b64(`{"aud":["a",1]}`) + "." + s},
		{"oversized", h + "." + b64(`{"x":"`+strings.Repeat("a", connectjwt.MaxTokenSize)+`"}`) + "." + s},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := connectjwt.Parse(tt.token)
			if !errors.Is(err, connectjwt.ErrMalformed) {
				t.Fatalf("Parse = %+v, %v; want ErrMalformed", tok, err)
			}
		})
	}
}

func TestParseSizeLimit(t *testing.T) {
	// The largest token within the limit parses; the next one is refused.
	var within, over string
	for pad := 0; over == ""; pad++ {
		tok := hsToken(hsHeader, `{"exp":1,"x":"`+strings.Repeat("a", pad)+`"}`, secret)
		if len(tok) <= connectjwt.MaxTokenSize {
			within = tok
		} else {
			over = tok
		}
	}
	if len(within) < connectjwt.MaxTokenSize-2 {
		t.Fatalf("largest token built is %d bytes", len(within))
	}
	if _, err := connectjwt.Parse(within); err != nil {
		t.Fatalf("token of %d bytes: %v", len(within), err)
	}
	if _, err := connectjwt.Parse(over); !errors.Is(err, connectjwt.ErrMalformed) {
		t.Fatalf("token of %d bytes: %v, want ErrMalformed", len(over), err)
	}
}

func TestParseClaims(t *testing.T) {
	tests := []struct {
		name    string
		header  string
		payload string
		want    connectjwt.Claims
		alg     string
		kid     string
		typ     string
	}{
		{
			name:    "typical",
			header:  hsHeader,
			payload: `{"iss":"jira:1","sub":"acc","iat":100,"exp":200,"qsh":"abc","context":{"a":[1,{"b":"}"}]}}`,
			want:    connectjwt.Claims{Issuer: "jira:1", Subject: "acc", IssuedAt: 100, ExpiresAt: 200, QSH: "abc", Context: json.RawMessage(`{"a":[1,{"b":"}"}]}`)},
			alg:     "HS256", typ: "JWT",
		},
		{
			name:    "whitespace and unknown members",
			header:  " {\n \"typ\" : \"JWT\" , \"x5u\":\"https://evil\", \"alg\":\"RS256\",\"kid\":\"k/1\" } ",
			payload: ` { "tnt" : {"deep":[[[]]]}, "iss" : "a" , "exp" : 5 } `,
			want:    connectjwt.Claims{Issuer: "a", ExpiresAt: 5},
			alg:     "RS256", kid: "k/1", typ: "JWT",
		},
		{
			name:    "escapes decoded",
			header:  `{"alg":"HS\u0032\u0035\u0036"}`,
			payload: `{"iss":"a\"b\\c\u00e9\ud83d\ude00","exp":1}`,
			want:    connectjwt.Claims{Issuer: "a\"b\\cé😀", ExpiresAt: 1},
			alg:     "HS256",
		},
		{
			name:    "aud string",
			header:  hsHeader,
			payload: `{"aud":"https://app.example.com","exp":1}`,
			want:    connectjwt.Claims{Audience: connectjwt.Audience{"https://app.example.com"}, ExpiresAt: 1},
			alg:     "HS256", typ: "JWT",
		},
		{
			name:    "aud array",
			header:  hsHeader,
			payload: `{"aud":["a", "b"],"exp":1}`,
			want:    connectjwt.Claims{Audience: connectjwt.Audience{"a", "b"}, ExpiresAt: 1},
			alg:     "HS256", typ: "JWT",
		},
		{
			name:    "nulls are absent",
			header:  `{"alg":"HS256","kid":null,"typ":null}`,
			payload: `{"iss":null,"sub":null,"aud":null,"iat":null,"exp":1,"qsh":null,"context":null}`,
			want:    connectjwt.Claims{ExpiresAt: 1},
			alg:     "HS256",
		},
		{
			name:    "fractional dates truncated",
			header:  hsHeader,
			payload: `{"iat":1.7e9,"exp":1700000180.999}`,
			want:    connectjwt.Claims{IssuedAt: 1700000000, ExpiresAt: 1700000180},
			alg:     "HS256", typ: "JWT",
		},
		{
			name:    "keys are case-sensitive",
			header:  `{"alg":"HS256","ALG":"none"}`,
			payload: `{"EXP":1,"Iss":"x","exp":2}`,
			want:    connectjwt.Claims{ExpiresAt: 2},
			alg:     "HS256",
		},
		{
			name:    "unknown alg kept for the verifier to refuse",
			header:  `{"alg":"none"}`,
			payload: `{}`,
			alg:     "none",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := mustParse(t, hsToken(tt.header, tt.payload, secret))
			if tok.Alg != tt.alg || tok.Kid != tt.kid || tok.Typ != tt.typ {
				t.Errorf("header = %q %q %q, want %q %q %q", tok.Alg, tok.Kid, tok.Typ, tt.alg, tt.kid, tt.typ)
			}
			got, want := tok.Claims, tt.want
			if string(got.Context) != string(want.Context) {
				t.Errorf("context = %s, want %s", got.Context, want.Context)
			}
			got.Context, want.Context = nil, nil
			if !slices.Equal(got.Audience, want.Audience) {
				t.Errorf("aud = %q, want %q", got.Audience, want.Audience)
			}
			if got.Issuer != want.Issuer || got.Subject != want.Subject || got.QSH != want.QSH ||
				got.IssuedAt != want.IssuedAt || got.ExpiresAt != want.ExpiresAt {
				t.Errorf("claims = %+v, want %+v", got, want)
			}
		})
	}
}

func TestHasAudience(t *testing.T) {
	c := connectjwt.Claims{Audience: connectjwt.Audience{"https://app.example.com/", "https://other.example.com/base"}}
	tests := []struct {
		url  string
		want bool
	}{
		{"https://app.example.com", true},
		{"https://app.example.com/", true},
		{"https://other.example.com/base", true},
		{"https://other.example.com/base/", true},
		{"https://other.example.com/base//", false},
		{"https://app.example.com/x", false},
		{"https://other.example.com", false},
		{"http://app.example.com", false},
		{"", false},
		{"/", false},
	}
	for _, tt := range tests {
		if got := c.HasAudience(tt.url); got != tt.want {
			t.Errorf("HasAudience(%q) = %v, want %v", tt.url, got, tt.want)
		}
	}
	if (&connectjwt.Claims{}).HasAudience("https://app.example.com") {
		t.Error("empty aud matched")
	}
}

func TestAudienceJSON(t *testing.T) {
	for _, tt := range []struct {
		aud  connectjwt.Audience
		json string
	}{
		{connectjwt.Audience{"a"}, `"a"`},
		{connectjwt.Audience{"a", "b"}, `["a","b"]`},
	} {
		b, err := json.Marshal(tt.aud)
		if err != nil || string(b) != tt.json {
			t.Errorf("Marshal(%q) = %s, %v; want %s", tt.aud, b, err, tt.json)
		}
		var back connectjwt.Audience
		if err := json.Unmarshal(b, &back); err != nil || !slices.Equal(back, tt.aud) {
			t.Errorf("Unmarshal(%s) = %q, %v", b, back, err)
		}
	}
	var a connectjwt.Audience
	if err := json.Unmarshal([]byte(`null`), &a); err != nil || a != nil {
		t.Errorf("Unmarshal(null) = %q, %v", a, err)
	}
	if err := json.Unmarshal([]byte(`1`), &a); err == nil {
		t.Error("Unmarshal(1) succeeded")
	}
	// Claims without aud leave it out.
	b, _ := json.Marshal(connectjwt.Claims{Issuer: "x", ExpiresAt: 1})
	if strings.Contains(string(b), "aud") {
		t.Errorf("empty aud encoded: %s", b)
	}
}
