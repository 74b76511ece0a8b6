package hostclient

import (
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/tenon-dev/tenon"
)

// maxDecodeDepth is how many times a path segment is percent-decoded
// while looking for what it could turn into: a product behind a proxy may
// decode a path twice, so "%252e%252e" must count as "..".
const maxDecodeDepth = 3

// checkTarget is the one rule for what a request may name, whoever built
// it: Tenant.Do from a caller's path, or the transport of HTTPClient from
// a library's URL (the part after the base path). target is an absolute
// path relative to the base URL, with an optional query, percent-encoded
// as it goes on the wire. It is refused, with a *tenon.Error EINVALID, when
// it could name another host, leave the base path, or mean different
// things to different parsers on the way:
//
//   - not starting with '/', or starting with "//" (a scheme or host of
//     its own: "https://evil.example/x", "//evil.example/x");
//   - a raw control character, space or non-ASCII byte anywhere, a raw
//     backslash anywhere, a fragment;
//   - in the path, a segment that decodes (once or, through "%25", again)
//     to a dot segment ("..", "%2e%2E", ".%2e", also "..;x"), contains a
//     slash ("%2F"), a backslash ("%5C") or a control character ("%00" to
//     "%1F", "%7F"), is not UTF-8 (overlong forms of '.' and '/'), or has a
//     malformed escape.
//
// The query is the caller's data: its percent-encoded bytes pass as they
// are, since a JQL string may well hold an encoded slash or newline.
func checkTarget(target string) (rawPath, rawQuery string, err error) {
	switch {
	case target == "" || target[0] != '/':
		return "", "", refusePath(target, "it must start with '/' and be relative to the base URL, without a scheme or host of its own")
	case strings.HasPrefix(target, "//"):
		return "", "", refusePath(target, "a path starting with // names another host")
	}
	for i := 0; i < len(target); i++ {
		switch c := target[i]; {
		case c < 0x20 || c == 0x7f:
			return "", "", refusePath(target, "it contains a control character")
		case c == ' ' || c >= 0x80:
			return "", "", refusePath(target, "it must be percent-encoded (url.PathEscape each segment): it contains a space or a non-ASCII byte")
		case c == '\\':
			return "", "", refusePath(target, "it contains a backslash")
		case c == '#':
			return "", "", refusePath(target, "it contains a fragment ('#')")
		}
	}
	rawPath, rawQuery, _ = strings.Cut(target, "?")
	for seg := range strings.SplitSeq(rawPath, "/") {
		if why := badSegment(seg); why != "" {
			return "", "", refusePath(target, why)
		}
	}
	return rawPath, rawQuery, nil
}

// badSegment says what is wrong with one raw path segment, or "".
func badSegment(seg string) string {
	s := seg
	for depth := 0; ; depth++ {
		if isDotSegment(s) {
			return "it contains a dot segment ('.' or '..', raw or percent-encoded)"
		}
		if depth > 0 {
			switch {
			case strings.IndexByte(s, '/') >= 0:
				return "it contains an encoded slash (%2F)"
			case strings.IndexByte(s, '\\') >= 0:
				return "it contains an encoded backslash (%5C)"
			case strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }):
				return "it contains an encoded control character (%00 to %1F, %7F)"
			case !utf8.ValidString(s):
				return "it contains percent-encoded bytes that are not UTF-8"
			}
		}
		if depth == maxDecodeDepth || strings.IndexByte(s, '%') < 0 {
			return ""
		}
		d, err := url.PathUnescape(s)
		if err != nil {
			if depth == 0 {
				return "it contains a malformed percent-escape"
			}
			// A '%' that an earlier decoding produced and that escapes
			// nothing is data ("100%25" is "100%").
			return ""
		}
		s = d
	}
}

// isDotSegment reports whether a decoded segment is "." or "..", also
// with a path parameter (";x"), which some servers drop before resolving
// dot segments.
func isDotSegment(s string) bool {
	s, _, _ = strings.Cut(s, ";")
	return s == "." || s == ".."
}

// refusePath is the error of a path checkTarget refuses.
func refusePath(target, why string) error {
	return refusal(why, fmt.Sprintf("path %q", pathOnly(target)))
}

// refusal is the error of a request the client will not send: the caller's
// mistake (EINVALID), never the site's, so it neither trips a breaker nor
// reads as unavailability. The message says why without the path, which
// can hold what a user typed; the cause, for logs, names the path without
// its query.
func refusal(why, what string) error {
	return tenon.WrapError(tenon.EINVALID, "The request to the product was refused before it was sent: "+why+".",
		&refusedError{msg: "hostclient: refusing " + what + ": " + why})
}

// pathOnly drops the query, which can hold user data, from what goes into
// error messages and logs.
func pathOnly(target string) string {
	p, _, _ := strings.Cut(target, "?")
	return p
}
