package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/sqlite"
)

// settingsDB creates a migrated SQLite store and returns its path and a
// way to read one setting.
func settingsDB(t *testing.T) (string, func(name string) (json.RawMessage, error)) {
	t.Helper()
	db := filepath.Join(t.TempDir(), "tenon.db")
	box, err := keyring.New(bytes.Repeat([]byte{7}, keyring.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(db, sqlite.Options{SecretBox: box})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return db, func(name string) (json.RawMessage, error) { return st.Setting(context.Background(), name) }
}

func TestMaintenanceCommands(t *testing.T) {
	db, setting := settingsDB(t)
	vars := map[string]string{"TENON_DB": db}
	run := func(args ...string) string {
		t.Helper()
		code, out, errOut := runCLI(t, vars, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	if out := run("maintenance", "status"); !strings.Contains(out, "maintenance: off") {
		t.Errorf("status before: %q", out)
	}
	run("maintenance", "on", "--until", "2099-01-02T03:04:05Z", "--message", "  Moving to a bigger database.  ")
	raw, err := setting(tenon.SettingMaintenance)
	if err != nil {
		t.Fatal(err)
	}
	var m tenon.Maintenance
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m.Message != "Moving to a bigger database." || !m.Until.Equal(time.Date(2099, 1, 2, 3, 4, 5, 0, time.UTC)) || m.Since.IsZero() {
		t.Errorf("stored %+v", m)
	}
	if out := run("maintenance", "status"); !strings.Contains(out, "maintenance: on since") || !strings.Contains(out, "until 2099-01-02T03:04:05Z") ||
		!strings.Contains(out, "Moving to a bigger database.") {
		t.Errorf("status while on: %q", out)
	}

	before := time.Now()
	run("maintenance", "on", "--until", "30m")
	raw, _ = setting(tenon.SettingMaintenance)
	m = tenon.Maintenance{}
	json.Unmarshal(raw, &m)
	if m.Until.Before(before.Add(29*time.Minute)) || m.Until.After(time.Now().Add(31*time.Minute)) || m.Message != "" {
		t.Errorf("--until 30m stored %+v", m)
	}

	run("maintenance", "off")
	if _, err := setting(tenon.SettingMaintenance); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("after off: %v", err)
	}
}

func TestMaintenanceRefusesBadInput(t *testing.T) {
	db, setting := settingsDB(t)
	missing := filepath.Join(t.TempDir(), "typo.db")
	tests := []struct {
		name string
		vars map[string]string
		args []string
		want string
	}{
		{"until in the past", map[string]string{"TENON_DB": db}, []string{"maintenance", "on", "--until", "2001-01-01T00:00:00Z"}, "not in the future"},
		{"negative duration", map[string]string{"TENON_DB": db}, []string{"maintenance", "on", "--until", "-5m"}, "not in the future"},
		{"until unreadable", map[string]string{"TENON_DB": db}, []string{"maintenance", "on", "--until", "tomorrow"}, "neither an RFC 3339 time"},
		{"message too long", map[string]string{"TENON_DB": db}, []string{"maintenance", "on", "--message", strings.Repeat("x", tenon.MaxNoticeMessage+1)}, "longer than"},
		{"no such database", map[string]string{"TENON_DB": missing}, []string{"maintenance", "on"}, "no database at"},
		{"stray argument", map[string]string{"TENON_DB": db}, []string{"maintenance", "off", "now"}, "unexpected arguments"},
		{"unknown subcommand", map[string]string{"TENON_DB": db}, []string{"maintenance", "maybe"}, "on, off or status"},
		{"notice without message", map[string]string{"TENON_DB": db}, []string{"notice", "set"}, "--message is required"},
		{"notice for a bad tenant", map[string]string{"TENON_DB": db}, []string{"notice", "set", "--tenant", "a\x00b", "--message", "hi"}, "--tenant"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, tc.vars, tc.args...)
			if code == 0 || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d: %s; want an error with %q", code, errOut, tc.want)
			}
		})
	}
	if _, err := setting(tenon.SettingMaintenance); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("a refused command switched maintenance on: %v", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("a mistyped database path was created: %v", err)
	}
}

// The commands read the store from serve's configuration file, which may
// hold every serve setting; no secret key file is needed.
func TestMaintenanceUsesServeConfigFile(t *testing.T) {
	db, setting := settingsDB(t)
	conf := filepath.Join(t.TempDir(), "tenon.conf")
	os.WriteFile(conf, []byte("TENON_BASE_URL=https://app.example.com\nTENON_DB="+db+"\nTENON_SECRET_KEY_FILE=/nonexistent/secret.key\n"), 0o600)
	code, _, errOut := runCLI(t, map[string]string{"TENON_CONFIG": conf}, "maintenance", "on", "--message", "Back at noon.")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if _, err := setting(tenon.SettingMaintenance); err != nil {
		t.Fatalf("not stored in the configured database: %v", err)
	}
}

func TestNoticeCommands(t *testing.T) {
	db, setting := settingsDB(t)
	vars := map[string]string{"TENON_DB": db}
	run := func(args ...string) string {
		t.Helper()
		code, out, errOut := runCLI(t, vars, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	if out := run("notice", "list"); !strings.Contains(out, "no notices") {
		t.Errorf("list before: %q", out)
	}
	run("notice", "set", "--message", "API v1 ends on 1 June.", "--until", "1440h")
	run("notice", "set", "--tenant", "client-a", "--message", "Your site moves on Sunday.")

	var global, tenant tenon.Notice
	raw, err := setting(tenon.SettingNotice)
	if err != nil || json.Unmarshal(raw, &global) != nil || global.Message != "API v1 ends on 1 June." || global.Until.IsZero() {
		t.Errorf("global notice %s, %v", raw, err)
	}
	raw, err = setting(tenon.TenantNoticeSetting("client-a"))
	if err != nil || json.Unmarshal(raw, &tenant) != nil || tenant.Message != "Your site moves on Sunday." || !tenant.Until.IsZero() {
		t.Errorf("tenant notice %s, %v", raw, err)
	}
	out := run("notice", "list")
	if !strings.Contains(out, "every tenant until ") || !strings.Contains(out, "tenant client-a until cleared: Your site moves on Sunday.") {
		t.Errorf("list:\n%s", out)
	}
	run("notice", "clear", "--tenant", "client-a")
	if _, err := setting(tenon.TenantNoticeSetting("client-a")); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("tenant notice after clear: %v", err)
	}
	if _, err := setting(tenon.SettingNotice); err != nil {
		t.Errorf("clearing a tenant's notice removed the global one: %v", err)
	}
	run("notice", "clear")
	if _, err := setting(tenon.SettingNotice); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("global notice after clear: %v", err)
	}
}
