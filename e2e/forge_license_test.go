package e2e_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/fakeatlassian"
)

// Licensing from the Forge License API: a production token without
// app.license (Forge leaves it out of many calls) makes serve ask the
// License API. Its answer licenses or refuses the route; an answer that
// cannot be had refuses it with 503 and Retry-After, never serves it.

func TestForgeLicenseAPISQLite(t *testing.T) {
	testForgeLicenseAPI(t, func(t *testing.T, dir string) string { return filepath.Join(dir, "tenon.db") })
}

func TestForgeLicenseAPIPostgreSQL(t *testing.T) { testForgeLicenseAPI(t, postgresDB) }

func testForgeLicenseAPI(t *testing.T, db func(*testing.T, string) string) {
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	e := newForgeEnv(t, db, func(o *forgeEnvOptions) { o.now, o.forgeOnly = clk.Now, true })
	ctx := context.Background()
	site := e.addSite("hooli", fakeatlassian.ProductJira)
	// No License: the FITs carry no app.license, as for events and many
	// invocations in production.
	if _, err := e.fake.InstallForge(site, fakeatlassian.ForgeInstallOptions{RemoteBaseURL: e.appURL, Environment: fakeatlassian.ForgeProduction}); err != nil {
		t.Fatal(err)
	}
	if r := lifecycleEvent(e, site, "avi:forge:installed:app", "1.0.0"); r.Status != http.StatusNoContent {
		t.Fatalf("installed: %+v", r)
	}
	summary := func() *fakeatlassian.ForgeResponse {
		t.Helper()
		resp, err := e.fake.InvokeRemote(ctx, site, fakeatlassian.ForgeInvocation{
			Method: http.MethodGet, Path: "/forge/checklists/" + issueKey + "/summary",
			IssueKey: issueKey, ModuleKey: "checklist-panel",
		})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	licenseCalls := func() int {
		return len(e.calls(func(c fakeatlassian.Call) bool { return strings.HasSuffix(c.URL, "/forge/installation/v1/license") }))
	}
	const unavailable = "The app cannot check the site's license right now"
	for _, tc := range []struct {
		name   string
		set    func()
		status int
		text   string
	}{
		{"active", func() { e.fake.SetForgeLicenseAPI(site, "", fakeatlassian.ForgeLicenseActive) }, http.StatusOK, ""},
		{"inactive", func() { e.fake.SetForgeLicenseAPI(site, "", fakeatlassian.ForgeLicenseInactive) }, http.StatusForbidden, "license"},
		{"no license", func() { e.fake.SetForgeLicenseAPI(site, "", fakeatlassian.ForgeLicenseNone) }, http.StatusForbidden, "license"},
		{"malformed", func() { e.fake.SetForgeLicenseAPI(site, "", fakeatlassian.ForgeLicenseMalformed) }, http.StatusServiceUnavailable, unavailable},
		{"401", func() {
			e.fake.SetForgeLicenseAPI(site, "", fakeatlassian.ForgeLicenseActive)
			e.fake.FailNext(1, http.StatusUnauthorized)
		}, http.StatusServiceUnavailable, unavailable},
		{"404", func() { e.fake.FailNext(1, http.StatusNotFound) }, http.StatusServiceUnavailable, unavailable},
		{"outage", func() { e.fake.SetOutage(true) }, http.StatusServiceUnavailable, unavailable},
	} {
		// Past the cache of the last answer.
		clk.Advance(6 * time.Minute)
		tc.set()
		before := licenseCalls()
		resp := summary()
		if resp.Status != tc.status || !strings.Contains(string(resp.Body), tc.text) {
			t.Errorf("%s: %d %s, want %d %q", tc.name, resp.Status, resp.Body, tc.status, tc.text)
		}
		if tc.status == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", tc.name)
		}
		if licenseCalls() == before {
			t.Errorf("%s: the License API was not asked", tc.name)
		}
		if tc.name == "401" {
			// The refused token was dropped: the next call brings a new
			// one, and the answer comes again.
			e.fake.FailNext(0, 0)
		}
	}
	e.fake.SetOutage(false)

	// A cached answer is reused within its five minutes.
	clk.Advance(6 * time.Minute)
	e.fake.SetForgeLicenseAPI(site, "", fakeatlassian.ForgeLicenseInactive)
	for deadline := time.Now().Add(20 * time.Second); summary().Status != http.StatusForbidden; {
		// The breaker of the outage above may still be open.
		if time.Now().After(deadline) {
			t.Fatal("the License API was not asked again after the outage")
		}
		clk.Advance(time.Minute)
		time.Sleep(50 * time.Millisecond)
	}
	before := licenseCalls()
	e.fake.SetForgeLicenseAPI(site, "", fakeatlassian.ForgeLicenseActive)
	if r := summary(); r.Status != http.StatusForbidden || licenseCalls() != before {
		t.Errorf("within the cache: %d, %d License API calls after %d", r.Status, licenseCalls(), before)
	}
}
