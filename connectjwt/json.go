package connectjwt

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
)

// A small JSON reader for the two objects of a token. It validates as it
// reads (RFC 8259; UTF-8 is checked by the caller), in one pass, and
// matches member names exactly. Decoding into the Claims struct with
// json.Unmarshal would cost about a dozen allocations, match names
// case-insensitively ("EXP" as exp) and keep the last of duplicate
// members; json.Valid alone was more than a third of Parse. Here nothing
// allocates unless a string contains escapes. FuzzValidJSON checks the
// validator against encoding/json.

var errSyntax = errors.New("invalid JSON")

// maxDepth bounds nesting. Connect contexts nest three or four levels;
// the bound keeps the validator's stack fixed and small.
const maxDepth = 64

// text is what the reader reads: the decoded token as a string, or bytes.
type jsonText interface{ ~string | ~[]byte }

// validJSON reports whether b is exactly one JSON value, surrounded by
// nothing but whitespace, nested at most maxDepth deep.
func validJSON[T jsonText](b T) bool {
	i := scanValue(b, skipWS(b, 0))
	return i >= 0 && skipWS(b, i) == len(b)
}

// eachMember calls fn with the decoded name and the bounds of the raw value
// of each member of the object s, in order, and checks that s is one valid
// object and nothing else.
func eachMember(s string, fn func(name string, start, end int) error) error {
	i := skipWS(s, 0)
	if i >= len(s) || s[i] != '{' {
		return errors.New("not a JSON object")
	}
	i = skipWS(s, i+1)
	if i < len(s) && s[i] == '}' {
		return trailing(s, i+1)
	}
	for {
		ke := scanString(s, i)
		if ke < 0 {
			return errSyntax
		}
		name, err := unquote(s[i:ke])
		if err != nil {
			return err
		}
		i = skipWS(s, ke)
		if i >= len(s) || s[i] != ':' {
			return errSyntax
		}
		i = skipWS(s, i+1)
		ve := scanValue(s, i)
		if ve < 0 {
			return errSyntax
		}
		if err := fn(name, i, ve); err != nil {
			return err
		}
		i = skipWS(s, ve)
		if i >= len(s) {
			return errSyntax
		}
		switch s[i] {
		case ',':
			i = skipWS(s, i+1)
		case '}':
			return trailing(s, i+1)
		default:
			return errSyntax
		}
	}
}

// eachElement calls fn with the raw text of each element of the array s,
// which scanValue has already found valid.
func eachElement(s string, fn func(raw string) error) error {
	i := skipWS(s, 0)
	if i >= len(s) || s[i] != '[' {
		return errSyntax
	}
	i = skipWS(s, i+1)
	if i < len(s) && s[i] == ']' {
		return trailing(s, i+1)
	}
	for {
		ve := scanValue(s, i)
		if ve < 0 {
			return errSyntax
		}
		if err := fn(s[i:ve]); err != nil {
			return err
		}
		i = skipWS(s, ve)
		if i >= len(s) {
			return errSyntax
		}
		switch s[i] {
		case ',':
			i = skipWS(s, i+1)
		case ']':
			return trailing(s, i+1)
		default:
			return errSyntax
		}
	}
}

func trailing(s string, i int) error {
	if skipWS(s, i) != len(s) {
		return errSyntax
	}
	return nil
}

func skipWS[T jsonText](s T, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// scanValue returns the index after the JSON value starting at b[i], or
// -1 if there is none. Containers are walked with a fixed stack instead of
// recursion, so hostile nesting costs neither stack nor heap.
func scanValue[T jsonText](b T, i int) int {
	var stack [maxDepth]byte // open '{' or '['
	depth := 0
	for {
		// A value starts at b[i].
		if i >= len(b) {
			return -1
		}
		switch b[i] {
		case '{', '[':
			if depth == maxDepth {
				return -1
			}
			open := b[i]
			stack[depth] = open
			depth++
			i = skipWS(b, i+1)
			if i < len(b) && b[i] == open+2 { // '}' or ']'
				depth--
				i++
				break
			}
			if open == '{' {
				if i = memberName(b, i); i < 0 {
					return -1
				}
			}
			continue
		case '"':
			i = scanString(b, i)
		case 't':
			i = scanLiteral(b, i, "true")
		case 'f':
			i = scanLiteral(b, i, "false")
		case 'n':
			i = scanLiteral(b, i, "null")
		default:
			i = scanNumber(b, i)
		}
		if i < 0 {
			return -1
		}
		// After a value: close containers, or go on to the next element.
		for {
			if depth == 0 {
				return i
			}
			if i = skipWS(b, i); i >= len(b) {
				return -1
			}
			if b[i] == ',' {
				i = skipWS(b, i+1)
				if stack[depth-1] == '{' {
					if i = memberName(b, i); i < 0 {
						return -1
					}
				}
				break
			}
			if b[i] != stack[depth-1]+2 {
				return -1
			}
			depth--
			i++
		}
	}
}

// memberName scans `"name" :` and the space after it, returning the index
// of the value, or -1.
func memberName[T jsonText](b T, i int) int {
	if i = scanString(b, i); i < 0 {
		return -1
	}
	if i = skipWS(b, i); i >= len(b) || b[i] != ':' {
		return -1
	}
	return skipWS(b, i+1)
}

// scanString returns the index after the string literal at b[i], or -1.
func scanString[T jsonText](b T, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c == '\\':
			i++
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) {
					return -1
				}
				i += 4
			default:
				return -1
			}
		}
	}
	return -1
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func scanLiteral[T jsonText](b T, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// scanNumber returns the index after the number at b[i], or -1:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber[T jsonText](b T, i int) int {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(b, i)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func digits[T jsonText](b T, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// unquote decodes a JSON string literal, quotes included. Tokens almost
// never contain escapes, so the common case is a substring.
func unquote(raw string) (string, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", errSyntax
	}
	if strings.IndexByte(raw, '\\') < 0 {
		return raw[1 : len(raw)-1], nil
	}
	var s string
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return "", err
	}
	return s, nil
}

// stringValue decodes a string claim; null gives "".
func stringValue(raw string) (string, error) {
	if raw == "null" {
		return "", nil
	}
	if raw == "" || raw[0] != '"' {
		return "", errors.New("not a string")
	}
	return unquote(raw)
}

// audienceValue decodes aud: a string, an array of strings, or null.
func audienceValue(raw string) (Audience, error) {
	if raw == "null" {
		return nil, nil
	}
	if raw != "" && raw[0] == '"' {
		s, err := unquote(raw)
		if err != nil {
			return nil, err
		}
		return Audience{s}, nil
	}
	if raw == "" || raw[0] != '[' {
		return nil, errors.New("not a string or an array of strings")
	}
	aud := Audience{}
	err := eachElement(raw, func(e string) error {
		if e == "" || e[0] != '"' {
			return errors.New("array element is not a string")
		}
		s, err := unquote(e)
		if err != nil {
			return err
		}
		aud = append(aud, s)
		return nil
	})
	return aud, err
}

// numericDate decodes a NumericDate (seconds since the epoch). present is
// false for null. Fractions are truncated toward zero; values outside
// int64 are refused rather than wrapped.
func numericDate(raw string) (v int64, present bool, err error) {
	if raw == "null" {
		return 0, false, nil
	}
	if raw == "" || raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return 0, false, errors.New("not a number")
	}
	if !strings.ContainsAny(raw, ".eE") {
		v, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return 0, false, errors.New("integer out of range")
		}
		return v, true, nil
	}
	f, err := strconv.ParseFloat(raw, 64)
	if err != nil || math.IsNaN(f) || f >= math.MaxInt64 || f <= math.MinInt64 {
		return 0, false, errors.New("number out of range")
	}
	return int64(math.Trunc(f)), true, nil
}
