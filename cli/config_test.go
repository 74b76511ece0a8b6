package cli_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/cli"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tenon.conf")
	os.WriteFile(file, []byte(`# comment
TENON_ADDR=:7000
TENON_BASE_URL="https://file.example.com"
TENON_DB=/var/lib/tenon/file.db
TENON_SECRET_KEY_FILE=/etc/tenon/secret.key
`), 0o600)
	cfg, err := cli.LoadConfig(
		[]string{"--config", file, "--addr", ":9000"},
		env(map[string]string{"TENON_ADDR": ":8000", "TENON_DB": "/env.db"}),
		io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want, src string }{
		{"addr", cfg.Addr, ":9000", "flag"},
		{"db", cfg.DB, "/env.db", "env"},
		{"base-url", cfg.BaseURL, "https://file.example.com", "file"},
		{"environment", cfg.Environment, "production", "default"},
	}
	for _, c := range checks {
		if c.got != c.want || cfg.Source[c.name] != c.src {
			t.Errorf("%s = %q from %s, want %q from %s", c.name, c.got, cfg.Source[c.name], c.want, c.src)
		}
	}
	if cfg.ShutdownTimeout != 20*time.Second {
		t.Errorf("shutdown timeout %v", cfg.ShutdownTimeout)
	}
}

func TestConfigAllowedHostsList(t *testing.T) {
	cfg, err := cli.LoadConfig([]string{
		"--base-url", "https://app.example.com", "--secret-key-file", "k",
		"--allowed-hosts", " *.atlassian.net, Jira.Example.com ,,",
	}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.AllowedHosts, "|") != "*.atlassian.net|jira.example.com" {
		t.Errorf("hosts %q", cfg.AllowedHosts)
	}
}

func TestConfigErrorsSayWhatToSet(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"nothing set", nil, nil, []string{"TENON_BASE_URL", "TENON_SECRET_KEY_FILE"}},
		{"http in production", []string{"--base-url", "http://app.example.com", "--secret-key-file", "k"}, nil,
			[]string{"must use https in production"}},
		{"development without key server", []string{"--base-url", "http://127.0.0.1:8080", "--secret-key-file", "k"},
			map[string]string{"TENON_ENVIRONMENT": "development"}, []string{"TENON_INSTALL_KEYS_URL"}},
		{"unknown environment", []string{"--base-url", "https://a.example.com", "--secret-key-file", "k", "--environment", "prod"}, nil,
			[]string{"production, staging or development"}},
		{"relative base url", []string{"--base-url", "app.example.com", "--secret-key-file", "k"}, nil,
			[]string{"absolute http(s) URL"}},
		{"http key server in staging", []string{"--base-url", "https://a.example.com", "--secret-key-file", "k",
			"--environment", "staging", "--install-keys-url", "http://keys.example.com"}, nil, []string{"must use https in staging"}},
		{"http key server off loopback in development", []string{"--base-url", "http://127.0.0.1:8080", "--secret-key-file", "k",
			"--environment", "development", "--install-keys-url", "http://keys.example.com"}, nil, []string{"TENON_INSTALL_KEYS_URL must use https (http only reaches a server on this machine"}},
		{"bad duration", []string{"--base-url", "https://a.example.com", "--secret-key-file", "k", "--shutdown-timeout", "soon"}, nil,
			[]string{"duration"}},
		{"stray argument", []string{"--base-url", "https://a.example.com", "--secret-key-file", "k", "extra"}, nil,
			[]string{"unexpected arguments"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cli.LoadConfig(tc.args, env(tc.env), io.Discard)
			if err == nil {
				t.Fatal("configuration accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestConfigFileRejectsUnknownSetting(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tenon.conf")
	os.WriteFile(file, []byte("TENON_BASEURL=https://typo.example.com\n"), 0o600)
	_, err := cli.LoadConfig([]string{"--config", file}, env(nil), io.Discard)
	if err == nil || !strings.Contains(err.Error(), `unknown setting "TENON_BASEURL"`) {
		t.Fatalf("err = %v", err)
	}
}

// The configuration table in the docs must list every setting.
func TestConfigDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/CONFIGURATION.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range cli.Settings() {
		if !strings.Contains(string(doc), "`--"+s.Flag+"`") || !strings.Contains(string(doc), "`"+s.Env+"`") {
			t.Errorf("docs/CONFIGURATION.md lacks --%s / %s", s.Flag, s.Env)
		}
	}
}
