// Package checklist is an example app built on tenon the way a vendor
// would build one, using only the public library: a checklist panel in the
// Jira issue view.
//
// What it shows:
//   - a web panel (Module route, license required) that reads the issue
//     from Jira as the app through hostclient and renders the checklist
//     with html/template, in English or German, under a strict Content
//     Security Policy: no inline script, scripts only from the app and the
//     AP library's origin;
//   - a JSON API for the panel's own browser code (API routes, context
//     tokens from AP.context.getToken), storing one document per issue in
//     the tenant's data;
//   - a queued webhook (jira:issue_deleted): stored before Jira gets its
//     answer, then processed with retries; it removes the checklist of a
//     deleted issue, idempotently;
//   - lifecycle hooks that log installs without secrets.
//
// The issue rule: the panel's browser code gets its context token inside
// one issue's view, and Jira puts that issue into the token's context
// claim ({"jira":{"issue":{"key":"PROJ-1"}}}). When the claim names an
// issue, the API serves only that issue's checklist, so a token obtained
// on PROJ-1 cannot read or change PROJ-2's. A token whose context names no
// issue is accepted for any issue of its site. The app does not ask Jira
// whether the user may see the issue; a stricter app would check with
// POST /rest/api/3/permissions/check (as the app, for the token's
// accountId) before answering.
//
// Concurrency: changes to one checklist are serialised by a lock per
// (site, issue) inside this process. That is enough for one node; several
// nodes sharing a store would need a compare-and-swap on the stored value.
package checklist

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/hostclient"
	"github.com/tenon-dev/tenon/server"
)

// Limits of request bodies and of the time the panel waits for Jira.
const (
	maxAPIBodyBytes     = 8 << 10 // {"text": 500 characters} with room to spare
	maxWebhookBodyBytes = 4 << 20 // issue payloads carry every field of the issue
	jiraTimeout         = 5 * time.Second
)

//go:embed atlassian-connect.json
var descriptor []byte

//go:embed templates/panel.html
var panelHTML string

//go:embed static
var staticFiles embed.FS

// Options configure the app. The zero value is ready for production.
type Options struct {
	// AllJSURL is where the panel loads the AP library from. Default:
	// the server's (server.Config.AllJSURL): Atlassian's CDN in
	// production, the fake product under `tenon dev`.
	AllJSURL string
	// HTTPClient makes the Forge jobs' calls to Jira. Default:
	// hostclient's. (Calls within a request use the server's product
	// client, Principal.AsApp.)
	HTTPClient *http.Client
	// Logger receives lifecycle events and failed Jira calls. Default
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock for item and change times. Default time.Now.
	Now func() time.Time
}

// App is the checklist app. It implements cli.App and cli.HookedApp.
type App struct {
	opts  Options
	log   *slog.Logger
	now   func() time.Time
	page  *template.Template
	files map[string]asset // static files by name
	locks keyedMutex
	// forgeHost makes the Forge calls (set by forgeRoutes).
	forgeHost *hostclient.Client
	// srv is the server the routes are on, for the personal-data hooks,
	// which act on a tenant outside a request.
	srv *server.Server
}

// asset is one static file with its content hash, which versions its URL
// so browsers may cache it for good.
type asset struct {
	body        []byte
	contentType string
	version     string
}

// New returns the checklist app.
func New(opts Options) *App {
	a := &App{opts: opts, log: opts.Logger, now: opts.Now}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.now == nil {
		a.now = time.Now
	}
	a.page = template.Must(template.New("panel").Parse(panelHTML))
	a.files = map[string]asset{
		"checklist.js":  loadAsset("static/checklist.js", "text/javascript; charset=utf-8"),
		"checklist.css": loadAsset("static/checklist.css", "text/css; charset=utf-8"),
	}
	return a
}

// loadAsset reads an embedded file; it exists by construction, so a
// failure is a build mistake and panics at start-up.
func loadAsset(name, contentType string) asset {
	b, err := staticFiles.ReadFile(name)
	if err != nil {
		panic(fmt.Sprintf("checklist: embedded %s: %v", name, err))
	}
	sum := sha256.Sum256(b)
	return asset{body: b, contentType: contentType, version: hex.EncodeToString(sum[:6])}
}

// Descriptor returns the app's atlassian-connect.json.
func (*App) Descriptor() []byte { return descriptor }

// Routes registers the panel, the browser API, the webhook and the static
// files on s.
func (a *App) Routes(s *server.Server) error {
	if a.opts.AllJSURL == "" {
		// The server knows where this deployment loads all.js from:
		// Atlassian's CDN in production, the fake product in development.
		a.opts.AllJSURL = s.AllJSURL()
	}
	u, err := url.Parse(a.opts.AllJSURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("checklist: Options.AllJSURL %q must be an absolute http(s) URL", a.opts.AllJSURL)
	}

	a.srv = s
	s.Public("GET /static/", http.HandlerFunc(a.serveStatic))
	s.Module("GET /panel", a.panel, server.RequireLicense())

	body := server.BodyLimit(maxAPIBodyBytes)
	s.API("GET /api/checklists/{issueKey}", a.getChecklist, body)
	s.API("POST /api/checklists/{issueKey}/items", a.addItem, body)
	s.API("PATCH /api/checklists/{issueKey}/items/{id}", a.patchItem, body)
	s.API("DELETE /api/checklists/{issueKey}/items/{id}", a.deleteItem, body)

	// Queued: stored, acknowledged, then processed with retries by the
	// server's job runner. The route is the descriptor's url for the event.
	s.OnWebhook("jira:issue_deleted", a.issueDeleted, server.BodyLimit(maxWebhookBodyBytes))

	a.forgeRoutes(s) // the same checklist for the app's Forge front end (forge.go)
	return nil
}

// Hooks logs lifecycle changes. Checklists stay when a site uninstalls:
// the platform's data retention removes a tenant's data after its grace
// period, and a reinstall within it finds everything as it was.
func (a *App) Hooks() server.Hooks {
	logEvent := func(event string) func(context.Context, *tenon.Installation) {
		return func(ctx context.Context, in *tenon.Installation) {
			// Only descriptive fields: never the shared secret or payload.
			a.log.InfoContext(ctx, "checklist: "+event, "client_key", in.ClientKey, "base_url", in.BaseURL, "product", in.ProductType)
		}
	}
	return server.Hooks{
		Installed:   logEvent("installed"),
		Uninstalled: logEvent("uninstalled"),
		Enabled:     logEvent("enabled"),
		Disabled:    logEvent("disabled"),
	}
}
