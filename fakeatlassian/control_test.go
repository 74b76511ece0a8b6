package fakeatlassian_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tenon-dev/tenon/fakeatlassian"
)

func ctlDo(t *testing.T, method, u string, body any) response {
	t.Helper()
	return do(t, method, u, "", body)
}

// TestControlAPI drives the fake the way a test in another language
// would: only JSON over HTTP.
func TestControlAPI(t *testing.T) {
	t.Parallel()
	f := newFake(t, fakeatlassian.Options{})
	ctl := f.URL() + "/_fake"
	ta := newTestApp(t, f, "ctl-app")

	if r := ctlDo(t, "POST", ctl+"/sites", map[string]any{"name": "ctl", "product": "jira"}); r.Status != http.StatusCreated {
		t.Fatalf("create site: %d %s", r.Status, r.Body)
	}
	if r := ctlDo(t, "POST", ctl+"/sites", map[string]any{"name": "ctl"}); r.Status != http.StatusConflict {
		t.Errorf("duplicate site: %d", r.Status)
	}
	if r := ctlDo(t, "POST", ctl+"/sites", map[string]any{"name": "Bad Name!"}); r.Status != http.StatusBadRequest {
		t.Errorf("bad site name: %d", r.Status)
	}
	if r := ctlDo(t, "POST", ctl+"/sites", map[string]any{"name": "w", "product": "bitbucket"}); r.Status != http.StatusBadRequest {
		t.Errorf("bad product: %d", r.Status)
	}

	install := ctlDo(t, "POST", ctl+"/sites/ctl/apps", map[string]any{"descriptorUrl": ta.descriptorURL()})
	if install.Status != http.StatusCreated {
		t.Fatalf("install: %d %s", install.Status, install.Body)
	}
	app := install.json(t)
	if app["state"] != "enabled" || len(app["sharedSecret"].(string)) < 32 {
		t.Errorf("installed app = %v", app)
	}

	bad := newTestApp(t, f, "bad-app")
	bad.setDescriptor("authentication", map[string]any{"type": "basic"})
	r := ctlDo(t, "POST", ctl+"/sites/ctl/apps", map[string]any{"descriptorUrl": bad.descriptorURL()})
	if r.Status != http.StatusUnprocessableEntity || len(r.json(t)["details"].([]any)) == 0 {
		t.Errorf("invalid descriptor: %d %s", r.Status, r.Body)
	}
	refusing := newTestApp(t, f, "refusing")
	refusing.failEvent("installed", http.StatusInternalServerError)
	if r := ctlDo(t, "POST", ctl+"/sites/ctl/apps", map[string]any{"descriptorUrl": refusing.descriptorURL()}); r.Status != http.StatusBadGateway {
		t.Errorf("refused install: %d %s", r.Status, r.Body)
	}

	created := ctlDo(t, "POST", ctl+"/sites/ctl/issues", map[string]any{"projectKey": "DEMO", "summary": "via control"})
	if created.Status != http.StatusCreated {
		t.Fatalf("create issue: %d %s", created.Status, created.Body)
	}
	key := created.json(t)["key"].(string)
	if r := ctlDo(t, "PUT", ctl+"/sites/ctl/issues/"+key, map[string]any{"status": "In Progress"}); r.Status != http.StatusOK || r.json(t)["status"] != "In Progress" {
		t.Errorf("update issue: %d %s", r.Status, r.Body)
	}
	if r := ctlDo(t, "PUT", ctl+"/sites/ctl/issues/"+key, map[string]any{"status": "Nope"}); r.Status != http.StatusBadRequest {
		t.Errorf("bad status: %d", r.Status)
	}
	if r := ctlDo(t, "DELETE", ctl+"/sites/ctl/issues/"+key, nil); r.Status != http.StatusNoContent {
		t.Errorf("delete issue: %d", r.Status)
	}
	if r := ctlDo(t, "GET", ctl+"/sites/ctl/issues/"+key, nil); r.Status != http.StatusNotFound {
		t.Errorf("deleted issue: %d", r.Status)
	}
	if r := ctlDo(t, "POST", ctl+"/webhooks/wait?timeout=5s", nil); r.Status != http.StatusNoContent {
		t.Errorf("wait webhooks: %d", r.Status)
	}
	if n := len(ta.webhookCalls()); n != 3 {
		t.Errorf("%d webhooks, want created, updated, deleted", n)
	}

	frame := ctlDo(t, "POST", ctl+"/sites/ctl/apps/ctl-app/frame-url", map[string]any{"moduleKey": "issue-panel", "issueKey": "DEMO-1"})
	if frame.Status != http.StatusOK || !strings.Contains(frame.json(t)["url"].(string), "jwt=") {
		t.Errorf("frame url: %d %s", frame.Status, frame.Body)
	}
	if r := ctlDo(t, "POST", ctl+"/sites/ctl/apps/ctl-app/context-token", map[string]any{}); r.Status != http.StatusOK {
		t.Errorf("context token: %d %s", r.Status, r.Body)
	}

	if r := ctlDo(t, "PUT", ctl+"/knobs", map[string]any{"outage": true}); r.Status != http.StatusOK || r.json(t)["outage"] != true {
		t.Errorf("knobs: %d %s", r.Status, r.Body)
	}
	site, _ := f.Site("ctl")
	installed, _ := f.App(site, "ctl-app")
	if r := asApp(t, installed, site, "GET", "/rest/api/3/myself", nil); r.Status != http.StatusServiceUnavailable {
		t.Errorf("outage via control: %d", r.Status)
	}
	if r := ctlDo(t, "PUT", ctl+"/knobs", map[string]any{"outage": false, "failNext": map[string]any{"count": 1, "status": 200}}); r.Status != http.StatusBadRequest {
		t.Errorf("invalid knob: %d", r.Status)
	}
	ctlDo(t, "PUT", ctl+"/knobs", map[string]any{"outage": false})

	calls := ctlDo(t, "GET", ctl+"/calls?kind=lifecycle&app=ctl-app", nil)
	var list []fakeatlassian.Call
	if err := jsonUnmarshal(calls.Body, &list); err != nil || len(list) != 2 || list[0].Event != "installed" || list[1].Event != "enabled" {
		t.Errorf("lifecycle calls: %s", calls.Body)
	}

	for _, step := range []struct{ method, path, state string }{
		{"POST", "/disable", "disabled"}, {"POST", "/enable", "enabled"}, {"POST", "/reinstall", "enabled"}, {"DELETE", "", "uninstalled"},
	} {
		r := ctlDo(t, step.method, ctl+"/sites/ctl/apps/ctl-app"+step.path, nil)
		if r.Status != http.StatusOK || r.json(t)["state"] != step.state {
			t.Errorf("%s %s: %d %s", step.method, step.path, r.Status, r.Body)
		}
	}
	if r := ctlDo(t, "POST", ctl+"/sites/ctl/apps/ctl-app/enable", nil); r.Status != http.StatusConflict {
		t.Errorf("enable uninstalled: %d", r.Status)
	}
	if r := ctlDo(t, "POST", ctl+"/keys/rotate", nil); r.Status != http.StatusOK || r.json(t)["kid"] == "" {
		t.Errorf("rotate: %d", r.Status)
	}
	if r := ctlDo(t, "GET", ctl+"/no/such/route", nil); r.Status != http.StatusNotFound || r.json(t)["error"] == nil {
		t.Errorf("unknown route: %d %s", r.Status, r.Body)
	}
	if r := ctlDo(t, "GET", ctl+"/sites/nope/apps", nil); r.Status != http.StatusNotFound {
		t.Errorf("unknown site: %d", r.Status)
	}
	big := `{"name":"` + strings.Repeat("x", 2<<20) + `"}`
	if r := ctlDo(t, "POST", ctl+"/sites", big); r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("large body: %d", r.Status)
	}
	if r := ctlDo(t, "POST", ctl+"/sites", "not json"); r.Status != http.StatusBadRequest {
		t.Errorf("bad JSON: %d", r.Status)
	}
	info := ctlDo(t, "GET", ctl, nil).json(t)
	if info["keyServerUrl"] != f.KeyServerURL() || info["authServerUrl"] != f.AuthServerURL() {
		t.Errorf("info = %v", info)
	}
	// The control API is not part of the call record.
	for _, c := range f.Calls() {
		if strings.HasPrefix(c.URL, "/_fake") {
			t.Errorf("control call recorded: %+v", c)
		}
	}
}
