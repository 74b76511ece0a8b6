package e2e_test

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/examples/checklist"
	"github.com/tenon-dev/tenon/fakeatlassian"
)

// The pure Forge app's whole life on a site, on both stores: installed
// through Forge's lifecycle event, used, upgraded, background work as
// the app hours after the last UI invocation, the license lapsing, the
// uninstall; and a Connect site moving to it.

func TestForgeLifecycleSQLite(t *testing.T) {
	testForgeLifecycle(t, func(t *testing.T, dir string) string { return filepath.Join(dir, "tenon.db") })
}

func TestForgeLifecyclePostgreSQL(t *testing.T) { testForgeLifecycle(t, postgresDB) }

// clock is a settable clock shared by the fake and the backend.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func lifecycleEvent(e *env, site *fakeatlassian.Site, eventType, version string) *fakeatlassian.ForgeResponse {
	e.t.Helper()
	inst, err := e.fake.ForgeInstallationOf(site, "")
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := e.fake.SendForgeEvent(context.Background(), site, fakeatlassian.ForgeEventOptions{
		Path: checklist.ForgeLifecyclePath, EventType: eventType, ModuleKey: "checklist-lifecycle",
		Payload: map[string]any{"id": inst.InstallationID, "app": map[string]any{"id": inst.AppID, "version": version}},
	})
	if err != nil {
		e.t.Fatalf("%s: %v", eventType, err)
	}
	return resp
}

func testForgeLifecycle(t *testing.T, db func(*testing.T, string) string) {
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	e := newForgeEnv(t, db, func(o *forgeEnvOptions) { o.now, o.forgeOnly = clk.Now, true })
	ctx := context.Background()
	fs := e.backend.Store.(tenon.ForgeLifecycleStore)
	active := true

	t.Run("PureForge", func(t *testing.T) {
		e := e.withT(t)
		site := e.addSite("initech", fakeatlassian.ProductJira)
		inst, err := e.fake.InstallForge(site, fakeatlassian.ForgeInstallOptions{RemoteBaseURL: e.appURL, License: &active})
		if err != nil {
			t.Fatal(err)
		}
		// An event before the installed event is sent back for later.
		resp, err := e.fake.SendForgeEvent(ctx, site, fakeatlassian.ForgeEventOptions{
			Path: checklist.ForgeEventPath, EventType: "avi:jira:deleted:issue",
			Payload: map[string]any{"issue": map[string]any{"key": "OTHER-1"}},
		})
		if err != nil || resp.Status != http.StatusServiceUnavailable {
			t.Fatalf("event before install: %+v, %v; want 503", resp, err)
		}
		if _, err := fs.ForgeInstallation(ctx, inst.InstallationID); tenon.ErrorCode(err) != tenon.ENOTFOUND {
			t.Fatalf("the refused event recorded the installation: %v", err)
		}
		if r := lifecycleEvent(e, site, "avi:forge:installed:app", "1.0.0"); r.Status != http.StatusNoContent {
			t.Fatalf("installed: %+v", r)
		}
		rec, err := fs.ForgeInstallation(ctx, inst.InstallationID)
		if err != nil || rec.State != tenon.ForgeActive || rec.AppVersion != "1.0.0" || rec.ClientKey != tenon.ForgeTenantKey(site.CloudID, "") {
			t.Fatalf("after installed: %+v, %v", rec, err)
		}
		// Forge's redelivery of the early event is now accepted.
		e.waitWebhooks()
		invoke(e, site, http.MethodPost, issueKey, "/items", map[string]string{"text": "pure Forge"}, http.StatusCreated)
		if r := lifecycleEvent(e, site, "avi:forge:upgraded:app", "2.0.0"); r.Status != http.StatusNoContent {
			t.Fatalf("upgraded: %+v", r)
		}
		if rec, _ := fs.ForgeInstallation(ctx, inst.InstallationID); rec.AppVersion != "2.0.0" || rec.UpgradedAt.IsZero() {
			t.Fatalf("after upgraded: %+v", rec)
		}

		// Hours later every token of the UI invocation has expired; the
		// hourly trigger brings a fresh system token and its job calls
		// Jira as the app.
		clk.Advance(2*time.Hour + time.Minute)
		resp, err = e.fake.RunForgeTrigger(ctx, site, fakeatlassian.ForgeTriggerOptions{Path: checklist.ForgeRefreshPath, ModuleKey: "checklist-refresh"})
		if err != nil || resp.Status != http.StatusAccepted {
			t.Fatalf("trigger: %+v, %v", resp, err)
		}
		summary := func() string {
			resp, err := e.fake.InvokeRemote(ctx, site, fakeatlassian.ForgeInvocation{
				Method: http.MethodGet, Path: "/forge/checklists/" + issueKey + "/summary", IssueKey: issueKey, ModuleKey: "checklist-panel",
			})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != http.StatusOK {
				return "status " + http.StatusText(resp.Status)
			}
			var v struct{ Summary string }
			_ = json.Unmarshal(resp.Body, &v)
			return v.Summary
		}
		for deadline := time.Now().Add(15 * time.Second); summary() == ""; {
			if time.Now().After(deadline) {
				t.Fatal("the refresh job did not store the issue summary")
			}
			time.Sleep(20 * time.Millisecond)
		}

		// The license lapses: the licensed route refuses.
		inactive := false
		if _, err := e.fake.InstallForge(site, fakeatlassian.ForgeInstallOptions{RemoteBaseURL: e.appURL, License: &inactive}); err != nil {
			t.Fatal(err)
		}
		if got := summary(); got != "status Forbidden" {
			t.Fatalf("licensed route with an inactive license: %s", got)
		}

		// Uninstalled: marked, and its calls refused, data kept.
		if r := lifecycleEvent(e, site, "avi:forge:uninstalled:app", ""); r.Status != http.StatusNoContent {
			t.Fatalf("uninstalled: %+v", r)
		}
		if rec, _ := fs.ForgeInstallation(ctx, inst.InstallationID); rec.State != tenon.ForgeUninstalled {
			t.Fatalf("after uninstall: %+v", rec)
		}
		resp, err = e.fake.InvokeRemote(ctx, site, fakeatlassian.ForgeInvocation{Method: http.MethodGet, Path: "/forge/checklists/" + issueKey, IssueKey: issueKey})
		if err != nil || resp.Status != http.StatusForbidden || !strings.Contains(string(resp.Body), "uninstalled") {
			t.Fatalf("a call after uninstall: %+v, %v", resp, err)
		}
		if r := lifecycleEvent(e, site, "avi:forge:installed:app", "2.0.0"); r.Status != http.StatusForbidden && r.Status != http.StatusConflict {
			t.Fatalf("installed event for an uninstalled installation: %+v", r)
		}
		if rec, _ := fs.ForgeInstallation(ctx, inst.InstallationID); rec.State != tenon.ForgeUninstalled {
			t.Fatalf("a refused event changed the installation: %+v", rec)
		}
	})

	t.Run("ConnectSiteMovesToForge", func(t *testing.T) {
		e := e.withT(t)
		site := e.addSite("umbrella", fakeatlassian.ProductJira)
		e.install(site)
		tok := e.contextToken(site, issueKey)
		e.checklist(e.api(http.MethodPost, tok, issueKey, "/items", map[string]string{"text": "from Connect"}), http.StatusCreated)
		if _, err := e.fake.InstallForge(site, fakeatlassian.ForgeInstallOptions{RemoteBaseURL: e.appURL}); err != nil {
			t.Fatal(err)
		}
		if r := lifecycleEvent(e, site, "avi:forge:installed:app", "2.0.0"); r.Status != http.StatusNoContent {
			t.Fatalf("installed: %+v", r)
		}
		if c := invoke(e, site, http.MethodGet, issueKey, "", nil, http.StatusOK); strings.Join(itemTexts(c), "|") != "from Connect" {
			t.Fatalf("the Forge app reads %v", itemTexts(c))
		}
		in := e.tenant(site)
		if in.State != tenon.StateUninstalled || in.SupersededBy == "" {
			t.Fatalf("the Connect tenant after the move: state %s, superseded by %q", in.State, in.SupersededBy)
		}
		// Connect tokens of the superseded tenant are refused.
		if r := e.api(http.MethodGet, tok, issueKey, "", nil); r.status != http.StatusUnauthorized && r.status != http.StatusForbidden {
			t.Fatalf("a Connect call after the move: %s", r)
		}
	})
}
