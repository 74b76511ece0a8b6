package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
)

// NewInstallation returns an installation with every field set, as a
// verified `installed` callback for clientKey would produce it.
func NewInstallation(clientKey string) *tenon.Installation {
	in := &tenon.Installation{
		ClientKey:      clientKey,
		AppKey:         "com.example.app",
		SharedSecret:   "secret-of-" + clientKey + "-0123456789abcdef0123456789abcdef",
		BaseURL:        "https://" + clientKey + ".atlassian.net",
		DisplayURL:     "https://jira." + clientKey + ".example.com",
		ProductType:    "jira",
		OAuthClientID:  "oauth-" + clientKey,
		InstallationID: "ari:cloud:ecosystem::installation/" + clientKey,
		CloudID:        "cloud-" + clientKey,
	}
	payload, err := json.Marshal(struct {
		Key          string `json:"key"`
		ClientKey    string `json:"clientKey"`
		SharedSecret string `json:"sharedSecret"`
		BaseURL      string `json:"baseUrl"`
		ProductType  string `json:"productType"`
		EventType    string `json:"eventType"`
	}{in.AppKey, in.ClientKey, in.SharedSecret, in.BaseURL, in.ProductType, "installed"})
	if err != nil {
		panic(err) // strings always marshal
	}
	in.Payload = payload
	return in
}

func mustSave(t *testing.T, s tenon.Store, in *tenon.Installation) *tenon.Installation {
	t.Helper()
	if err := s.SaveInstallation(context.Background(), in); err != nil {
		t.Fatalf("SaveInstallation(%q): %v", in.ClientKey, err)
	}
	return in
}

func mustGet(t *testing.T, s tenon.Store, clientKey string) *tenon.Installation {
	t.Helper()
	in, err := s.Installation(context.Background(), clientKey)
	if err != nil {
		t.Fatalf("Installation(%q): %v", clientKey, err)
	}
	if in == nil {
		t.Fatalf("Installation(%q) returned nil without an error", clientKey)
	}
	return in
}

func mustSetState(t *testing.T, s tenon.Store, clientKey string, state tenon.State) *tenon.Installation {
	t.Helper()
	in, err := s.SetState(context.Background(), clientKey, state)
	if err != nil {
		t.Fatalf("SetState(%q, %s): %v", clientKey, state, err)
	}
	if in == nil {
		t.Fatalf("SetState(%q, %s) returned nil without an error", clientKey, state)
	}
	return in
}

func mustPut(t *testing.T, s tenon.Store, clientKey, key, value string) {
	t.Helper()
	if err := s.PutValue(context.Background(), clientKey, key, []byte(value)); err != nil {
		t.Fatalf("PutValue(%q, %q): %v", clientKey, key, err)
	}
}

func mustList(t *testing.T, s tenon.Store, clientKey, prefix, after string, limit int) []tenon.KeyValue {
	t.Helper()
	kvs, err := s.ListValues(context.Background(), clientKey, prefix, after, limit)
	if err != nil {
		t.Fatalf("ListValues(%q, %q, %q, %d): %v", clientKey, prefix, after, limit, err)
	}
	return kvs
}

func keysOf(kvs []tenon.KeyValue) []string {
	keys := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		keys = append(keys, kv.Key)
	}
	return keys
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// wantCode fails t unless err carries code.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := tenon.ErrorCode(err); got != code {
		t.Errorf("%s: error %v has code %q, want %q", what, err, got, code)
	}
}

// checkInstallation compares every stored field of got with want.
func checkInstallation(t *testing.T, what string, got, want *tenon.Installation) {
	t.Helper()
	str := func(field, g, w string) {
		if g != w {
			t.Errorf("%s: %s = %q, want %q", what, field, g, w)
		}
	}
	str("ClientKey", got.ClientKey, want.ClientKey)
	str("AppKey", got.AppKey, want.AppKey)
	if got.SharedSecret != want.SharedSecret {
		// Do not print secrets, even fake ones: the habit matters.
		t.Errorf("%s: SharedSecret differs (len %d, want len %d)", what, len(got.SharedSecret), len(want.SharedSecret))
	}
	str("BaseURL", got.BaseURL, want.BaseURL)
	str("DisplayURL", got.DisplayURL, want.DisplayURL)
	str("ProductType", got.ProductType, want.ProductType)
	str("OAuthClientID", got.OAuthClientID, want.OAuthClientID)
	str("InstallationID", got.InstallationID, want.InstallationID)
	str("CloudID", got.CloudID, want.CloudID)
	str("State", string(got.State), string(want.State))
	if !bytes.Equal(got.Payload, want.Payload) {
		t.Errorf("%s: Payload differs (len %d, want len %d)", what, len(got.Payload), len(want.Payload))
	}
	checkTime(t, what+": InstalledAt", got.InstalledAt, want.InstalledAt)
	checkTime(t, what+": UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	checkTime(t, what+": UninstalledAt", got.UninstalledAt, want.UninstalledAt)
}

func checkTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
	if !got.IsZero() && got.Location() != time.UTC {
		t.Errorf("%s = %v, want it in UTC", what, got)
	}
}
