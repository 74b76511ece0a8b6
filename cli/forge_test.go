package cli_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/tenon-dev/tenon/cli"
	"github.com/tenon-dev/tenon/examples/hello"
	"github.com/tenon-dev/tenon/server"
)

func TestForgeSettings(t *testing.T) {
	const appID = "ari:cloud:ecosystem::app/8db33809-1f32-48bb-8c52-5877dab48107"
	base := []string{"--base-url", "https://app.example.com", "--secret-key-file", "k"}
	cfg, err := cli.LoadConfig(base, env(map[string]string{"TENON_FORGE_APP_ID": appID}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ForgeAppID != appID || cfg.ForgeJWKSURL != "" || cfg.Source["forge-app-id"] != "env" {
		t.Errorf("production with an app id: %q %q", cfg.ForgeAppID, cfg.ForgeJWKSURL)
	}
	dev := []string{"--environment", "development", "--base-url", "http://127.0.0.1:8080", "--secret-key-file", "k",
		"--install-keys-url", "http://127.0.0.1:8081/connect-install-keys"}
	cfg, err = cli.LoadConfig(append(dev, "--forge-app-id", appID, "--forge-jwks-url", "http://127.0.0.1:8081/forge/.well-known/jwks.json"), env(nil), io.Discard)
	if err != nil || cfg.ForgeJWKSURL != "http://127.0.0.1:8081/forge/.well-known/jwks.json" {
		t.Errorf("development with the fake's JWKS: %v", err)
	}
	bad := []struct {
		name string
		args []string
		want string
	}{
		{"malformed app id", append(base, "--forge-app-id", "my-forge-app"), "TENON_FORGE_APP_ID"},
		{"JWKS without app id", append(base, "--forge-jwks-url", "https://keys.example.com/jwks.json"), "TENON_FORGE_APP_ID"},
		{"http JWKS in production", append(base, "--forge-app-id", appID, "--forge-jwks-url", "http://keys.example.com/jwks.json"), "must use https"},
		{"http JWKS off loopback in development", append(dev, "--forge-app-id", appID, "--forge-jwks-url", "http://fake.example.com/jwks.json"), "http only reaches a server on this machine"},
		{"JWKS not a URL", append(base, "--forge-app-id", appID, "--forge-jwks-url", "/jwks.json"), "absolute"},
		{"development without JWKS", append(dev, "--forge-app-id", appID), "development has no default Forge JWKS"},
	}
	for _, tt := range bad {
		_, err := cli.LoadConfig(tt.args, env(nil), io.Discard)
		var ce *cli.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want a problem mentioning %q", tt.name, err, tt.want)
		}
	}
}

func TestPureForgeApp(t *testing.T) {
	for _, tc := range []struct {
		name     string
		manifest string
		want     bool
	}{
		{"pure Forge", "app:\n  id: ari:cloud:ecosystem::app/x\nmodules: {}\n", true},
		{"Connect on Forge: connectModules", "app:\n  id: x\nconnectModules:\n  jira:webPanels: []\n", false},
		{"Connect on Forge: app.connect", "app:\n  id: x\n  connect:\n    key: k\n", false},
		{"no manifest", "", false},
		{"not YAML", "app: [", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cli.PureForgeApp(manifestApp{tc.manifest}); got != tc.want {
				t.Errorf("pureForgeApp = %v, want %v", got, tc.want)
			}
		})
	}
	if !cli.PureForgeApp(pureForgeApp{}) {
		t.Error("an app without a Connect descriptor is not counted as pure Forge")
	}
	if cli.PureForgeApp(hello.New()) {
		t.Error("an app without a manifest counted as pure Forge")
	}
}

type manifestApp struct{ m string }

func (manifestApp) Descriptor() []byte          { return []byte(`{"key":"k"}`) }
func (manifestApp) Routes(*server.Server) error { return nil }
func (a manifestApp) Manifest() []byte          { return []byte(a.m) }
