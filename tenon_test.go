package tenon_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tenon-dev/tenon"
)

func TestErrorCodeAndMessage(t *testing.T) {
	inner := tenon.Errorf(tenon.ENOTFOUND, "No such issue.")
	wrapped := fmt.Errorf("loading: %w", inner)
	plain := errors.New("disk on fire: password=hunter2")
	tests := []struct {
		err      error
		code     string
		message  string
		internal bool
	}{
		{nil, "", "", false},
		{inner, tenon.ENOTFOUND, "No such issue.", false},
		{wrapped, tenon.ENOTFOUND, "No such issue.", false},
		{plain, tenon.EINTERNAL, "Internal error.", true},
		{tenon.WrapError(tenon.EUNAVAILABLE, "Jira is unreachable.", plain), tenon.EUNAVAILABLE, "Jira is unreachable.", false},
	}
	for _, tc := range tests {
		if got := tenon.ErrorCode(tc.err); got != tc.code {
			t.Errorf("ErrorCode(%v) = %q, want %q", tc.err, got, tc.code)
		}
		msg := tenon.ErrorMessage(tc.err)
		if msg != tc.message {
			t.Errorf("ErrorMessage(%v) = %q, want %q", tc.err, msg, tc.message)
		}
		if strings.Contains(msg, "hunter2") {
			t.Errorf("message leaks the cause: %q", msg)
		}
	}
	if w := tenon.WrapError(tenon.EUNAVAILABLE, "x", plain); !errors.Is(w, plain) {
		t.Error("WrapError does not unwrap to its cause")
	}
}

func TestValidateKey(t *testing.T) {
	ok := []string{"a", "checklist/DEMO-1", strings.Repeat("k", tenon.MaxKeyLength), "ключ"}
	bad := []string{"", strings.Repeat("k", tenon.MaxKeyLength+1), "nul\x00byte", "\xff\xfe"}
	for _, k := range ok {
		if err := tenon.ValidateKey(k); err != nil {
			t.Errorf("ValidateKey(%q) = %v", k, err)
		}
	}
	for _, k := range bad {
		if err := tenon.ValidateKey(k); tenon.ErrorCode(err) != tenon.EINVALID {
			t.Errorf("ValidateKey(%q) = %v, want EINVALID", k, err)
		}
	}
}

func TestValidateValue(t *testing.T) {
	if err := tenon.ValidateValue(json.RawMessage(`{"a":1}`)); err != nil {
		t.Error(err)
	}
	if err := tenon.ValidateValue(json.RawMessage(`{"a":`)); tenon.ErrorCode(err) != tenon.EINVALID {
		t.Errorf("broken JSON: %v", err)
	}
	big := json.RawMessage(`"` + strings.Repeat("x", tenon.MaxValueSize) + `"`)
	if err := tenon.ValidateValue(big); tenon.ErrorCode(err) != tenon.ETOOLARGE {
		t.Errorf("oversized value: %v", err)
	}
}

func TestStatesAndRedaction(t *testing.T) {
	for _, s := range []tenon.State{tenon.StateEnabled, tenon.StateDisabled, tenon.StateUninstalled} {
		if !s.Valid() {
			t.Errorf("%s not valid", s)
		}
	}
	if tenon.State("deleted").Valid() {
		t.Error("unknown state valid")
	}
	in := &tenon.Installation{ClientKey: "c", SharedSecret: "s3cret", State: tenon.StateEnabled, Payload: json.RawMessage(`{"sharedSecret":"s3cret"}`)}
	r := in.Redacted()
	if strings.Contains(fmt.Sprintf("%+v", r), "s3cret") {
		t.Errorf("Redacted keeps the secret: %+v", r)
	}
	if in.SharedSecret != "s3cret" {
		t.Error("Redacted changed the original")
	}
	if !in.Active() || (&tenon.Installation{State: tenon.StateDisabled}).Active() {
		t.Error("Active is wrong")
	}
}
