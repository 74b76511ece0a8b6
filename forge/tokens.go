package forge

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
)

// The OAuth tokens Forge sends with a call. Atlassian documents them as
// opaque except for their exp claim, which says how long to cache them.
const (
	SystemTokenHeader = "X-Forge-Oauth-System"
	UserTokenHeader   = "X-Forge-Oauth-User"
)

// MaxOAuthTokenBytes bounds an OAuth token taken from a header.
const MaxOAuthTokenBytes = 16 << 10

// TokenExpiry reads the exp claim of a Forge OAuth token without
// verifying it (the token is Atlassian's to check; this only says how long
// to keep it). ok is false when token is not a JWT with an exp.
func TokenExpiry(token string) (exp time.Time, ok bool) {
	if token == "" || len(token) > MaxOAuthTokenBytes {
		return time.Time{}, false
	}
	_, rest, found := strings.Cut(token, ".")
	if !found {
		return time.Time{}, false
	}
	payload, _, found := strings.Cut(rest, ".")
	if !found {
		return time.Time{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(payload, "="))
	if err != nil {
		return time.Time{}, false
	}
	var c struct {
		Exp *json.Number `json:"exp"`
	}
	if json.Unmarshal(raw, &c) != nil || c.Exp == nil {
		return time.Time{}, false
	}
	secs, err := c.Exp.Int64()
	if err != nil || secs <= 0 {
		return time.Time{}, false
	}
	return time.Unix(secs, 0), true
}

// ValidOAuthToken reports whether a header value can be an OAuth token:
// non-empty, bounded, only the characters of a JWT or an opaque bearer
// token. Anything else is dropped rather than cached or forwarded.
func ValidOAuthToken(token string) bool {
	if token == "" || len(token) > MaxOAuthTokenBytes {
		return false
	}
	for i := 0; i < len(token); i++ {
		c := token[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '_' || c == '.' || c == '~' || c == '+' || c == '/' || c == '=':
		default:
			return false
		}
	}
	return true
}
