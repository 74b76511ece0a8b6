// Package storeutil holds the rules both stores apply in Go rather than in
// SQL — validation, state transitions, key ranges, sealing — so SQLite and
// PostgreSQL cannot drift apart in behaviour. It is internal because its
// shape follows the stores, not the needs of applications.
package storeutil

import (
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/tenon-dev/tenon"
)

// MaxClientKeyLength bounds a clientKey. Real ones are UUID-sized; the limit
// only keeps absurd input out of indexes and notification payloads.
const MaxClientKeyLength = 512

// ValidText reports whether s can be stored as text by every store:
// PostgreSQL rejects invalid UTF-8 and NUL bytes in text columns, and
// SQLite must behave the same.
func ValidText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return false
		}
	}
	return true
}

// ValidClientKey reports whether clientKey could name a stored tenant.
// Lookups use it to answer ENOTFOUND for keys that cannot exist instead of
// sending them to the database.
func ValidClientKey(clientKey string) bool {
	return clientKey != "" && len(clientKey) <= MaxClientKeyLength && ValidText(clientKey)
}

// ValidateInstallation checks what SaveInstallation is about to store.
func ValidateInstallation(in *tenon.Installation) error {
	if in == nil {
		return tenon.Errorf(tenon.EINVALID, "The installation is missing.")
	}
	if !ValidClientKey(in.ClientKey) {
		return tenon.Errorf(tenon.EINVALID, "The clientKey must be 1 to %d bytes of UTF-8 without NUL.", MaxClientKeyLength)
	}
	fields := []struct{ name, value string }{
		{"key", in.AppKey},
		{"sharedSecret", in.SharedSecret},
		{"baseUrl", in.BaseURL},
		{"displayUrl", in.DisplayURL},
		{"productType", in.ProductType},
		{"oauthClientId", in.OAuthClientID},
		{"installationId", in.InstallationID},
		{"cloudId", in.CloudID},
	}
	for _, f := range fields {
		if !ValidText(f.value) {
			return tenon.Errorf(tenon.EINVALID, "The field %s is not valid UTF-8 or contains a NUL byte.", f.name)
		}
	}
	if len(in.Payload) > 0 && !json.Valid(in.Payload) {
		return tenon.Errorf(tenon.EINVALID, "The installation payload is not valid JSON.")
	}
	return nil
}

// ValidateState checks a state given to SetState or Installations.
func ValidateState(s tenon.State) error {
	if !s.Valid() {
		return tenon.Errorf(tenon.EINVALID, "Unknown installation state %q.", s)
	}
	return nil
}

// Transition decides what SetState does to a tenant in state from when
// asked for state to. It reports whether the record changes. Uninstalled is
// sticky: only SaveInstallation leaves it, so a `disabled` processed after
// an `uninstalled` cannot revive the tenant.
func Transition(from, to tenon.State) (changed bool, err error) {
	if err := ValidateState(to); err != nil {
		return false, err
	}
	switch {
	case from == tenon.StateUninstalled && to != tenon.StateUninstalled:
		return false, tenon.Errorf(tenon.ECONFLICT, "The app was uninstalled from this site; only a new installation changes its state.")
	case from == to:
		return false, nil
	}
	return true, nil
}

// Now returns the clock's time in UTC at microsecond precision, the finest
// PostgreSQL keeps, so both stores return exactly the times they were given.
func Now(clock func() time.Time) time.Time {
	return clock().UTC().Truncate(time.Microsecond)
}

// ListLimit applies the DataStore rule: limit <= 0 or above MaxListLimit
// means MaxListLimit.
func ListLimit(limit int) int {
	if limit <= 0 || limit > tenon.MaxListLimit {
		return tenon.MaxListLimit
	}
	return limit
}

// KeyRange is the key range a ListValues call scans:
// keys > Lower (or >= Lower unless LowerStrict) and, when HasUpper, < Upper.
// Expressing a prefix as a range instead of LIKE makes %, _ and \ in
// prefixes plain characters and lets both databases walk the primary key
// index from the first wanted key, however deep into a listing a page is.
type KeyRange struct {
	Lower       string
	LowerStrict bool
	Upper       string
	HasUpper    bool
}

// ListRange validates prefix and after and returns the range to scan.
func ListRange(prefix, after string) (KeyRange, error) {
	if len(prefix) > tenon.MaxKeyLength || !ValidText(prefix) {
		return KeyRange{}, tenon.Errorf(tenon.EINVALID, "The prefix must be at most %d bytes of UTF-8 without NUL.", tenon.MaxKeyLength)
	}
	if len(after) > tenon.MaxKeyLength || !ValidText(after) {
		return KeyRange{}, tenon.Errorf(tenon.EINVALID, "The `after` key must be at most %d bytes of UTF-8 without NUL.", tenon.MaxKeyLength)
	}
	var r KeyRange
	// One lower bound, the tighter of the two: a database given both uses
	// one for the index seek and merely filters on the other.
	if after >= prefix {
		r.Lower, r.LowerStrict = after, true
	} else {
		r.Lower = prefix
	}
	r.Upper, r.HasUpper = PrefixEnd(prefix)
	return r, nil
}

// PrefixEnd returns the smallest valid UTF-8 string greater than every
// string that starts with prefix, and false when there is none (the empty
// prefix, or one made only of U+10FFFF). It increments the last code point
// rather than the last byte because PostgreSQL refuses invalid UTF-8 even
// as a query parameter; UTF-8 byte order equals code point order, so the
// bound is the same.
func PrefixEnd(prefix string) (string, bool) {
	runes := []rune(prefix)
	for len(runes) > 0 {
		last := runes[len(runes)-1]
		runes = runes[:len(runes)-1]
		switch {
		case last == utf8.MaxRune:
			continue // carry into the previous code point
		case last == 0xD7FF:
			last = 0xE000 // skip the surrogates, which UTF-8 cannot encode
		default:
			last++
		}
		return string(append(runes, last)), true
	}
	return "", false
}

// Sealed holds the encrypted columns of an installation.
type Sealed struct {
	SharedSecret string
	Payload      string // "" when the installation has no payload
}

// Seal encrypts the secret-bearing fields of in. The shared secret is
// sealed even when empty so the column never tells which tenants have one.
func Seal(box tenon.SecretBox, in *tenon.Installation) (Sealed, error) {
	var s Sealed
	var err error
	if s.SharedSecret, err = box.Seal([]byte(in.SharedSecret)); err != nil {
		return Sealed{}, fmt.Errorf("seal shared secret: %w", err)
	}
	if len(in.Payload) > 0 {
		if s.Payload, err = box.Seal(in.Payload); err != nil {
			return Sealed{}, fmt.Errorf("seal payload: %w", err)
		}
	}
	return s, nil
}

// Open decrypts sealed columns into in. Errors name the tenant but carry
// nothing of the sealed values.
func Open(box tenon.SecretBox, s Sealed, in *tenon.Installation) error {
	secret, err := box.Open(s.SharedSecret)
	if err != nil {
		return fmt.Errorf("open shared secret of %q: %w", in.ClientKey, err)
	}
	in.SharedSecret = string(secret)
	in.Payload = nil
	if s.Payload != "" {
		p, err := box.Open(s.Payload)
		if err != nil {
			return fmt.Errorf("open payload of %q: %w", in.ClientKey, err)
		}
		in.Payload = p
	}
	return nil
}

// NotFound is the error for a tenant that does not exist.
func NotFound(clientKey string) error {
	return tenon.Errorf(tenon.ENOTFOUND, "No installation for clientKey %q.", clientKey)
}

// ValueNotFound is the error for a missing data key.
func ValueNotFound(key string) error {
	return tenon.Errorf(tenon.ENOTFOUND, "No value under key %q.", key)
}
