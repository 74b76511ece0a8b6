package checklist_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
)

func (e *env) putSetting(name string, v any) {
	e.t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.PutSetting(context.Background(), name, raw); err != nil {
		e.t.Fatal(err)
	}
}

// The panel shows the operator's notices for its site and for all sites,
// escaped, and not those of other sites.
func TestPanelShowsNotices(t *testing.T) {
	e := newEnv(t)
	e.putSetting(tenon.SettingNotice, tenon.Notice{Message: "Checklists move to <Forge> on 1 June.", Until: testNow.Add(60 * 24 * time.Hour)})
	e.putSetting(tenon.TenantNoticeSetting(clientKey), tenon.Notice{Message: "Your site's data moves on Sunday."})
	e.putSetting(tenon.TenantNoticeSetting("another-site"), tenon.Notice{Message: "Not for this site."})

	w := e.signed("GET", "/panel", panelQuery("active", "en"), "")
	wantStatus(t, w, http.StatusOK)
	body := w.Body.String()
	for _, want := range []string{
		`<p class="notice announcement" role="note">Your site&#39;s data moves on Sunday.</p>`,
		`<p class="notice announcement" role="note">Checklists move to &lt;Forge&gt; on 1 June.</p>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("panel lacks %s", want)
		}
	}
	if strings.Contains(body, "Not for this site.") {
		t.Error("the panel shows another site's notice")
	}
}

// In maintenance the panel is a notice page inside the iframe, the API
// answers 503, and the product's webhooks are still taken.
func TestPanelInMaintenance(t *testing.T) {
	e := newEnv(t)
	e.putSetting(tenon.SettingMaintenance, tenon.Maintenance{Message: "Upgrading the checklists.", Until: testNow.Add(10 * time.Minute)})
	w := e.signed("GET", "/panel", panelQuery("active", "en"), "")
	wantStatus(t, w, http.StatusServiceUnavailable)
	if !strings.Contains(w.Body.String(), "Upgrading the checklists.") || w.Header().Get("Retry-After") != "600" {
		t.Errorf("maintenance page: Retry-After %q\n%s", w.Header().Get("Retry-After"), w.Body)
	}
	w = e.api("GET", "/api/checklists/DEMO-1", "", demo1Context)
	wantStatus(t, w, http.StatusServiceUnavailable)
	w = e.signed("POST", "/webhooks/issue-deleted", "issueKey=DEMO-1", `{"webhookEvent":"jira:issue_deleted","issue":{"key":"DEMO-1"}}`)
	if w.Code/100 != 2 {
		t.Errorf("webhook during maintenance: %d %s", w.Code, w.Body)
	}
}
