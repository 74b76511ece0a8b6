// Package connectjwt parses, verifies and signs Atlassian Connect JWTs:
// HS256 tokens signed with a tenant's shared secret, and RS256 tokens of
// signed installs whose public key is fetched by kid from a key server.
//
// It is written by hand on the standard library instead of using a general
// JWT library for two reasons. First, cost: every request to a Connect app
// carries a token, and the whole verified request (parse, HS256, qsh,
// tenant lookup) has a budget of a few microseconds and a few dozen
// allocations; a generic library decoding into maps and interfaces spends
// most of that budget on its own. Here a token costs three allocations
// before the HMAC (one buffer, one string holding the decoded header and
// claims, the Token). Second, strictness: Connect needs exactly two
// algorithms, each pinned per call site, so there is no algorithm
// negotiation to get wrong, and the decoder refuses what a lenient one
// would let through (duplicate claims, claims of the wrong type,
// non-canonical base64, invalid UTF-8, unknown critical headers).
package connectjwt

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxTokenSize is the longest token Parse accepts, in bytes. Connect
// tokens are a few hundred bytes; the limit bounds the work an
// unauthenticated caller can cause before the signature is checked.
const MaxTokenSize = 8 << 10

// MaxLeeway is the largest clock skew a Verifier allows on exp, iat and
// nbf. Larger skews would stretch the life of a replayed token.
const MaxLeeway = 30 * time.Second

// Errors of parsing and verification. Callers map every one of them to
// 401, except ErrKeyUnavailable (503: the key server failed, the token may
// be fine). Returned errors wrap them with detail for the logs.
var (
	ErrMalformed      = errors.New("connectjwt: malformed token")
	ErrAlgorithm      = errors.New("connectjwt: algorithm not allowed")
	ErrSignature      = errors.New("connectjwt: invalid signature")
	ErrMissingExpiry  = errors.New("connectjwt: token has no exp")
	ErrExpired        = errors.New("connectjwt: token expired")
	ErrIssuedInFuture = errors.New("connectjwt: token issued in the future")
	ErrNotYetValid    = errors.New("connectjwt: token not valid yet (nbf)")
	ErrKeyNotFound    = errors.New("connectjwt: signing key not found")
	ErrKeyUnavailable = errors.New("connectjwt: key server unavailable")
)

// The algorithms Connect uses. Each verifier accepts exactly one.
const (
	algHS256 = "HS256"
	algRS256 = "RS256"
)

// b64 decodes the token parts. Strict, because with the lenient decoder
// several strings (differing in the unused low bits of the last character)
// decode to the same signature, which makes tokens malleable. It is never
// modified after initialisation, like base64.RawURLEncoding itself.
var b64 = base64.RawURLEncoding.Strict()

// Audience is the aud claim. JSON allows a single string or an array of
// strings; both decode to a slice. One element encodes as a plain string.
type Audience []string

// MarshalJSON encodes one audience as a string and several as an array.
func (a Audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

// UnmarshalJSON accepts a string, an array of strings, or null.
func (a *Audience) UnmarshalJSON(b []byte) error {
	if string(bytes.TrimSpace(b)) == "null" {
		*a = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*a = Audience{s}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("connectjwt: aud is neither a string nor an array of strings: %w", err)
	}
	*a = list
	return nil
}

// Claims are the Connect JWT claims tenon uses. Unknown claims are ignored.
type Claims struct {
	Issuer    string          `json:"iss"`
	Subject   string          `json:"sub,omitempty"`
	Audience  Audience        `json:"aud,omitempty"`
	IssuedAt  int64           `json:"iat"`
	ExpiresAt int64           `json:"exp"`
	QSH       string          `json:"qsh,omitempty"`
	Context   json.RawMessage `json:"context,omitempty"`
}

// HasAudience reports whether aud contains url, ignoring one trailing '/'
// on either side: products send the app's baseUrl with or without it.
func (c *Claims) HasAudience(url string) bool {
	want := strings.TrimSuffix(url, "/")
	if want == "" {
		return false
	}
	for _, a := range c.Audience {
		if strings.TrimSuffix(a, "/") == want {
			return true
		}
	}
	return false
}

// Token is a parsed, not yet verified, JWT. Its fields must not be trusted
// until VerifyHS256 or VerifyRS256 returned nil. Claims.Context shares
// memory with the token (it is not copied, to save an allocation per
// request); copy it before modifying it.
type Token struct {
	Alg, Kid, Typ string
	Claims        Claims

	signingInput []byte // header.payload exactly as received
	signature    []byte // decoded
	hasExp       bool   // exp was present: 0 and absent differ
	hasNbf       bool
	nbf          int64
}

// Parse decodes a compact JWS (header.payload.signature, base64url without
// padding) WITHOUT verifying it, so that the caller can find the tenant by
// Claims.Issuer and then verify with its secret. Every error wraps
// ErrMalformed.
//
// Parse is strict: exactly three non-empty parts, canonical base64url,
// UTF-8 JSON objects, each known header parameter and claim at most once
// and of its type (null counts as absent), no "crit" header. exp, iat and
// nbf are JSON numbers; a fractional value is truncated toward zero (RFC
// 7519 allows fractions, and truncating only makes exp earlier); strings
// are refused.
func Parse(token string) (*Token, error) {
	if len(token) > MaxTokenSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformed, len(token), MaxTokenSize)
	}
	dot1 := strings.IndexByte(token, '.')
	if dot1 < 0 {
		return nil, fmt.Errorf("%w: want 3 parts separated by '.'", ErrMalformed)
	}
	dot2 := strings.IndexByte(token[dot1+1:], '.')
	if dot2 < 0 {
		return nil, fmt.Errorf("%w: want 3 parts separated by '.'", ErrMalformed)
	}
	dot2 += dot1 + 1
	h, p, s := token[:dot1], token[dot1+1:dot2], token[dot2+1:]
	if h == "" || p == "" || s == "" {
		return nil, fmt.Errorf("%w: empty part", ErrMalformed)
	}
	// The decoder refuses every byte outside the alphabet (a fourth '.',
	// padding) except '\r' and '\n', which it skips; a token must not.
	if strings.IndexByte(token, '\n') >= 0 || strings.IndexByte(token, '\r') >= 0 {
		return nil, fmt.Errorf("%w: line break in token", ErrMalformed)
	}

	// One allocation holds the signing input and the three decoded parts.
	si := len(h) + 1 + len(p)
	hn, pn, sn := b64.DecodedLen(len(h)), b64.DecodedLen(len(p)), b64.DecodedLen(len(s))
	buf := make([]byte, si+hn+pn+sn)
	copy(buf, token[:si])
	hb, pb, sb := buf[si:si+hn], buf[si+hn:si+hn+pn], buf[si+hn+pn:]
	if err := decodePart(hb, h, "header"); err != nil {
		return nil, err
	}
	if err := decodePart(pb, p, "payload"); err != nil {
		return nil, err
	}
	if err := decodePart(sb, s, "signature"); err != nil {
		return nil, err
	}
	doc := buf[si : si+hn+pn]
	if !utf8.Valid(doc) {
		return nil, fmt.Errorf("%w: header or payload is not UTF-8", ErrMalformed)
	}

	// The header and claim strings are substrings of this one string, so
	// they cost no further allocations.
	text := string(doc)
	t := &Token{signingInput: buf[:si], signature: sb}
	if err := t.parseHeader(text[:hn]); err != nil {
		return nil, err
	}
	if err := t.parseClaims(text[hn:], pb); err != nil {
		return nil, err
	}
	return t, nil
}

func decodePart(dst []byte, src, name string) error {
	n, err := b64.Decode(dst, []byte(src))
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMalformed, name, err)
	}
	if n != len(dst) {
		return fmt.Errorf("%w: %s: bad base64 length", ErrMalformed, name)
	}
	return nil
}

// Bits of the header parameters and claims already seen, to refuse
// duplicates: with "alg" twice, which one is meant depends on the decoder.
const (
	seenAlg = 1 << iota
	seenKid
	seenTyp
	seenIss
	seenSub
	seenAud
	seenIat
	seenExp
	seenNbf
	seenQsh
	seenContext
)

func (t *Token) parseHeader(s string) error {
	var seen int
	err := eachMember(s, func(key string, vs, ve int) error {
		raw := s[vs:ve]
		var err error
		switch key {
		case "alg":
			err = once(&seen, seenAlg)
			if err == nil {
				t.Alg, err = stringValue(raw)
			}
		case "kid":
			err = once(&seen, seenKid)
			if err == nil {
				t.Kid, err = stringValue(raw)
			}
		case "typ":
			err = once(&seen, seenTyp)
			if err == nil {
				t.Typ, err = stringValue(raw)
			}
		case "crit":
			// RFC 7515 §4.1.11: extensions marked critical must be
			// understood; this package understands none.
			return errors.New("crit header not supported")
		default:
			return nil
		}
		if err != nil {
			return fmt.Errorf("header %q: %w", key, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if t.Alg == "" {
		return fmt.Errorf("%w: header has no alg", ErrMalformed)
	}
	return nil
}

// parseClaims decodes the claims from s; raw holds the same bytes, so that
// Context can be a slice of it instead of a copy.
func (t *Token) parseClaims(s string, raw []byte) error {
	var seen int
	c := &t.Claims
	err := eachMember(s, func(key string, vs, ve int) error {
		v := s[vs:ve]
		var err error
		switch key {
		case "iss":
			if err = once(&seen, seenIss); err == nil {
				c.Issuer, err = stringValue(v)
			}
		case "sub":
			if err = once(&seen, seenSub); err == nil {
				c.Subject, err = stringValue(v)
			}
		case "qsh":
			if err = once(&seen, seenQsh); err == nil {
				c.QSH, err = stringValue(v)
			}
		case "aud":
			if err = once(&seen, seenAud); err == nil {
				c.Audience, err = audienceValue(v)
			}
		case "iat":
			if err = once(&seen, seenIat); err == nil {
				c.IssuedAt, _, err = numericDate(v)
			}
		case "exp":
			if err = once(&seen, seenExp); err == nil {
				c.ExpiresAt, t.hasExp, err = numericDate(v)
			}
		case "nbf":
			if err = once(&seen, seenNbf); err == nil {
				t.nbf, t.hasNbf, err = numericDate(v)
			}
		case "context":
			if err = once(&seen, seenContext); err == nil && v != "null" {
				c.Context = json.RawMessage(raw[vs:ve:ve])
			}
		default:
			return nil
		}
		if err != nil {
			return fmt.Errorf("claim %q: %w", key, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return nil
}

func once(seen *int, bit int) error {
	if *seen&bit != 0 {
		return errors.New("given twice")
	}
	*seen |= bit
	return nil
}
