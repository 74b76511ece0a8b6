package lint_test

import (
	"os"
	"strings"
	"testing"

	"github.com/tenon-dev/tenon/lint"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// edit replaces old (which must be there once) by new.
func edit(t *testing.T, s, old, new string) string {
	t.Helper()
	if strings.Count(s, old) != 1 {
		t.Fatalf("%q is not in the fixture exactly once", old)
	}
	return strings.Replace(s, old, new, 1)
}

func strs(probs []lint.Problem) []string {
	out := []string{}
	for _, p := range probs {
		out = append(out, p.String())
	}
	return out
}

func same(t *testing.T, got []lint.Problem, want []string) {
	t.Helper()
	g := strs(got)
	if strings.Join(g, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(g, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestExamplesPass(t *testing.T) {
	for _, f := range []string{"../examples/checklist/atlassian-connect.json", "../examples/hello/atlassian-connect.json", "testdata/base.json"} {
		same(t, lint.Check([]byte(readFile(t, f)), f), nil)
	}
	for _, f := range []string{"../examples/checklist/manifest.yml", "testdata/base.yml"} {
		same(t, lint.CheckManifest([]byte(readFile(t, f)), f), nil)
	}
}

func TestDescriptorProblems(t *testing.T) {
	base := readFile(t, "testdata/base.json")
	for _, tc := range []struct {
		name, old, new string
		want           []string
	}{
		{"unknown module type", `"generalPages": [`, `"generalPage": [`, []string{
			`d.json:9:5: unknown module type "generalPage"; did you mean "generalPages"?`,
		}},
		{"unknown top-level key", `"scopes": ["READ"],`, `"scope": ["READ"],`, []string{
			`d.json:7:3: unknown top-level key "scope"; did you mean "scopes"?`,
		}},
		{"unknown key in a webhook", `"event": "jira:issue_deleted",`, `"event": "jira:issue_deleted", "exclude": true,`, []string{
			`d.json:13:40: unknown key "exclude" in modules.webhooks[0]; did you mean "excludeBody"?`,
		}},
		{"syntax error", `"scopes": ["READ"],`, `"scopes": ["READ"]`, []string{
			`d.json:8:3: invalid JSON: invalid character '"' after object key:value pair`,
		}},
		{"truncated", "  }\n}\n", "  }\n", []string{
			`d.json:16:1: invalid JSON: the file ends before the value does (a missing '}' or ']'?)`,
		}},
		{"trailing data", "  }\n}\n", "  }\n}\n{}\n", []string{
			`d.json:17:1: unexpected data after the JSON value: the file must hold one JSON object`,
		}},
		{"duplicate key", `"scopes": ["READ"],`, `"scopes": ["READ"], "scopes": [],`, []string{
			`d.json:7:23: duplicate key "scopes" (first at line 7): keep one`,
		}},
		{"missing installed", `"installed": "/installed", `, ``, []string{
			`d.json:5:3: lifecycle: missing "installed": tenon mounts the lifecycle routes it names: set at least "installed", e.g. "/installed"`,
		}},
		{"no signed install", `"signed-install": true`, `"signed-install": false`, []string{
			`d.json:6:40: apiMigrations.signed-install: false is not allowed: tenon accepts signed installs only: set "signed-install": true`,
		}},
		{"relative url", `"url": "/page"`, `"url": "page"`, []string{
			`d.json:10:60: modules.generalPages[0].url: "page" is not allowed: a path relative to baseUrl, starting with '/'`,
		}},
		{"missing module field", `"name": { "value": "Page" }, `, ``, []string{
			`d.json:10:7: modules.generalPages[0]: missing "name": a text object: {"value": "..."}, with an optional "i18n" key`,
		}},
		{"wrong type", `"scopes": ["READ"]`, `"scopes": "READ"`, []string{
			`d.json:7:13: scopes: must be array, not string`,
		}},
		{"unknown scope", `["READ"]`, `["RAED"]`, []string{
			`d.json:7:14: scopes[0]: "RAED" is not one of READ, WRITE, DELETE, PROJECT_ADMIN, SPACE_ADMIN, ADMIN, ACT_AS_USER, ACCESS_EMAIL_ADDRESSES; did you mean "READ"?`,
		}},
		{"authentication", `"type": "jwt"`, `"type": "none"`, []string{
			`d.json:4:31: authentication.type: "none" is not one of jwt, JWT: tenon authenticates every product request with JWT: set "type": "jwt"`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			same(t, lint.Check([]byte(edit(t, base, tc.old, tc.new)), "d.json"), tc.want)
		})
	}
}

// oracle says how Atlassian's published manifest schema judges a case
// (see TestAtlassianSchemaAgrees).
type oracle int

const (
	agree     oracle = iota // it finds the manifest invalid too
	tenonOnly               // it cannot: a cross-reference, a duplicate, or a module type it leaves open
)

// manifestCase is base.yml with one edit, and the problems it has.
type manifestCase struct {
	name   string
	oracle oracle
	old    string
	new    string
	want   []string
}

var manifestCases = []manifestCase{
	{"unknown module type", tenonOnly, "  trigger:\n", "  triggers:\n", []string{
		`m.yml:6:3: unknown module type "triggers"; did you mean "trigger"?`,
	}},
	{"syntax error", agree, "  runtime:\n", " runtime:\n", []string{
		`m.yml:2:1: invalid YAML: yaml: line 2: did not find expected key`,
	}},
	{"no app id", agree, "  id: ari:cloud:ecosystem::app/00000000-0000-4000-8000-000000000000\n", "", []string{
		`m.yml:1:1: app: missing "id": the id ` + "`forge register`" + ` gives: ari:cloud:ecosystem::app/<uuid>`,
	}},
	{"bad app id", agree, "id: ari:cloud:ecosystem::app/00000000-0000-4000-8000-000000000000", "id: my-app", []string{
		`m.yml:2:7: app.id: "my-app" is not allowed: the id ` + "`forge register`" + ` gives: ari:cloud:ecosystem::app/<uuid>`,
	}},
	{"bad runtime", agree, "nodejs22.x", "nodejs18.x", []string{
		`m.yml:4:11: app.runtime.name: "nodejs18.x" is not one of nodejs20.x, nodejs22.x, nodejs24.x; did you mean "nodejs20.x"?`,
	}},
	{"unknown operation", agree, "      - storage\n", "      - storag\n", []string{
		`m.yml:30:9: remotes[0].operations[0]: "storag" is not one of storage, compute, fetch, other; did you mean "storage"?`,
	}},
	{"region map without default", agree, "      default: https://app.example.com\n", "", []string{
		`m.yml:26:5: remotes[0].baseUrl: missing "default"`,
	}},
	{"unknown region", agree, "      EU: https://eu", "      XX: https://eu", []string{
		`m.yml:28:7: unknown key "XX" in remotes[0].baseUrl; known: AU, CA, CH, DE, EU, GB, IN, JP, KR, SG, US, default`,
	}},
	{"undefined remote", tenonOnly, "      remote: backend\n      route:\n        path: /forge/events", "      remote: backnd\n      route:\n        path: /forge/events", []string{
		`m.yml:17:15: modules.endpoint[0].remote: remote "backnd" is not defined; add it to remotes; did you mean "backend"?`,
	}},
	{"undefined endpoint", tenonOnly, "endpoint: events", "endpoint: event", []string{
		`m.yml:8:17: modules.trigger[0].endpoint: endpoint "event" is not defined; add it to modules.endpoint; did you mean "events"?`,
	}},
	{"duplicate module key", tenonOnly, "- key: nightly\n", "- key: deleted\n", []string{
		`m.yml:12:12: modules.scheduledTrigger[0].key: module key "deleted" is also used by modules.trigger[0]: module keys must be unique within the manifest`,
	}},
	{"both function and endpoint", agree, "      endpoint: nightly-run\n", "      endpoint: nightly-run\n      function: main\n", []string{
		`m.yml:12:7: modules.scheduledTrigger[0]: set exactly one of function (a function key) and endpoint (an endpoint key)`,
		`m.yml:14:17: modules.scheduledTrigger[0].function: function "main" is not defined; add it to modules.function`,
	}},
	{"unknown top-level key", agree, "resources:\n", "resource:\n", []string{
		`m.yml:31:1: unknown top-level key "resource"; did you mean "resources"?`,
	}},
	{"unknown connect module type", tenonOnly, "resources:\n", "connectModules:\n  jira:generalPage:\n    - key: page\nresources:\n", []string{
		`m.yml:32:3: connectModules: unknown Connect module type "generalPage"; did you mean "jira:generalPages"?`,
	}},
	{"duplicate key", tenonOnly, "permissions:\n", "resources: []\npermissions:\n", []string{
		`m.yml:34:1: duplicate key "resources" (first at line 31): keep one`,
	}},
}

func TestManifestProblems(t *testing.T) {
	base := readFile(t, "testdata/base.yml")
	for _, tc := range manifestCases {
		t.Run(tc.name, func(t *testing.T) {
			same(t, lint.CheckManifest([]byte(edit(t, base, tc.old, tc.new)), "m.yml"), tc.want)
		})
	}
}
