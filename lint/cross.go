package lint

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Route is one route the app registered, as server.Server.Routes lists
// it: Kind is "module", "api", "webhook", "public", "forge-remote",
// "forge-event" or "forge-trigger"; Pattern is relative to the base URL
// ("GET /panel"), "" for an OnWebhook event the descriptor lacks; Event
// is the event of an OnWebhook route.
type Route struct {
	Kind    string
	Pattern string
	Event   string
}

// Input is what App checks.
type Input struct {
	Descriptor     []byte
	DescriptorFile string // DescriptorFile when empty
	// Manifest is the Forge manifest.yml; nil when the app has none.
	Manifest     []byte
	ManifestFile string // ManifestFile when empty
	// Routes are the app's registered routes; nil skips the cross-check
	// (the files alone are checked).
	Routes []Route
}

// App checks the descriptor, the manifest when there is one, and, with
// Routes, both against the routes. Problems come sorted by file and
// position.
//
// Between files and routes, in both directions:
//   - every module url of the descriptor that is a path of the app (it
//     starts with '/') must be served: GET by a Module or Public route,
//     webhook urls POST by a Webhook or OnWebhook route. No route, or a
//     route of a kind that refuses the product's token, is an error.
//   - every Webhook route must be some webhook's url, and every OnWebhook
//     event must be declared: the product sends only the webhooks the
//     descriptor declares. Error.
//   - a Module route no module url names is a warning: the product never
//     loads it, but the app may link to it itself.
//   - every endpoint route.path of the manifest must be served by a Forge
//     route (ForgeEvent for a trigger's endpoint, ForgeTrigger for a
//     scheduledTrigger's), and every ForgeEvent and ForgeTrigger route
//     must be an endpoint's route.path: Forge delivers nowhere else.
//     Error. ForgeRemote routes are reached with the paths the front end
//     passes to invokeRemote, which no file names: they are not checked.
//
// Lifecycle paths are mounted by tenon itself and always served.
func App(in Input) []Problem {
	// A pure Forge app has no descriptor: only its manifest is checked.
	var dd *doc
	var probs []Problem
	if in.Descriptor != nil || in.Manifest == nil {
		dd, probs = checkDescriptor(in.Descriptor, in.DescriptorFile)
	}
	var md *doc
	if in.Manifest != nil {
		var mp []Problem
		md, mp = checkManifest(in.Manifest, in.ManifestFile)
		probs = append(probs, mp...)
	}
	if in.Routes != nil {
		m := newRouteMux(in.Routes)
		if dd != nil {
			probs = append(probs, crossDescriptor(dd, m)...)
		}
		if md != nil {
			probs = append(probs, crossManifest(md, m)...)
		}
	}
	Sort(probs)
	return probs
}

// routeMux finds which registered route serves a path, with the same
// matching rules as the server.
type routeMux struct {
	mux    *http.ServeMux
	routes map[string]Route // by pattern
	all    []Route
}

func newRouteMux(routes []Route) *routeMux {
	m := &routeMux{mux: http.NewServeMux(), routes: map[string]Route{}, all: routes}
	for _, rt := range routes {
		if rt.Pattern == "" {
			continue
		}
		if _, dup := m.routes[rt.Pattern]; dup {
			continue
		}
		if mountable(m.mux, rt.Pattern) {
			m.routes[rt.Pattern] = rt
		}
	}
	return m
}

// mountable registers pattern, reporting false for one ServeMux refuses
// (the server refused it at registration already).
func mountable(mux *http.ServeMux, pattern string) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	mux.Handle(pattern, http.NotFoundHandler())
	return true
}

// templateVar is a context variable of a descriptor url: {issue.key} or
// ${issue.key}.
var templateVar = regexp.MustCompile(`\$?\{[^}]*\}`)

// match returns the route serving method and the path of a descriptor
// url, and the methods other routes serve that path with.
func (m *routeMux) match(method, rawURL string) (Route, bool, []string) {
	path, _, _ := strings.Cut(rawURL, "?")
	path, _, _ = strings.Cut(path, "#")
	path = templateVar.ReplaceAllString(path, "x")
	lookup := func(method string) (Route, bool) {
		r := &http.Request{Method: method, URL: &url.URL{Path: path}, Host: "app.invalid"}
		_, pattern := m.mux.Handler(r)
		rt, ok := m.routes[pattern]
		return rt, ok
	}
	if rt, ok := lookup(method); ok {
		return rt, true, nil
	}
	var others []string
	for _, other := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if _, ok := lookup(other); ok && other != method {
			others = append(others, other)
		}
	}
	return Route{}, false, others
}

// moduleURL is one url of the descriptor's modules that names a path of
// the app.
type moduleURL struct {
	path   []string // instance location of the url value
	value  string
	method string
	hook   bool // a webhook url
	icon   bool
}

// moduleURLs walks the modules for url values that are paths of the app.
func moduleURLs(d *doc) []moduleURL {
	top, _ := d.value.(map[string]any)
	modules, _ := top["modules"].(map[string]any)
	types := make([]string, 0, len(modules))
	for t := range modules {
		types = append(types, t)
	}
	sort.Strings(types)
	var out []moduleURL
	var walk func(v any, path []string, typ string)
	walk = func(v any, path []string, typ string) {
		switch t := v.(type) {
		case map[string]any:
			if typ == "webItems" || typ == "contentBylineItems" {
				// Only an app-relative web item links to the app.
				if c, ok := t["context"].(string); ok && c != "addon" {
					return
				}
			}
			keys := make([]string, 0, len(t))
			for k := range t {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				sub := append(append([]string{}, path...), k)
				if s, ok := t[k].(string); ok && k == "url" {
					if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") {
						continue
					}
					u := moduleURL{path: sub, value: s, method: http.MethodGet}
					switch {
					case typ == "webhooks":
						u.method, u.hook = http.MethodPost, true
					case len(path) > 0 && path[len(path)-1] == "icon":
						u.icon = true
					case len(path) > 0 && path[len(path)-1] == "triggered":
						u.method = http.MethodPost // workflow post functions
					}
					out = append(out, u)
					continue
				}
				walk(t[k], sub, typ)
			}
		case []any:
			for i, it := range t {
				walk(it, append(append([]string{}, path...), strconv.Itoa(i)), typ)
			}
		}
	}
	known := connectModuleTypes()
	for _, typ := range types {
		if known[typ] { // an unknown type is reported as such, not its urls
			walk(modules[typ], []string{"modules", typ}, typ)
		}
	}
	return out
}

// anchor is the node a problem about something missing from a file is
// reported at: the deepest of path that exists.
func anchor(d *doc, path ...string) *node {
	n, _ := d.at(path)
	return n
}

func crossDescriptor(d *doc, m *routeMux) []Problem {
	var probs []Problem
	referenced := map[string]bool{}
	hookPaths := map[string]bool{}
	for _, u := range moduleURLs(d) {
		n, _ := d.at(u.path)
		where := pathString(u.path)
		rt, ok, others := m.match(u.method, u.value)
		path, _, _ := strings.Cut(u.value, "?")
		if u.hook {
			hookPaths[path] = true
		}
		if !ok {
			msg := fmt.Sprintf("%s: no route serves %s %s", where, u.method, path)
			switch {
			case len(others) > 0:
				msg += fmt.Sprintf(" (routes serve it with %s only)", strings.Join(others, ", "))
			case u.hook:
				msg += fmt.Sprintf(`; register it with OnWebhook(%q, ...) or Webhook("%s", ...)`, hookEvent(d, u.path), path)
			case u.icon:
				msg += fmt.Sprintf(`; serve it with Public("GET %s", ...)`, path)
			default:
				msg += fmt.Sprintf(`; register it with Module("%s %s", ...)`, u.method, path)
			}
			probs = append(probs, d.problem(n, false, Error, "%s", msg))
			continue
		}
		referenced[rt.Pattern] = true
		switch {
		case u.hook && rt.Kind != "webhook":
			probs = append(probs, d.problem(n, false, Error,
				"%s: %s %s is served by a %s route, which refuses the product's webhook token; register it with OnWebhook or Webhook", where, u.method, path, rt.Kind))
		case !u.hook && rt.Kind != "module" && rt.Kind != "public":
			probs = append(probs, d.problem(n, false, Error,
				"%s: %s %s is served by a %s route, which refuses the iframe token the product sends; register it with Module", where, u.method, path, rt.Kind))
		}
	}

	hooksAt := anchor(d, "modules", "webhooks")
	modulesAt := anchor(d, "modules")
	for _, rt := range m.all {
		switch {
		case rt.Kind == "webhook" && rt.Pattern == "":
			probs = append(probs, d.problem(hooksAt, true, Error,
				`OnWebhook(%q): the descriptor declares no webhook for this event; add {"event": %q, "url": "/..."} to modules.webhooks`, rt.Event, rt.Event))
		case rt.Kind == "webhook" && !referenced[rt.Pattern]:
			what := "Webhook route " + rt.Pattern
			if rt.Event != "" {
				what = fmt.Sprintf("OnWebhook(%q) route %s", rt.Event, rt.Pattern)
			}
			probs = append(probs, d.problem(hooksAt, true, Error,
				"%s is the url of no webhook in modules.webhooks: the product sends only the webhooks the descriptor declares", what))
		case rt.Kind == "module" && !referenced[rt.Pattern]:
			probs = append(probs, d.problem(modulesAt, true, Warning,
				"Module route %s is the url of no module: the product never loads it (fine if the app links to it itself)", rt.Pattern))
		}
	}
	return probs
}

// hookEvent is the event of the webhook whose url is at path.
func hookEvent(d *doc, urlPath []string) string {
	top, _ := d.value.(map[string]any)
	modules, _ := top["modules"].(map[string]any)
	hooks, _ := modules["webhooks"].([]any)
	if len(urlPath) < 3 {
		return "..."
	}
	i, err := strconv.Atoi(urlPath[2])
	if err != nil || i >= len(hooks) {
		return "..."
	}
	h, _ := hooks[i].(map[string]any)
	if ev, ok := h["event"].(string); ok {
		return ev
	}
	return "..."
}

func crossManifest(d *doc, m *routeMux) []Problem {
	top, _ := d.value.(map[string]any)
	modules, _ := top["modules"].(map[string]any)
	// Which kind of Forge route each endpoint's deliveries need.
	want := map[string]string{}
	for typ, kind := range map[string]string{"trigger": "forge-event", "scheduledTrigger": "forge-trigger"} {
		items, _ := modules[typ].([]any)
		for _, it := range items {
			if mm, ok := it.(map[string]any); ok {
				if ep, ok := mm["endpoint"].(string); ok {
					want[ep] = kind
					if typ == "trigger" && lifecycleEvents(mm["events"]) {
						want[ep] = "forge-lifecycle"
					}
				}
			}
		}
	}
	var probs []Problem
	referenced := map[string]bool{}
	endpoints, _ := modules["endpoint"].([]any)
	for i, it := range endpoints {
		ep, _ := it.(map[string]any)
		route, _ := ep["route"].(map[string]any)
		path, ok := route["path"].(string)
		if !ok || !strings.HasPrefix(path, "/") {
			continue
		}
		at := []string{"modules", "endpoint", strconv.Itoa(i), "route", "path"}
		n, _ := d.at(at)
		where := pathString(at)
		key, _ := ep["key"].(string)
		kind := want[key]
		rt, found, _ := m.match(http.MethodPost, path)
		if !found {
			reg := registrar(kind)
			probs = append(probs, d.problem(n, false, Error, `%s: no Forge route serves POST %s; register it with %s("%s", ...)`, where, path, reg, path))
			continue
		}
		referenced[rt.Pattern] = true
		switch {
		case !strings.HasPrefix(rt.Kind, "forge-"):
			probs = append(probs, d.problem(n, false, Error, "%s: POST %s is served by a %s route, which refuses Forge Invocation Tokens; register it with ForgeEvent or ForgeTrigger", where, path, rt.Kind))
		case kind != "" && rt.Kind != kind:
			probs = append(probs, d.problem(n, false, Error, "%s: POST %s is served by a %s route, but endpoint %q receives %s deliveries; register it with %s", where, path, rt.Kind, key, strings.TrimPrefix(kind, "forge-"), registrar(kind)))
		}
	}
	epAt := anchor(d, "modules", "endpoint")
	for _, rt := range m.all {
		if (rt.Kind == "forge-event" || rt.Kind == "forge-trigger" || rt.Kind == "forge-lifecycle") && !referenced[rt.Pattern] {
			probs = append(probs, d.problem(epAt, true, Error,
				"%s route %s is the route.path of no endpoint: Forge delivers events and triggers only to an endpoint's route.path; add an endpoint with route: {path: %s} and a trigger naming it",
				registrar(rt.Kind), rt.Pattern, strings.TrimPrefix(rt.Pattern, "POST ")))
		}
	}
	return probs
}

func registrar(kind string) string {
	switch kind {
	case "forge-trigger":
		return "ForgeTrigger"
	case "forge-lifecycle":
		return "ForgeLifecycle"
	}
	return "ForgeEvent"
}

// lifecycleEvents reports whether a trigger's events are all Forge's own
// app lifecycle events (avi:forge:...:app), which a ForgeLifecycle route
// takes.
func lifecycleEvents(v any) bool {
	events, _ := v.([]any)
	for _, e := range events {
		name, _ := e.(string)
		if !strings.HasPrefix(name, "avi:forge:") || !strings.HasSuffix(name, ":app") {
			return false
		}
	}
	return len(events) > 0
}
