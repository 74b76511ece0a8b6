package tenon_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
)

func TestValidateSetting(t *testing.T) {
	names := []struct {
		name string
		ok   bool
	}{
		{"maintenance", true},
		{tenon.TenantNoticeSetting(strings.Repeat("k", 512)), true},
		{"", false},
		{strings.Repeat("n", tenon.MaxSettingNameLength+1), false},
		{"caf\xe9", false},
		{"a\x00b", false},
	}
	for _, tc := range names {
		if err := tenon.ValidateSettingName(tc.name); (err == nil) != tc.ok || (err != nil && tenon.ErrorCode(err) != tenon.EINVALID) {
			t.Errorf("ValidateSettingName(%.20q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	values := []struct {
		value string
		code  string
	}{
		{`{"message":"hi"}`, ""},
		{`{"message":`, tenon.EINVALID},
		{``, tenon.EINVALID},
		{`"` + strings.Repeat("v", tenon.MaxSettingSize) + `"`, tenon.ETOOLARGE},
	}
	for _, tc := range values {
		if got := tenon.ErrorCode(tenon.ValidateSettingValue(json.RawMessage(tc.value))); got != tc.code {
			t.Errorf("ValidateSettingValue(%.20q) code %q, want %q", tc.value, got, tc.code)
		}
	}
}

func TestValidateNoticeMessage(t *testing.T) {
	tests := []struct {
		msg string
		ok  bool
	}{
		{"", true},
		{"Version 1 ends on 1 June.", true},
		{strings.Repeat("ü", tenon.MaxNoticeMessage), true}, // characters, not bytes
		{strings.Repeat("x", tenon.MaxNoticeMessage+1), false},
		{"bad \xff byte", false},
		{"nul\x00", false},
	}
	for _, tc := range tests {
		if err := tenon.ValidateNoticeMessage(tc.msg); (err == nil) != tc.ok {
			t.Errorf("ValidateNoticeMessage(%.20q) = %v, want ok=%v", tc.msg, err, tc.ok)
		}
	}
}

func TestMaintenanceAndNoticeActive(t *testing.T) {
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		maintenance *tenon.Maintenance
		notice      *tenon.Notice
		want        bool
	}{
		{"no maintenance", nil, nil, false},
		{"maintenance without end", &tenon.Maintenance{}, nil, true},
		{"maintenance before its end", &tenon.Maintenance{Until: now.Add(time.Second)}, nil, true},
		{"maintenance at its end", &tenon.Maintenance{Until: now}, nil, false},
		{"notice without end", nil, &tenon.Notice{Message: "m"}, true},
		{"notice without message", nil, &tenon.Notice{}, false},
		{"notice after its end", nil, &tenon.Notice{Message: "m", Until: now.Add(-time.Second)}, false},
	}
	for _, tc := range tests {
		var got bool
		if tc.notice != nil {
			got = tc.notice.Active(now)
		} else {
			got = tc.maintenance.Active(now)
		}
		if got != tc.want {
			t.Errorf("%s: Active = %v, want %v", tc.name, got, tc.want)
		}
	}
}
