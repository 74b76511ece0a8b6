package fakeatlassian

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
)

// The canonical request is written here from PROTOCOL.md alone, without
// sharing code with the qsh package: the fake is the independent side of
// every interoperability test, so a mistake in one implementation shows up
// as a mismatch instead of hiding on both sides.

// contextQSH is the literal qsh of context tokens (AP.context.getToken).
const contextQSH = "context-qsh"

// qshOf returns lowercase hex SHA-256 of the canonical request.
func qshOf(method, rawPath, basePath, rawQuery string) string {
	sum := sha256.Sum256([]byte(canonicalRequest(method, rawPath, basePath, rawQuery)))
	return hex.EncodeToString(sum[:])
}

// qshOfURL computes the qsh of a request to rawURL whose hashed path is
// relative to the path of baseURL. Both are split by hand, not with
// net/url, because the path must stay exactly as it will be sent.
func qshOfURL(method, rawURL, baseURL string) string {
	path, query := splitRawURL(rawURL)
	return qshOf(method, path, basePathOf(baseURL), query)
}

// canonicalRequest is METHOD&PATH&QUERY as Atlassian hashes it.
func canonicalRequest(method, rawPath, basePath, rawQuery string) string {
	return strings.ToUpper(method) + "&" + canonicalPath(rawPath, basePath) + "&" + canonicalQuery(rawQuery)
}

// canonicalPath strips basePath (whole segments only) from the raw,
// undecoded path, escapes '&' and normalises the leading and trailing '/'.
func canonicalPath(rawPath, basePath string) string {
	p := stripBasePath(rawPath, basePath)
	p = strings.ReplaceAll(p, "&", "%26")
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if len(p) > 1 && strings.HasSuffix(p, "/") {
		p = p[:len(p)-1]
	}
	return p
}

// stripBasePath removes basePath from the front of p when p is basePath
// itself or continues with a new segment after it. "/wiki" is stripped
// from "/wiki/rest" but not from "/wikipedia".
func stripBasePath(p, basePath string) string {
	base := strings.TrimRight(basePath, "/")
	if base == "" {
		return p
	}
	if p == base {
		return ""
	}
	if strings.HasPrefix(p, base+"/") {
		return p[len(base):]
	}
	return p
}

// canonicalQuery sorts and re-encodes the raw query. It never uses
// url.ParseQuery: that drops pairs containing ';' and rejects bad escapes,
// while Atlassian hashes whatever was sent.
func canonicalQuery(rawQuery string) string {
	if rawQuery == "" {
		return ""
	}
	values := map[string][]string{}
	for _, pair := range strings.Split(rawQuery, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k = decodeQueryComponent(k)
		if k == "jwt" {
			continue
		}
		values[k] = append(values[k], decodeQueryComponent(v))
	}
	type param struct{ key, values string }
	params := make([]param, 0, len(values))
	for k, vs := range values {
		sort.Strings(vs)
		enc := make([]string, len(vs))
		for i, v := range vs {
			enc[i] = encodeRFC3986(v)
		}
		params = append(params, param{encodeRFC3986(k), strings.Join(enc, ",")})
	}
	sort.Slice(params, func(i, j int) bool { return params[i].key < params[j].key })
	var b strings.Builder
	for i, p := range params {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.key)
		b.WriteByte('=')
		b.WriteString(p.values)
	}
	return b.String()
}

// decodeQueryComponent turns '+' into a space and decodes %XX. A '%' not
// followed by two hex digits is kept as it is: the hash must be computable
// for any query a client can send.
func decodeQueryComponent(s string) string {
	if !strings.ContainsAny(s, "+%") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b = append(b, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

// encodeRFC3986 keeps only the unreserved characters and writes every
// other byte as upper-case %XX (so a space is %20, never '+').
func encodeRFC3986(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
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

// splitRawURL returns the raw path and raw query of an absolute or
// origin-relative URL without decoding or cleaning anything. A fragment
// is dropped.
func splitRawURL(raw string) (path, query string) {
	if i := strings.IndexByte(raw, '#'); i >= 0 {
		raw = raw[:i]
	}
	if i := strings.Index(raw, "://"); i >= 0 {
		rest := raw[i+3:]
		j := strings.IndexAny(rest, "/?")
		if j < 0 {
			return "", ""
		}
		raw = rest[j:]
	}
	path, query, _ = strings.Cut(raw, "?")
	return path, query
}

// basePathOf returns the path of a base URL ("https://x/wiki" → "/wiki").
// A value that is already a path is returned as it is.
func basePathOf(baseURL string) string {
	p, _ := splitRawURL(baseURL)
	return strings.TrimRight(p, "/")
}
