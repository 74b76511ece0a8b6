package fakeatlassian

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// descriptor is the part of an atlassian-connect.json the fake acts on.
// The raw document is kept too, so the pages can show it.
type descriptor struct {
	Key            string `json:"key"`
	Name           string `json:"name"`
	Description    string `json:"description"`
	BaseURL        string `json:"baseUrl"`
	Authentication *struct {
		Type string `json:"type"`
	} `json:"authentication"`
	Lifecycle struct {
		Installed   string `json:"installed"`
		Uninstalled string `json:"uninstalled"`
		Enabled     string `json:"enabled"`
		Disabled    string `json:"disabled"`
	} `json:"lifecycle"`
	Scopes          []string                   `json:"scopes"`
	EnableLicensing bool                       `json:"enableLicensing"`
	APIMigrations   map[string]any             `json:"apiMigrations"`
	RawModules      map[string]json.RawMessage `json:"modules"`

	modules  []module        // every module with a key, in a stable order
	webhooks []webhookModule // modules.webhooks
}

// module is one keyed module (a page, panel, glance, web item, ...).
type module struct {
	Type     string
	Key      string
	Name     string
	URL      string
	Location string
}

type webhookModule struct {
	Event       string
	URL         string
	ExcludeBody bool
}

// knownScopes are the Connect scopes; each implies those before it.
var knownScopes = []string{"READ", "WRITE", "DELETE", "PROJECT_ADMIN", "ADMIN", "ACT_AS_USER"}

var (
	appKeyRE    = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,80}$`)
	moduleKeyRE = regexp.MustCompile(`^[a-z0-9-]+$`)
)

// Module types whose URL may point anywhere (a link, not an iframe).
var linkModuleTypes = map[string]bool{"webItems": true, "webSections": true}

// fetchDescriptor downloads and validates the descriptor at rawURL.
func (f *Fake) fetchDescriptor(ctx context.Context, rawURL string) (*descriptor, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: descriptor URL %q must be an absolute http(s) URL", ErrInvalid, rawURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("fakeatlassian: descriptor request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	start := f.now()
	resp, err := f.client.Do(req)
	call := Call{Direction: DirectionOut, Kind: KindDescriptor, Method: http.MethodGet, URL: rawURL}
	if err != nil {
		call.Error = err.Error()
		f.record(call, start)
		return nil, fmt.Errorf("fakeatlassian: fetch descriptor %s: %w", rawURL, err)
	}
	defer resp.Body.Close()
	call.Status = resp.StatusCode
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDescriptorBytes+1))
	f.record(call, start)
	if err != nil {
		return nil, fmt.Errorf("fakeatlassian: read descriptor %s: %w", rawURL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &DescriptorError{URL: rawURL, Problems: []string{fmt.Sprintf("GET answered %d, want 200: %s", resp.StatusCode, excerpt(body))}}
	}
	if len(body) > maxDescriptorBytes {
		return nil, &DescriptorError{URL: rawURL, Problems: []string{fmt.Sprintf("larger than %d bytes", maxDescriptorBytes)}}
	}
	return parseDescriptor(rawURL, body)
}

// parseDescriptor decodes and validates a descriptor, collecting every
// problem instead of stopping at the first.
func parseDescriptor(rawURL string, body []byte) (*descriptor, error) {
	var d descriptor
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&d); err != nil {
		return nil, &DescriptorError{URL: rawURL, Problems: []string{"not a JSON object of the descriptor's shape: " + err.Error()}}
	}
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	switch {
	case d.Key == "":
		add("key is required")
	case !appKeyRE.MatchString(d.Key):
		add("key %q may only contain letters, digits, '.', '_' and '-' (at most 80)", d.Key)
	}
	if strings.TrimSpace(d.Name) == "" {
		add("name is required")
	}
	if d.BaseURL == "" {
		add("baseUrl is required")
	} else if u, err := url.Parse(d.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("baseUrl %q must be an absolute http(s) URL", d.BaseURL)
	} else if u.RawQuery != "" || u.Fragment != "" {
		add("baseUrl %q must not have a query or fragment", d.BaseURL)
	}
	d.BaseURL = strings.TrimRight(d.BaseURL, "/")
	if d.Authentication == nil {
		add(`authentication is required ({"type": "jwt"})`)
	} else if !strings.EqualFold(d.Authentication.Type, "jwt") {
		add("authentication.type is %q, want \"jwt\"", d.Authentication.Type)
	}
	if d.Lifecycle.Installed == "" {
		add("lifecycle.installed is required")
	}
	for _, lc := range []struct{ name, url string }{
		{"installed", d.Lifecycle.Installed}, {"uninstalled", d.Lifecycle.Uninstalled},
		{"enabled", d.Lifecycle.Enabled}, {"disabled", d.Lifecycle.Disabled},
	} {
		if lc.url != "" && !isRelativeURL(lc.url) {
			add("lifecycle.%s %q must be a URL relative to baseUrl, starting with '/'", lc.name, lc.url)
		}
	}
	for _, sc := range d.Scopes {
		if !slices.Contains(knownScopes, strings.ToUpper(sc)) {
			add("scope %q is not one of %s", sc, strings.Join(knownScopes, ", "))
		}
	}
	for i, sc := range d.Scopes {
		d.Scopes[i] = strings.ToUpper(sc)
	}
	problems = append(problems, d.parseModules()...)
	if len(problems) > 0 {
		return nil, &DescriptorError{URL: rawURL, Problems: problems}
	}
	return &d, nil
}

// isRelativeURL accepts "/path?query" but not "//host/..." or "http://...".
func isRelativeURL(s string) bool {
	return strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "//") && !strings.ContainsAny(s, "\r\n\\")
}

// rawModule is the shape shared by the modules the fake understands.
type rawModule struct {
	Key  string `json:"key"`
	Name *struct {
		Value string `json:"value"`
	} `json:"name"`
	URL         string `json:"url"`
	Location    string `json:"location"`
	Event       string `json:"event"`
	ExcludeBody bool   `json:"excludeBody"`
}

func (d *descriptor) parseModules() []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	types := make([]string, 0, len(d.RawModules))
	for t := range d.RawModules {
		types = append(types, t)
	}
	sort.Strings(types)
	seen := map[string]string{}
	for _, typ := range types {
		raw := bytes.TrimSpace(d.RawModules[typ])
		var list []rawModule
		switch {
		case len(raw) > 0 && raw[0] == '[':
			if err := json.Unmarshal(raw, &list); err != nil {
				add("modules.%s: %v", typ, err)
				continue
			}
		case len(raw) > 0 && raw[0] == '{':
			var one rawModule
			if err := json.Unmarshal(raw, &one); err != nil {
				add("modules.%s: %v", typ, err)
				continue
			}
			list = []rawModule{one}
		default:
			add("modules.%s must be an array or an object", typ)
			continue
		}
		for i, m := range list {
			where := fmt.Sprintf("modules.%s[%d]", typ, i)
			if typ == "webhooks" {
				if m.Event == "" {
					add("%s: event is required", where)
				}
				if m.URL == "" {
					add("%s: url is required", where)
				} else if !isRelativeURL(m.URL) {
					add("%s: url %q must be relative to baseUrl, starting with '/'", where, m.URL)
				}
				d.webhooks = append(d.webhooks, webhookModule{Event: m.Event, URL: m.URL, ExcludeBody: m.ExcludeBody})
				continue
			}
			switch {
			case m.Key == "":
				add("%s: key is required", where)
			case !moduleKeyRE.MatchString(m.Key):
				add("%s: key %q may only contain a-z, 0-9 and '-'", where, m.Key)
			case seen[m.Key] != "":
				add("%s: key %q is already used by %s", where, m.Key, seen[m.Key])
			default:
				seen[m.Key] = where
			}
			if m.URL != "" && !linkModuleTypes[typ] && !isRelativeURL(m.URL) {
				add("%s: url %q must be relative to baseUrl, starting with '/'", where, m.URL)
			}
			name := m.Key
			if m.Name != nil && m.Name.Value != "" {
				name = m.Name.Value
			}
			d.modules = append(d.modules, module{Type: typ, Key: m.Key, Name: name, URL: m.URL, Location: m.Location})
		}
	}
	return problems
}

// module returns the keyed module, if any.
func (d *descriptor) module(key string) (module, bool) {
	for _, m := range d.modules {
		if m.Key == key {
			return m, true
		}
	}
	return module{}, false
}

// hasScope reports whether the descriptor grants want. Scopes are
// ordered: ADMIN implies PROJECT_ADMIN, which implies DELETE, and so on.
// ACT_AS_USER stands apart.
func hasScope(granted []string, want string) bool {
	if want == "ACT_AS_USER" {
		return slices.Contains(granted, want)
	}
	rank := slices.Index(knownScopes, want)
	if rank < 0 {
		return false
	}
	for _, g := range granted {
		if g == "ACT_AS_USER" {
			continue
		}
		if r := slices.Index(knownScopes, g); r >= rank {
			return true
		}
	}
	return false
}
