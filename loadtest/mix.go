package loadtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
)

// Route kinds a mix can send.
const (
	KindPage         = "page"          // a module page, signed per request
	KindAPI          = "api"           // a browser-API route with a context token
	KindWebhook      = "webhook"       // a webhook as the product delivers it
	KindForgeInvoke  = "forge-invoke"  // a Forge UI invocation (invokeRemote)
	KindForgeEvent   = "forge-event"   // a Forge product event
	KindForgeTrigger = "forge-trigger" // a Forge scheduled trigger
)

var kinds = []string{KindPage, KindAPI, KindWebhook, KindForgeInvoke, KindForgeEvent, KindForgeTrigger}

// Skews of the tenant choice.
const (
	SkewUniform = "uniform"
	SkewZipf    = "zipf"
)

// Limits that keep a mix file from asking for more than one machine holds.
const (
	MaxTenants         = 100_000
	MaxIssuesPerTenant = 1000
)

// Mix says what a run sends: how many tenants, how often each is picked,
// and the share of each route.
type Mix struct {
	Name string `json:"name,omitempty"`
	// Tenants is the number of sites the app is installed into.
	Tenants int `json:"tenants"`
	// IssuesPerTenant issues are created on each site; routes with
	// {issue.key} pick one of them at random. Default 3 (the fake's seed).
	IssuesPerTenant int `json:"issuesPerTenant,omitempty"`
	// Skew is "uniform" (default) or "zipf"; ZipfS (> 1, default 1.1) is
	// its exponent: the larger, the more a few tenants dominate.
	Skew  string  `json:"skew,omitempty"`
	ZipfS float64 `json:"zipfS,omitempty"`
	// Routes and their shares (relative weights).
	Routes []Route `json:"routes"`
	// Setup routes are sent once to every tenant after it is installed
	// and before the load starts, each expected to answer 2xx: they store
	// the app data the measured routes read. Browser-API routes only,
	// without share; they are not part of the report.
	Setup []Route `json:"setup,omitempty"`
	// Product sets the fake product API's behaviour for the app's own
	// outbound calls.
	Product Product `json:"product,omitempty"`
}

// Route is one kind of request and its share of the mix.
type Route struct {
	Kind  string  `json:"kind"`
	Share float64 `json:"share"`
	// Module is the module key of a page.
	Module string `json:"module,omitempty"`
	// Method and Path of an api, forge-invoke, forge-event or
	// forge-trigger route; Path may hold {issue.key} and {project.key}.
	Method string `json:"method,omitempty"`
	Path   string `json:"path,omitempty"`
	// Body is sent as JSON (api and forge-invoke).
	Body json.RawMessage `json:"body,omitempty"`
	// Event is the webhook event (webhook) or the Forge event type
	// (forge-event).
	Event string `json:"event,omitempty"`
	// Name labels the route in the report; default kind and path.
	Name string `json:"name,omitempty"`
}

// Product is the fake product API's behaviour during the run.
type Product struct {
	// LatencyMs delays every answer of the product's REST API.
	LatencyMs int `json:"latencyMs,omitempty"`
	// FailEvery makes every n-th call fail with FailStatus (default 500);
	// RateLimitEvery answers every n-th with 429 and RetryAfterSeconds.
	FailEvery         int `json:"failEvery,omitempty"`
	FailStatus        int `json:"failStatus,omitempty"`
	RateLimitEvery    int `json:"rateLimitEvery,omitempty"`
	RetryAfterSeconds int `json:"retryAfterSeconds,omitempty"`
}

// Label is the route's name in the report.
func (r Route) Label() string {
	if r.Name != "" {
		return r.Name
	}
	switch r.Kind {
	case KindPage:
		return "page " + r.Module
	case KindWebhook:
		return "webhook " + r.Event
	}
	return r.Kind + " " + r.Method + " " + r.Path
}

// NeedsForge says whether the route goes through a Forge installation.
func (r Route) NeedsForge() bool {
	return r.Kind == KindForgeInvoke || r.Kind == KindForgeEvent || r.Kind == KindForgeTrigger
}

// ReadMix reads and checks a mix file.
func ReadMix(path string) (*Mix, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mix file: %w", err)
	}
	m, err := ParseMix(raw)
	if err != nil {
		return nil, fmt.Errorf("mix file %s: %w", path, err)
	}
	return m, nil
}

var moduleKeyRE = regexp.MustCompile(`^[a-z0-9-]+$`)

// ParseMix decodes a mix, fills its defaults and reports every problem
// found, not only the first.
func ParseMix(raw []byte) (*Mix, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var m Mix
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("not a mix (JSON object with tenants and routes): %w", err)
	}
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if m.Tenants < 1 || m.Tenants > MaxTenants {
		add("tenants must be from 1 to %d, not %d", MaxTenants, m.Tenants)
	}
	if m.IssuesPerTenant == 0 {
		m.IssuesPerTenant = 3
	}
	if m.IssuesPerTenant < 1 || m.IssuesPerTenant > MaxIssuesPerTenant {
		add("issuesPerTenant must be from 1 to %d, not %d", MaxIssuesPerTenant, m.IssuesPerTenant)
	}
	switch m.Skew {
	case "":
		m.Skew = SkewUniform
	case SkewUniform:
	case SkewZipf:
		if m.ZipfS == 0 {
			m.ZipfS = 1.1
		}
		if m.ZipfS <= 1 || m.ZipfS > 10 {
			add("zipfS must be above 1 and at most 10, not %g", m.ZipfS)
		}
	default:
		add("skew must be %q or %q, not %q", SkewUniform, SkewZipf, m.Skew)
	}
	if m.Skew == SkewUniform && m.ZipfS != 0 {
		add("zipfS is set but skew is %q", m.Skew)
	}
	if len(m.Routes) == 0 {
		add("routes must list at least one route")
	}
	seen := map[string]bool{}
	for i := range m.Routes {
		r := &m.Routes[i]
		where := fmt.Sprintf("routes[%d]", i)
		if r.Share <= 0 {
			add("%s: share must be above 0, not %g", where, r.Share)
		}
		switch r.Kind {
		case KindPage:
			if !moduleKeyRE.MatchString(r.Module) {
				add("%s: a page needs module, a module key of the descriptor (got %q)", where, r.Module)
			}
			if r.Path != "" || r.Method != "" || r.Body != nil || r.Event != "" {
				add("%s: a page takes only module (its URL comes from the descriptor)", where)
			}
		case KindWebhook:
			if r.Event == "" {
				add("%s: a webhook needs event, one the descriptor subscribes to (e.g. jira:issue_deleted)", where)
			}
			if r.Path != "" || r.Method != "" || r.Body != nil || r.Module != "" {
				add("%s: a webhook takes only event (its URL and body come from the descriptor and the fake)", where)
			}
		case KindAPI, KindForgeInvoke:
			if r.Method == "" {
				r.Method = http.MethodGet
			}
			checkMethodPath(r, where, add)
		case KindForgeEvent, KindForgeTrigger:
			if r.Method != "" && r.Method != http.MethodPost {
				add("%s: Forge events and triggers are POSTed; method %q is not possible", where, r.Method)
			}
			r.Method = http.MethodPost
			checkMethodPath(r, where, add)
			if r.Body != nil {
				add("%s: the body of a Forge event or trigger is the product's; leave body out", where)
			}
			if r.Kind == KindForgeEvent && r.Event == "" {
				add("%s: a forge-event needs event, the event type (e.g. avi:jira:deleted:issue)", where)
			}
		case "":
			add("%s: kind is required: one of %s", where, strings.Join(kinds, ", "))
		default:
			add("%s: unknown kind %q: one of %s", where, r.Kind, strings.Join(kinds, ", "))
		}
		if seen[r.Label()] {
			add("%s: a second route labelled %q; give one a name", where, r.Label())
		}
		seen[r.Label()] = true
	}
	for i := range m.Setup {
		r := &m.Setup[i]
		where := fmt.Sprintf("setup[%d]", i)
		if r.Kind != KindAPI {
			add("%s: a setup route must be of kind %q (a browser-API call storing a tenant's data), not %q", where, KindAPI, r.Kind)
		}
		if r.Share != 0 {
			add("%s: a setup route is sent once per tenant; leave share out", where)
		}
		if r.Method == "" {
			r.Method = http.MethodGet
		}
		checkMethodPath(r, where, add)
	}
	p := &m.Product
	if p.LatencyMs < 0 || p.LatencyMs > 60_000 {
		add("product.latencyMs must be from 0 to 60000, not %d", p.LatencyMs)
	}
	if p.FailEvery < 0 || p.RateLimitEvery < 0 || p.RetryAfterSeconds < 0 {
		add("product.failEvery, rateLimitEvery and retryAfterSeconds cannot be negative")
	}
	if p.FailStatus == 0 {
		p.FailStatus = http.StatusInternalServerError
	}
	if p.FailStatus < 400 || p.FailStatus > 599 {
		add("product.failStatus must be from 400 to 599, not %d", p.FailStatus)
	}
	if len(problems) > 0 {
		return nil, &MixError{Problems: problems}
	}
	return &m, nil
}

func checkMethodPath(r *Route, where string, add func(string, ...any)) {
	switch r.Method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		add("%s: method must be GET, POST, PUT, PATCH or DELETE, not %q", where, r.Method)
	}
	if !strings.HasPrefix(r.Path, "/") || strings.Contains(r.Path, "://") {
		add("%s: path must be a path on the app starting with '/', not %q", where, r.Path)
	}
	if r.Body != nil && !json.Valid(r.Body) {
		add("%s: body is not JSON", where)
	}
	if r.Module != "" {
		add("%s: module is for pages only", where)
	}
	if r.Kind != KindForgeEvent && r.Event != "" {
		add("%s: event is for webhooks and forge-event only", where)
	}
}

// MixError lists every problem of a mix.
type MixError struct{ Problems []string }

func (e *MixError) Error() string {
	return "invalid mix:\n  - " + strings.Join(e.Problems, "\n  - ")
}

// ErrNoRoute is returned when a mix names something the target lacks.
var ErrNoRoute = errors.New("the target has no such route")
