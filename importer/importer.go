// Package importer moves tenants from the store of another Connect
// framework — atlassian-connect-express (ACE) or
// atlassian-connect-spring-boot (ACSB) — into tenon's, shared secrets
// included, so an app switches backends without a single reinstall.
//
// A Source reads the other store whole and yields Records ordered by
// clientKey, plus the rows it could not use. Plan compares them with
// tenon's store and says what an import would do; Apply does it. An
// import is resumable by being idempotent: running it again after a stop
// writes only what is still missing, and a record tenon changed since (a
// lifecycle callback after the switch) is a conflict, never overwritten.
package importer

import (
	"context"
	"encoding/json"
	"time"

	"github.com/tenon-dev/tenon"
)

// Record is one tenant read from another framework's store.
type Record struct {
	// Installation is the tenant as tenon will store it. A zero UpdatedAt
	// means the source keeps no times.
	Installation tenon.Installation
	// Data is the app data the framework kept for the tenant, read only
	// when the source was opened with settings.
	Data []tenon.KeyValue
}

// Problem is a row of the source that cannot be imported.
type Problem struct {
	Where     string // the row, as the source names it: table and id, or Redis key
	ClientKey string // when known
	Reason    string
}

// Source is another framework's store, opened for reading. Read returns
// every importable tenant ordered by clientKey and the rows it skipped;
// an error means the store could not be read, and nothing may be
// imported from it.
type Source interface {
	Read(ctx context.Context) ([]Record, []Problem, error)
	Close() error
}

// Options are what every source needs to know.
type Options struct {
	// AppKey is the app's descriptor key. Tenants of another app are
	// skipped as problems; ACSB keeps no app key, so it is required there.
	AppKey string
	// WithSettings reads the framework's other per-tenant values as app
	// data.
	WithSettings bool
	// Table names ACE's settings table when the app changed it (ACE's
	// `store.table` option). Default AddonSettings.
	Table string
}

// Store is what the planner and the applier need of tenon's store.
type Store interface {
	tenon.InstallationStore
	tenon.DataStore
	tenon.InstallationImporter
}

// lifecycle are the fields of a stored install payload the import reads.
type lifecycle struct {
	Key            string `json:"key"`
	ClientKey      string `json:"clientKey"`
	SharedSecret   string `json:"sharedSecret"`
	BaseURL        string `json:"baseUrl"`
	DisplayURL     string `json:"displayUrl"`
	ProductType    string `json:"productType"`
	OAuthClientID  string `json:"oauthClientId"`
	InstallationID string `json:"installationId"`
	CloudID        string `json:"cloudId"`
	EventType      string `json:"eventType"`
}

// maxSharedSecret bounds secrets as the lifecycle handlers do.
const maxSharedSecret = 512

// fromPayload turns a stored install payload into a tenant, or says why
// it cannot be one. rowKey is the clientKey the row is filed under.
func fromPayload(raw []byte, rowKey, appKey string) (*tenon.Installation, string) {
	var b lifecycle
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, "the install payload is not a JSON object"
	}
	st, ok := stateOf(b.EventType)
	switch {
	case b.ClientKey == "":
		return nil, "the install payload has no clientKey"
	case b.ClientKey != rowKey:
		return nil, "the install payload's clientKey is not the row's clientKey"
	case b.SharedSecret == "":
		return nil, "the install payload has no sharedSecret"
	case len(b.SharedSecret) > maxSharedSecret:
		return nil, "the install payload's sharedSecret is too long"
	case b.BaseURL == "":
		return nil, "the install payload has no baseUrl"
	case b.Key == "":
		return nil, "the install payload has no key"
	case appKey != "" && b.Key != appKey:
		return nil, "the install payload is for another app (key " + b.Key + ")"
	case !ok:
		return nil, "the install payload's eventType " + b.EventType + " is not a lifecycle event"
	}
	compact, err := compactJSON(raw)
	if err != nil {
		return nil, "the install payload is not valid JSON"
	}
	return &tenon.Installation{
		ClientKey: b.ClientKey, AppKey: b.Key, SharedSecret: b.SharedSecret, BaseURL: b.BaseURL,
		DisplayURL: b.DisplayURL, ProductType: b.ProductType, OAuthClientID: b.OAuthClientID,
		InstallationID: b.InstallationID, CloudID: b.CloudID, State: st, Payload: compact,
	}, ""
}

// stateOf maps the eventType of the last lifecycle body an app stored to
// a tenant state. ACE saves the `installed` body itself; apps that record
// `enabled`, `disabled` or `uninstalled` save those bodies the same way.
func stateOf(eventType string) (tenon.State, bool) {
	switch eventType {
	case "", "installed", "enabled":
		return tenon.StateEnabled, true
	case "disabled":
		return tenon.StateDisabled, true
	case "uninstalled":
		return tenon.StateUninstalled, true
	}
	return "", false
}

func compactJSON(raw []byte) (json.RawMessage, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// aceValue turns a value as ACE stored it into a JSON value, the way
// ACE's own reader does: text that parses as JSON is that JSON, other
// text is a string.
func aceValue(text string) json.RawMessage {
	if json.Valid([]byte(text)) {
		if c, err := compactJSON([]byte(text)); err == nil {
			return c
		}
	}
	b, _ := json.Marshal(text) // a string always marshals
	return b
}

// dataProblem checks one app data value against tenon's limits.
func dataProblem(key string, value json.RawMessage) string {
	if err := tenon.ValidateKey(key); err != nil {
		return "the key cannot be a tenon data key: " + tenon.ErrorMessage(err)
	}
	if err := tenon.ValidateValue(value); err != nil {
		return "the value cannot be a tenon data value: " + tenon.ErrorMessage(err)
	}
	return ""
}

// timeOrZero is t in UTC at microseconds, for sources that keep times.
func timeOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Microsecond)
}
