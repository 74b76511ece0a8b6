package tenon

import (
	"context"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of settings.
const (
	MaxSettingNameLength = 600      // bytes; room for "notice/" and a clientKey
	MaxSettingSize       = 64 << 10 // bytes of one JSON value
	MaxNoticeMessage     = 1000     // characters of a maintenance or notice message
)

// SettingsStore is an optional Store capability: a few named JSON values
// shared by every node that uses the store, for operational switches an
// operator flips at run time (maintenance mode, notices). Both stores
// implement it; find it by type assertion on a Store.
//
// Implementations are safe for concurrent use and durable once a method
// returns nil. Readers cache settings for a few seconds, so a change
// reaches every node within that time, not at once.
type SettingsStore interface {
	// Setting returns the value stored under name, or ENOTFOUND.
	Setting(ctx context.Context, name string) (json.RawMessage, error)
	// PutSetting stores value (valid JSON, at most MaxSettingSize bytes)
	// under name, replacing any previous value. Bad names or values give
	// EINVALID or ETOOLARGE.
	PutSetting(ctx context.Context, name string, value json.RawMessage) error
	// DeleteSetting removes name. Removing a missing setting is not an
	// error.
	DeleteSetting(ctx context.Context, name string) error
	// ListSettings returns every setting whose name starts with prefix,
	// ordered by name (byte-wise). The empty prefix lists them all.
	ListSettings(ctx context.Context, prefix string) ([]KeyValue, error)
}

// ValidateSettingName checks a setting name: 1 to MaxSettingNameLength
// bytes of UTF-8 without NUL.
func ValidateSettingName(name string) error {
	if name == "" || len(name) > MaxSettingNameLength {
		return Errorf(EINVALID, "A setting name must be 1 to %d bytes long.", MaxSettingNameLength)
	}
	if !utf8.ValidString(name) || strings.IndexByte(name, 0) >= 0 {
		return Errorf(EINVALID, "The setting name is not valid UTF-8 or contains a NUL byte.")
	}
	return nil
}

// ValidateSettingValue checks a setting value: valid JSON of at most
// MaxSettingSize bytes.
func ValidateSettingValue(value json.RawMessage) error {
	if len(value) > MaxSettingSize {
		return Errorf(ETOOLARGE, "The setting is larger than %d bytes.", MaxSettingSize)
	}
	if !json.Valid(value) {
		return Errorf(EINVALID, "The setting is not valid JSON.")
	}
	return nil
}

// Names of the settings tenon itself keeps.
const (
	// SettingMaintenance holds a Maintenance while the app is in
	// maintenance mode.
	SettingMaintenance = "maintenance"
	// SettingNotice holds the Notice shown to every tenant.
	SettingNotice = "notice"
	// SettingTenantNoticePrefix starts the names of per-tenant notices:
	// "notice/" followed by the tenant's clientKey.
	SettingTenantNoticePrefix = "notice/"
)

// TenantNoticeSetting is the name of the Notice for one tenant.
func TenantNoticeSetting(clientKey string) string { return SettingTenantNoticePrefix + clientKey }

// Maintenance describes a maintenance window. While it is active, pages of
// the app show a notice instead of their content and its API answers 503;
// lifecycle callbacks and webhooks are still processed, so nothing the
// product sends is lost.
type Maintenance struct {
	// Message is shown to users; empty means a standard text.
	Message string `json:"message,omitempty"`
	// Until is when the window ends by itself and what clients are told
	// to wait for (Retry-After). Zero means until switched off.
	Until time.Time `json:"until,omitzero"`
	// Since is when the window was switched on.
	Since time.Time `json:"since,omitzero"`
}

// Active reports whether the window is on at now.
func (m *Maintenance) Active(now time.Time) bool {
	return m != nil && (m.Until.IsZero() || now.Before(m.Until))
}

// Notice is an announcement shown by app pages, to every tenant or to
// one, such as a deprecation warning months ahead of a change.
type Notice struct {
	Message string `json:"message"`
	// Until is when the notice stops being shown; zero means until
	// cleared.
	Until time.Time `json:"until,omitzero"`
	// ClientKey is the tenant the notice is for; "" for every tenant. It
	// is not stored in the value but taken from the setting's name.
	ClientKey string `json:"-"`
}

// Active reports whether the notice is shown at now.
func (n *Notice) Active(now time.Time) bool {
	return n != nil && n.Message != "" && (n.Until.IsZero() || now.Before(n.Until))
}

// ValidateNoticeMessage checks an operator's message for a notice or a
// maintenance window: at most MaxNoticeMessage characters of valid text.
func ValidateNoticeMessage(msg string) error {
	if len([]rune(msg)) > MaxNoticeMessage {
		return Errorf(EINVALID, "The message is longer than %d characters.", MaxNoticeMessage)
	}
	if !utf8.ValidString(msg) || strings.IndexByte(msg, 0) >= 0 {
		return Errorf(EINVALID, "The message is not valid UTF-8 or contains a NUL byte.")
	}
	return nil
}
