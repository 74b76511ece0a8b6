// Package qsh computes the Atlassian Connect canonical request and its
// query string hash (qsh), the claim that binds a Connect JWT to one
// request.
//
// Everything works on the raw request: the path exactly as received and the
// raw query string. Parsed forms lose information that the hash covers
// (url.ParseQuery drops pairs containing ';', path cleaning merges
// segments), and such differences are how forged requests slip through.
package qsh

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
)

// ContextQSH is the literal qsh of a context JWT issued to browser code by
// AP.context.getToken. It is not a hash and matches no request.
const ContextQSH = "context-qsh"

// Canonical returns the canonical request METHOD&PATH&QUERY. rawPath is the
// path as received, rawQuery the query string without '?'. basePath, the
// path of the receiver's base URL ("" or e.g. "/wiki"), is stripped from
// the front of rawPath when it matches whole segments.
func Canonical(method, rawPath, rawQuery, basePath string) string {
	var buf [512]byte
	return string(AppendCanonical(buf[:0], method, rawPath, rawQuery, basePath))
}

// Hash returns the qsh: lower-case hex SHA-256 of the canonical request.
func Hash(method, rawPath, rawQuery, basePath string) string {
	sum := sum(method, rawPath, rawQuery, basePath)
	return hex.EncodeToString(sum[:])
}

// Matches reports, in constant time, whether claim is the qsh of the
// request. It builds no strings, so it is the check to use on hot paths.
func Matches(claim, method, rawPath, rawQuery, basePath string) bool {
	if len(claim) != 2*sha256.Size {
		return false
	}
	var want [sha256.Size]byte
	if _, err := hex.Decode(want[:], []byte(claim)); err != nil {
		return false
	}
	// Hex decoding accepts upper case; the claim must be the lower-case
	// form signers produce, so compare the text too.
	var wantHex [2 * sha256.Size]byte
	hex.Encode(wantHex[:], want[:])
	if !bytes.Equal(wantHex[:], []byte(claim)) {
		return false
	}
	got := sum(method, rawPath, rawQuery, basePath)
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// MatchesRequest reports whether claim is the qsh of the incoming request r.
func MatchesRequest(claim string, r *http.Request, basePath string) bool {
	path, query := RawTarget(r)
	return Matches(claim, r.Method, path, query, basePath)
}

func sum(method, rawPath, rawQuery, basePath string) [sha256.Size]byte {
	var buf [1024]byte
	return sha256.Sum256(AppendCanonical(buf[:0], method, rawPath, rawQuery, basePath))
}

// FromRequest returns the qsh of an incoming server request. It reads the
// request target as received (r.RequestURI), falling back to r.URL for
// requests built in code.
func FromRequest(r *http.Request, basePath string) string {
	path, query := RawTarget(r)
	return Hash(r.Method, path, query, basePath)
}

// RawTarget returns the raw path and raw query of r as received.
func RawTarget(r *http.Request) (path, query string) {
	target := r.RequestURI
	if target == "" || target == "*" || !strings.HasPrefix(target, "/") {
		// Built in code, or an absolute-form target: use the URL, whose
		// EscapedPath keeps the client's encoding when it was valid.
		return r.URL.EscapedPath(), r.URL.RawQuery
	}
	if i := strings.IndexByte(target, '?'); i >= 0 {
		return target[:i], target[i+1:]
	}
	return target, ""
}

// AppendCanonical appends the canonical request to dst and returns it.
func AppendCanonical(dst []byte, method, rawPath, rawQuery, basePath string) []byte {
	for i := 0; i < len(method); i++ {
		c := method[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		dst = append(dst, c)
	}
	dst = append(dst, '&')
	dst = appendPath(dst, stripBase(rawPath, basePath))
	dst = append(dst, '&')
	return appendQuery(dst, rawQuery)
}

// stripBase removes basePath from the front of path when it ends on a
// segment boundary, so "/wiki" strips "/wiki/x" but not "/wikix".
func stripBase(path, basePath string) string {
	basePath = strings.TrimSuffix(basePath, "/")
	if basePath == "" || !strings.HasPrefix(path, basePath) {
		return path
	}
	rest := path[len(basePath):]
	if rest == "" || rest[0] == '/' {
		return rest
	}
	return path
}

func appendPath(dst []byte, p string) []byte {
	if p == "" {
		return append(dst, '/')
	}
	if p[0] != '/' {
		dst = append(dst, '/')
	}
	if len(p) > 1 && p[len(p)-1] == '/' {
		p = p[:len(p)-1]
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '&' {
			dst = append(dst, "%26"...)
		} else {
			dst = append(dst, p[i])
		}
	}
	return dst
}

// param is one query parameter, as spans of an arena: the key already
// encoded (keys sort by their encoded form), the value decoded (repeated
// values sort by their decoded form and are encoded when written).
type param struct {
	key, val span
}

type span struct{ off, end int }

func (s span) of(arena []byte) []byte { return arena[s.off:s.end] }

func appendQuery(dst []byte, rawQuery string) []byte {
	if rawQuery == "" {
		return dst
	}
	// The arena and the parameter list live on the stack for ordinary
	// queries; longer ones grow onto the heap and still hash correctly.
	var arenaBuf [1024]byte
	var paramBuf [24]param
	arena, params := arenaBuf[:0], paramBuf[:0]
	for len(rawQuery) > 0 {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		// Decode the key, then keep only its encoded form.
		start := len(arena)
		arena = appendDecoded(arena, k)
		if string(arena[start:]) == "jwt" {
			arena = arena[:start]
			continue
		}
		decEnd := len(arena)
		for i := start; i < decEnd; i++ {
			arena = appendEncodedByte(arena, arena[i])
		}
		arena = append(arena[:start], arena[decEnd:]...)
		keyEnd := len(arena)
		arena = appendDecoded(arena, v)
		params = append(params, param{key: span{start, keyEnd}, val: span{keyEnd, len(arena)}})
	}
	slices.SortFunc(params, func(a, b param) int {
		if c := bytes.Compare(a.key.of(arena), b.key.of(arena)); c != 0 {
			return c
		}
		return bytes.Compare(a.val.of(arena), b.val.of(arena))
	})
	for i, p := range params {
		if i > 0 && bytes.Equal(p.key.of(arena), params[i-1].key.of(arena)) {
			// A repeated key: its values, already sorted, join with ','.
			dst = append(dst, ',')
		} else {
			if i > 0 {
				dst = append(dst, '&')
			}
			dst = append(dst, p.key.of(arena)...)
			dst = append(dst, '=')
		}
		for _, c := range p.val.of(arena) {
			dst = appendEncodedByte(dst, c)
		}
	}
	return dst
}

// appendDecoded appends s with '+' as space and %XX as its byte. Malformed
// escapes are kept literally: the hash then simply will not match a signer
// that encoded differently, which is the safe outcome.
func appendDecoded(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			dst = append(dst, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			dst = append(dst, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

func appendEncodedByte(dst []byte, c byte) []byte {
	const upperhex = "0123456789ABCDEF"
	if unreserved(c) {
		return append(dst, c)
	}
	return append(dst, '%', upperhex[c>>4], upperhex[c&15])
}

// unreserved reports whether c is kept as is: RFC 3986 unreserved.
func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
