package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tenon-dev/tenon"
)

// testSettings checks tenon.SettingsStore, the optional capability that
// keeps maintenance mode and notices where every node sees them.
func (s *suite) testSettings(t *testing.T) {
	tests := []struct {
		name string
		fn   func(t *testing.T, st tenon.SettingsStore)
	}{
		{"PutGetDelete", s.testSettingPutGetDelete},
		{"Validation", s.testSettingValidation},
		{"List", s.testSettingList},
		{"Concurrent", s.testSettingConcurrent},
		{"SeparateFromTenantData", s.testSettingSeparateFromData},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st, _ := s.store(t)
			ss, ok := st.(tenon.SettingsStore)
			if !ok {
				t.Skipf("%T does not implement tenon.SettingsStore", st)
			}
			tt.fn(t, ss)
		})
	}
}

func (s *suite) testSettingPutGetDelete(t *testing.T, st tenon.SettingsStore) {
	ctx := context.Background()
	if _, err := st.Setting(ctx, tenon.SettingMaintenance); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("Setting of a missing name: %v, want ENOTFOUND", err)
	}
	// Values come back byte for byte; a second put replaces the first.
	for _, v := range []string{` { "message" : "Back soon", "until" : "2026-03-14T16:00:00Z" } `, `{"message":"Zürich 😀"}`, `null`} {
		if err := st.PutSetting(ctx, tenon.SettingMaintenance, json.RawMessage(v)); err != nil {
			t.Fatal(err)
		}
		got, err := st.Setting(ctx, tenon.SettingMaintenance)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != v {
			t.Errorf("Setting = %q, want %q", got, v)
		}
	}
	if err := st.DeleteSetting(ctx, tenon.SettingMaintenance); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Setting(ctx, tenon.SettingMaintenance); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("Setting after DeleteSetting: %v, want ENOTFOUND", err)
	}
	if err := st.DeleteSetting(ctx, tenon.SettingMaintenance); err != nil {
		t.Errorf("deleting a missing setting: %v", err)
	}
}

func (s *suite) testSettingValidation(t *testing.T, st tenon.SettingsStore) {
	ctx := context.Background()
	longest := strings.Repeat("n", tenon.MaxSettingNameLength)
	largest := `"` + strings.Repeat("v", tenon.MaxSettingSize-2) + `"`
	if err := st.PutSetting(ctx, longest, json.RawMessage(largest)); err != nil {
		t.Fatalf("the largest value under the longest name: %v", err)
	}
	if got, err := st.Setting(ctx, longest); err != nil || len(got) != tenon.MaxSettingSize {
		t.Errorf("the largest value under the longest name: %d bytes, %v", len(got), err)
	}
	badNames := map[string]string{
		"empty":    "",
		"too long": longest + "n",
		"not UTF8": "caf\xe9",
		"NUL":      "a\x00b",
	}
	for name, n := range badNames {
		wantCode(t, "PutSetting with "+name+" name", st.PutSetting(ctx, n, json.RawMessage(`1`)), tenon.EINVALID)
		wantCode(t, "DeleteSetting with "+name+" name", st.DeleteSetting(ctx, n), tenon.EINVALID)
		_, err := st.Setting(ctx, n)
		wantCode(t, "Setting with "+name+" name", err, tenon.ENOTFOUND)
	}
	badValues := map[string]struct{ value, code string }{
		"empty":     {"", tenon.EINVALID},
		"not JSON":  {"{'a': 1}", tenon.EINVALID},
		"truncated": {`{"a":`, tenon.EINVALID},
		"too large": {`"` + strings.Repeat("v", tenon.MaxSettingSize-1) + `"`, tenon.ETOOLARGE},
	}
	for name, tt := range badValues {
		wantCode(t, "PutSetting with "+name+" value", st.PutSetting(ctx, "k", json.RawMessage(tt.value)), tt.code)
	}
	if _, err := st.Setting(ctx, "k"); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("a refused value was stored: %v", err)
	}
	_, err := st.ListSettings(ctx, "bad\x00prefix")
	wantCode(t, "ListSettings with a NUL in the prefix", err, tenon.EINVALID)
}

func (s *suite) testSettingList(t *testing.T, st tenon.SettingsStore) {
	ctx := context.Background()
	names := []string{
		tenon.SettingNotice,
		tenon.TenantNoticeSetting("tenant-b"),
		tenon.TenantNoticeSetting("tenant-a"),
		tenon.TenantNoticeSetting("tenant_%"), // LIKE metacharacters are plain
		"notices",
		tenon.SettingMaintenance,
		"notice0",
	}
	for i, n := range names {
		if err := st.PutSetting(ctx, n, json.RawMessage(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	list := func(prefix string) []string {
		t.Helper()
		kvs, err := st.ListSettings(ctx, prefix)
		if err != nil {
			t.Fatalf("ListSettings(%q): %v", prefix, err)
		}
		var got []string
		for _, kv := range kvs {
			i := slices.Index(names, kv.Key)
			if i < 0 || string(kv.Value) != fmt.Sprint(i) {
				t.Errorf("ListSettings(%q): %s = %s was never stored", prefix, kv.Key, kv.Value)
			}
			got = append(got, kv.Key)
		}
		return got
	}
	all := slices.Clone(names)
	slices.Sort(all)
	if got := list(""); !slices.Equal(got, all) {
		t.Errorf("ListSettings(\"\") = %q, want %q", got, all)
	}
	want := []string{"notice/tenant-a", "notice/tenant-b", "notice/tenant_%"}
	if got := list(tenon.SettingTenantNoticePrefix); !slices.Equal(got, want) {
		t.Errorf("ListSettings(notice/) = %q, want %q", got, want)
	}
	if got := list("notice/tenant_"); !slices.Equal(got, []string{"notice/tenant_%"}) {
		t.Errorf("ListSettings(notice/tenant_) = %q: _ must not match any character", got)
	}
	if got := list("nothing"); len(got) != 0 {
		t.Errorf("ListSettings(nothing) = %q, want none", got)
	}
}

func (s *suite) testSettingConcurrent(t *testing.T, st tenon.SettingsStore) {
	ctx := context.Background()
	const writers = 8
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- st.PutSetting(ctx, tenon.SettingNotice, json.RawMessage(fmt.Sprintf(`{"message":"writer %d"}`, i)))
			_, err := st.ListSettings(ctx, "")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.Setting(ctx, tenon.SettingNotice)
	if err != nil {
		t.Fatal(err)
	}
	var n tenon.Notice
	if err := json.Unmarshal(got, &n); err != nil || !strings.HasPrefix(n.Message, "writer ") {
		t.Errorf("after concurrent puts the value is %s (%v), want one writer's value whole", got, err)
	}
}

// Settings and tenant data are different namespaces: a tenant's app data
// can never be read or overwritten as a setting, nor the other way round.
func (s *suite) testSettingSeparateFromData(t *testing.T, st tenon.SettingsStore) {
	ctx := context.Background()
	ds, ok := st.(tenon.DataStore)
	if !ok {
		t.Skip("not a DataStore")
	}
	if err := ds.PutValue(ctx, "", tenon.SettingMaintenance, json.RawMessage(`"data"`)); err != nil && tenon.ErrorCode(err) != tenon.EINVALID {
		t.Fatal(err)
	}
	if err := ds.PutValue(ctx, "tenant-a", tenon.SettingMaintenance, json.RawMessage(`"data"`)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Setting(ctx, tenon.SettingMaintenance); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("tenant data under the setting's name is visible as a setting: %v", err)
	}
	if err := st.PutSetting(ctx, tenon.SettingMaintenance, json.RawMessage(`"setting"`)); err != nil {
		t.Fatal(err)
	}
	if v, err := ds.GetValue(ctx, "tenant-a", tenon.SettingMaintenance); err != nil || string(v) != `"data"` {
		t.Errorf("tenant data changed by PutSetting: %s, %v", v, err)
	}
}
