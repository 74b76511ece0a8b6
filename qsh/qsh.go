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
	"crypto/sha256"
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
	var b strings.Builder
	b.Grow(len(method) + len(rawPath) + len(rawQuery) + 8)
	writeCanonical(&b, method, rawPath, rawQuery, basePath)
	return b.String()
}

// Hash returns the qsh: lower-case hex SHA-256 of the canonical request.
func Hash(method, rawPath, rawQuery, basePath string) string {
	h := sha256.New()
	var b strings.Builder
	b.Grow(len(method) + len(rawPath) + len(rawQuery) + 8)
	writeCanonical(&b, method, rawPath, rawQuery, basePath)
	h.Write([]byte(b.String()))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
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

func writeCanonical(b *strings.Builder, method, rawPath, rawQuery, basePath string) {
	b.WriteString(strings.ToUpper(method))
	b.WriteByte('&')
	writePath(b, stripBase(rawPath, basePath))
	b.WriteByte('&')
	writeQuery(b, rawQuery)
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

func writePath(b *strings.Builder, p string) {
	if p == "" {
		b.WriteByte('/')
		return
	}
	if p[0] != '/' {
		b.WriteByte('/')
	}
	if len(p) > 1 && p[len(p)-1] == '/' {
		p = p[:len(p)-1]
	}
	for {
		i := strings.IndexByte(p, '&')
		if i < 0 {
			b.WriteString(p)
			return
		}
		b.WriteString(p[:i])
		b.WriteString("%26")
		p = p[i+1:]
	}
}

type param struct {
	key    string // encoded
	values []string
}

func writeQuery(b *strings.Builder, rawQuery string) {
	if rawQuery == "" {
		return
	}
	var stack [16]param
	params := stack[:0]
	for pair := range strings.SplitSeq(rawQuery, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key := decode(k)
		if key == "jwt" {
			continue
		}
		enc := encode(key)
		i := slices.IndexFunc(params, func(p param) bool { return p.key == enc })
		if i < 0 {
			params = append(params, param{key: enc})
			i = len(params) - 1
		}
		params[i].values = append(params[i].values, decode(v))
	}
	slices.SortFunc(params, func(a, c param) int { return strings.Compare(a.key, c.key) })
	for i, p := range params {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.key)
		b.WriteByte('=')
		if len(p.values) > 1 {
			slices.Sort(p.values)
		}
		for j, v := range p.values {
			if j > 0 {
				b.WriteByte(',')
			}
			writeEncoded(b, v)
		}
	}
}

// decode turns '+' into space and %XX into its byte. Malformed escapes are
// kept literally: the hash then simply will not match a signer that
// encoded differently, which is the safe outcome.
func decode(s string) string {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			out = append(out, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			out = append(out, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			out = append(out, c)
		}
	}
	return string(out)
}

func encode(s string) string {
	if !needsEncoding(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) * 3)
	writeEncoded(&b, s)
	return b.String()
}

func needsEncoding(s string) bool {
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			return true
		}
	}
	return false
}

func writeEncoded(b *strings.Builder, s string) {
	const upperhex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(upperhex[c>>4])
		b.WriteByte(upperhex[c&15])
	}
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
