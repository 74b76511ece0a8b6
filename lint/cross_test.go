package lint_test

import (
	"strings"
	"testing"

	"github.com/tenon-dev/tenon/lint"
)

// The routes an app serving testdata/base.json and base.yml registers.
func baseRoutes() []lint.Route {
	return []lint.Route{
		{Kind: "public", Pattern: "GET /static/"},
		{Kind: "module", Pattern: "GET /page"},
		{Kind: "api", Pattern: "GET /api/items"},
		{Kind: "webhook", Pattern: "POST /hooks/deleted", Event: "jira:issue_deleted"},
		{Kind: "forge-remote", Pattern: "GET /forge/items/{id}"},
		{Kind: "forge-event", Pattern: "POST /forge/events"},
		{Kind: "forge-trigger", Pattern: "POST /forge/nightly"},
	}
}

func TestCrossCheckPasses(t *testing.T) {
	same(t, lint.App(lint.Input{
		Descriptor: []byte(readFile(t, "testdata/base.json")), DescriptorFile: "d.json",
		Manifest: []byte(readFile(t, "testdata/base.yml")), ManifestFile: "m.yml",
		Routes: baseRoutes(),
	}), nil)
}

func TestCrossCheckProblems(t *testing.T) {
	desc, man := readFile(t, "testdata/base.json"), readFile(t, "testdata/base.yml")
	replace := func(routes []lint.Route, pattern string, with ...lint.Route) []lint.Route {
		out := []lint.Route{}
		for _, r := range routes {
			if r.Pattern != pattern {
				out = append(out, r)
			}
		}
		return append(out, with...)
	}
	for _, tc := range []struct {
		name      string
		desc, man string
		routes    []lint.Route
		want      []string
	}{
		{"module url without route", desc, man, replace(baseRoutes(), "GET /page"), []string{
			`d.json:10:60: modules.generalPages[0].url: no route serves GET /page; register it with Module("GET /page", ...)`,
		}},
		{"module url served for another method", desc, man, replace(baseRoutes(), "GET /page", lint.Route{Kind: "module", Pattern: "POST /page"}), []string{
			`d.json:8:3: warning: Module route POST /page is the url of no module: the product never loads it (fine if the app links to it itself)`,
			`d.json:10:60: modules.generalPages[0].url: no route serves GET /page (routes serve it with POST only)`,
		}},
		{"module url served by an API route", desc, man, replace(baseRoutes(), "GET /page", lint.Route{Kind: "api", Pattern: "GET /page"}), []string{
			`d.json:10:60: modules.generalPages[0].url: GET /page is served by a api route, which refuses the iframe token the product sends; register it with Module`,
		}},
		{"webhook url without route", desc, man, replace(baseRoutes(), "POST /hooks/deleted"), []string{
			`d.json:13:47: modules.webhooks[0].url: no route serves POST /hooks/deleted; register it with OnWebhook("jira:issue_deleted", ...) or Webhook("/hooks/deleted", ...)`,
		}},
		{"webhook url served by a module route", desc, man, replace(baseRoutes(), "POST /hooks/deleted", lint.Route{Kind: "module", Pattern: "POST /hooks/deleted"}), []string{
			`d.json:13:47: modules.webhooks[0].url: POST /hooks/deleted is served by a module route, which refuses the product's webhook token; register it with OnWebhook or Webhook`,
		}},
		{"OnWebhook event not declared", desc, man, append(baseRoutes(), lint.Route{Kind: "webhook", Event: "jira:issue_created"}), []string{
			`d.json:12:5: OnWebhook("jira:issue_created"): the descriptor declares no webhook for this event; add {"event": "jira:issue_created", "url": "/..."} to modules.webhooks`,
		}},
		{"OnWebhook event, descriptor without webhooks", edit(t, desc, `"webhooks": [`, `"webhook": [`), man,
			append(replace(baseRoutes(), "POST /hooks/deleted"), lint.Route{Kind: "webhook", Event: "jira:issue_deleted"}), []string{
				`d.json:8:3: OnWebhook("jira:issue_deleted"): the descriptor declares no webhook for this event; add {"event": "jira:issue_deleted", "url": "/..."} to modules.webhooks`,
				`d.json:12:5: unknown module type "webhook"; did you mean "webhooks"?`,
			}},
		{"Webhook route no webhook names", desc, man, append(baseRoutes(), lint.Route{Kind: "webhook", Pattern: "POST /hooks/other"}), []string{
			`d.json:12:5: Webhook route POST /hooks/other is the url of no webhook in modules.webhooks: the product sends only the webhooks the descriptor declares`,
		}},
		{"endpoint path without Forge route", desc, man, replace(baseRoutes(), "POST /forge/events"), []string{
			`m.yml:19:15: modules.endpoint[0].route.path: no Forge route serves POST /forge/events; register it with ForgeEvent("/forge/events", ...)`,
		}},
		{"ForgeEvent route no endpoint names", desc, man, append(baseRoutes(), lint.Route{Kind: "forge-event", Pattern: "POST /forge/other"}), []string{
			`m.yml:15:3: ForgeEvent route POST /forge/other is the route.path of no endpoint: Forge delivers events and triggers only to an endpoint's route.path; add an endpoint with route: {path: /forge/other} and a trigger naming it`,
		}},
		{"scheduled trigger endpoint served by ForgeEvent", desc, man, replace(baseRoutes(), "POST /forge/nightly", lint.Route{Kind: "forge-event", Pattern: "POST /forge/nightly"}), []string{
			`m.yml:23:15: modules.endpoint[1].route.path: POST /forge/nightly is served by a forge-event route, but endpoint "nightly-run" receives trigger deliveries; register it with ForgeTrigger`,
		}},
		{"endpoint path served by a Connect route", desc, man, replace(baseRoutes(), "POST /forge/events", lint.Route{Kind: "api", Pattern: "POST /forge/events"}), []string{
			`m.yml:19:15: modules.endpoint[0].route.path: POST /forge/events is served by a api route, which refuses Forge Invocation Tokens; register it with ForgeEvent or ForgeTrigger`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			same(t, lint.App(lint.Input{
				Descriptor: []byte(tc.desc), DescriptorFile: "d.json",
				Manifest: []byte(tc.man), ManifestFile: "m.yml",
				Routes: tc.routes,
			}), tc.want)
		})
	}
}

func TestHasErrorsIgnoresWarnings(t *testing.T) {
	w := []lint.Problem{{File: "f", Line: 1, Col: 1, Severity: lint.Warning, Msg: "m"}}
	if lint.HasErrors(w) {
		t.Error("a warning counts as an error")
	}
	if got := w[0].String(); got != "f:1:1: warning: m" {
		t.Errorf("String = %q", got)
	}
	if !lint.HasErrors(append(w, lint.Problem{Severity: lint.Error})) {
		t.Error("an error is not found")
	}
}

// A pure Forge app has no descriptor: its manifest is checked against its
// Forge routes, and nothing is said about a descriptor.
func TestCrossCheckPureForge(t *testing.T) {
	var forgeRoutes []lint.Route
	for _, r := range baseRoutes() {
		if r.Kind == "forge-remote" || r.Kind == "forge-event" || r.Kind == "forge-trigger" {
			forgeRoutes = append(forgeRoutes, r)
		}
	}
	same(t, lint.App(lint.Input{Manifest: []byte(readFile(t, "testdata/base.yml")), ManifestFile: "m.yml", Routes: forgeRoutes}), nil)
	// A manifest endpoint the app serves no route for is still found.
	var without []lint.Route
	for _, r := range forgeRoutes {
		if r.Pattern != "POST /forge/events" {
			without = append(without, r)
		}
	}
	probs := lint.App(lint.Input{Manifest: []byte(readFile(t, "testdata/base.yml")), ManifestFile: "m.yml", Routes: without})
	if !lint.HasErrors(probs) {
		t.Errorf("a manifest endpoint without its route passed: %v", probs)
	}
	for _, p := range probs {
		if strings.Contains(p.String(), "descriptor") {
			t.Errorf("a problem of a descriptor the app does not have: %s", p)
		}
	}
}
