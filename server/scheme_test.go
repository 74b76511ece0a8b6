package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tenon-dev/tenon/server"
)

// development is the product policy `--environment development` gives.
func development(c *server.Config) {
	d := server.Development.Defaults()
	c.AllowHTTP, c.AllowedHosts = d.AllowHTTP, d.AllowedHosts
}

// Plain http reaches a product on this machine only, whatever the
// environment and the allow-list say.
func TestHTTPProductURLOnLoopbackOnly(t *testing.T) {
	e := newEnv(t, development)
	for i, base := range []string{"http://localhost:2990/jira", "http://127.0.0.1:8081", "https://acme.atlassian.net"} {
		key := "client-ok-" + string(rune('a'+i))
		body := lifecycleBody(key, "secret", func(m map[string]any) { m["baseUrl"] = base })
		if r := e.lifecycle("installed", body, e.installToken(key, "installed")); r.status != http.StatusNoContent {
			t.Fatalf("%s: %d %s", base, r.status, r.body)
		}
	}
	// *.atlassian.net is on the development allow-list, but not on
	// loopback; the other two only look like loopback.
	for _, ev := range []string{"installed", "uninstalled"} {
		for _, base := range []string{"http://acme.atlassian.net", "http://127.0.0.1.nip.io:8081", "http://app.localhost:8081"} {
			before := e.snapshot()
			body := lifecycleBody("client-new", "attacker-secret", func(m map[string]any) { m["baseUrl"] = base })
			r := e.lifecycle(ev, body, e.installToken("client-new", ev))
			e.expectRefused(r, http.StatusForbidden, before)
			if !strings.Contains(r.body, "http is accepted only for a product on this machine") {
				t.Errorf("%s %s: %s", ev, base, r.body)
			}
		}
	}
}

// A validly signed reinstall cannot move a tenant from https to plain
// http, in any environment; http to https, and http to http on loopback,
// are fine.
func TestReinstallCannotDowngradeToHTTP(t *testing.T) {
	for name, opt := range map[string]envOption{
		"production":  func(*server.Config) {},
		"development": development,
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, opt, func(c *server.Config) { c.AllowedHosts = append(c.AllowedHosts, "localhost") })
			e.install("client-a", "secret-a")
			before := e.snapshot()
			for _, base := range []string{"http://localhost:2990/jira", "http://acme.atlassian.net", "HTTP://acme.atlassian.net"} {
				body := lifecycleBody("client-a", "new-secret", func(m map[string]any) { m["baseUrl"] = base })
				r := e.lifecycle("installed", body, e.installToken("client-a", "installed"))
				e.expectRefused(r, http.StatusBadRequest, before)
				if !strings.Contains(r.body, "installed with an https baseUrl; a reinstall cannot move it to plain http") {
					t.Errorf("%s: %s", base, r.body)
				}
			}
			if got := e.installation("client-a"); got.BaseURL != siteURL || got.SharedSecret != "secret-a" {
				t.Errorf("tenant changed: %s %s", got.BaseURL, got.SharedSecret)
			}
		})
	}
	e := newEnv(t, development)
	body := lifecycleBody("client-dev", "s1", func(m map[string]any) { m["baseUrl"] = "http://localhost:2990/jira" })
	if r := e.lifecycle("installed", body, e.installToken("client-dev", "installed")); r.status != http.StatusNoContent {
		t.Fatalf("http install: %d %s", r.status, r.body)
	}
	body = lifecycleBody("client-dev", "s2", func(m map[string]any) { m["baseUrl"] = "http://127.0.0.1:2990/jira" })
	if r := e.lifecycle("installed", body, e.installToken("client-dev", "installed")); r.status != http.StatusNoContent {
		t.Fatalf("http to http reinstall: %d %s", r.status, r.body)
	}
	body = lifecycleBody("client-dev", "s3", func(m map[string]any) { m["baseUrl"] = "https://dev.atlassian.net" })
	if r := e.lifecycle("installed", body, e.installToken("client-dev", "installed")); r.status != http.StatusNoContent {
		t.Fatalf("http to https reinstall: %d %s", r.status, r.body)
	}
	if got := e.installation("client-dev"); got.BaseURL != "https://dev.atlassian.net" || got.SharedSecret != "s3" {
		t.Errorf("after the upgrade: %s %s", got.BaseURL, got.SharedSecret)
	}
}
