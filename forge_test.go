package tenon_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/tenon-dev/tenon"
)

func TestForgeTenantKey(t *testing.T) {
	tests := []struct {
		cloud, installation, want string
	}{
		{"d0d52620", "ari:cloud:ecosystem::installation/1", "forge:d0d52620"},
		{"", "ari:cloud:ecosystem::installation/1", "forge:ari:cloud:ecosystem::installation/1"},
	}
	for _, tt := range tests {
		got := tenon.ForgeTenantKey(tt.cloud, tt.installation)
		if got != tt.want || !tenon.IsForgeTenantKey(got) {
			t.Errorf("ForgeTenantKey(%q, %q) = %q", tt.cloud, tt.installation, got)
		}
	}
	for _, connect := range []string{"0f4c7e2a-1b2c-4d5e-8f90-123456789abc", "jira:1234", "forgery", ""} {
		if tenon.IsForgeTenantKey(connect) {
			t.Errorf("IsForgeTenantKey(%q)", connect)
		}
	}
	linked := &tenon.ForgeInstallation{ClientKey: "0f4c7e2a"}
	alone := &tenon.ForgeInstallation{ClientKey: tenon.ForgeTenantKey("c", "")}
	var none *tenon.ForgeInstallation
	if !linked.Linked() || alone.Linked() || none.Linked() || (&tenon.ForgeInstallation{}).Linked() {
		t.Error("Linked")
	}
}

func TestForgeContextHidesTokens(t *testing.T) {
	fc := &tenon.ForgeContext{InstallationID: "ari:cloud:ecosystem::installation/1", CloudID: "c", ModuleKey: "panel"}
	fc.SetTokens("system-secret-token", "user-secret-token")
	if fc.SystemToken() != "system-secret-token" || fc.UserToken() != "user-secret-token" {
		t.Fatal("tokens not kept")
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("call", "forge", fc)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("call", "forge", fc)
	outputs := []string{buf.String(), fc.String(), fmt.Sprint(fc), fmt.Sprintf("%v %s %+v %+v", fc, fc, fc, *fc)}
	for _, out := range outputs {
		if strings.Contains(out, "secret-token") {
			t.Errorf("a token was printed: %s", out)
		}
	}
	if !strings.Contains(buf.String(), "installation/1") {
		t.Errorf("the log lacks the installation: %s", buf.String())
	}
}
