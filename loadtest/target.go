package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Descriptor is the part of a Connect descriptor a run checks a mix
// against: the app key, its module keys and webhook events.
type Descriptor struct {
	Key      string
	Modules  []string
	Webhooks []string
}

// FetchDescriptor reads the descriptor at rawURL.
func FetchDescriptor(ctx context.Context, client *http.Client, rawURL string) (*Descriptor, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("descriptor URL: %w", err)
	}
	res, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch the descriptor: %w (is the app running?)", err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read the descriptor: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the descriptor %s answered %d", rawURL, res.StatusCode)
	}
	return ParseDescriptor(raw)
}

// ParseDescriptor reads a Connect descriptor's keys.
func ParseDescriptor(raw []byte) (*Descriptor, error) {
	var d struct {
		Key     string                     `json:"key"`
		Modules map[string]json.RawMessage `json:"modules"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("the descriptor is not JSON: %w", err)
	}
	if d.Key == "" {
		return nil, fmt.Errorf("the descriptor has no key")
	}
	out := &Descriptor{Key: d.Key}
	type mod struct {
		Key   string `json:"key"`
		Event string `json:"event"`
	}
	for typ, rawMods := range d.Modules {
		var list []mod
		if json.Unmarshal(rawMods, &list) != nil {
			var one mod
			if json.Unmarshal(rawMods, &one) != nil {
				continue
			}
			list = []mod{one}
		}
		for _, m := range list {
			if typ == "webhooks" {
				out.Webhooks = append(out.Webhooks, m.Event)
			} else if m.Key != "" {
				out.Modules = append(out.Modules, m.Key)
			}
		}
	}
	slices.Sort(out.Modules)
	slices.Sort(out.Webhooks)
	return out, nil
}

// Manifest is the part of a Forge manifest a run checks a mix against:
// the route paths of its remote endpoints and the events its triggers
// subscribe to.
type Manifest struct {
	EventPaths []string
	Events     []string
}

// ReadManifest reads a Forge manifest.yml.
func ReadManifest(path string) (*Manifest, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("the Forge manifest: %w", err)
	}
	var m struct {
		Modules struct {
			Trigger []struct {
				Events []string `yaml:"events"`
			} `yaml:"trigger"`
			Endpoint []struct {
				Route struct {
					Path string `yaml:"path"`
				} `yaml:"route"`
			} `yaml:"endpoint"`
		} `yaml:"modules"`
	}
	if err := yaml.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("the Forge manifest %s: %w", path, err)
	}
	out := &Manifest{}
	for _, t := range m.Modules.Trigger {
		out.Events = append(out.Events, t.Events...)
	}
	for _, e := range m.Modules.Endpoint {
		if e.Route.Path != "" {
			out.EventPaths = append(out.EventPaths, e.Route.Path)
		}
	}
	return out, nil
}

// CheckAgainst reports the routes of m that the target lacks.
func (m *Mix) CheckAgainst(d *Descriptor, man *Manifest) error {
	var problems []string
	for i, r := range m.Routes {
		switch r.Kind {
		case KindPage:
			if !slices.Contains(d.Modules, r.Module) {
				problems = append(problems, fmt.Sprintf("routes[%d]: the descriptor has no module %q (it has %s)", i, r.Module, strings.Join(d.Modules, ", ")))
			}
		case KindWebhook:
			if !slices.Contains(d.Webhooks, r.Event) {
				problems = append(problems, fmt.Sprintf("routes[%d]: the descriptor subscribes to no webhook %q (it has %s)", i, r.Event, strings.Join(d.Webhooks, ", ")))
			}
		case KindForgeEvent, KindForgeTrigger:
			if man != nil && !slices.Contains(man.EventPaths, r.Path) {
				problems = append(problems, fmt.Sprintf("routes[%d]: the manifest has no endpoint with route.path %q", i, r.Path))
			}
			if man != nil && r.Kind == KindForgeEvent && !slices.Contains(man.Events, r.Event) {
				problems = append(problems, fmt.Sprintf("routes[%d]: no trigger of the manifest subscribes to %q", i, r.Event))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w:\n  - %s", ErrNoRoute, strings.Join(problems, "\n  - "))
	}
	return nil
}

// CheckTarget refuses a target that is not on loopback or in allowed:
// a load test is an attack on whatever it points at.
func CheckTarget(rawURL string, allowed []string) error {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("target %q must be an absolute http(s) URL", rawURL)
	}
	host := u.Hostname()
	if slices.Contains(allowed, host) {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("target %s is not on loopback; a load test only runs against another host named with --allow-target %s", rawURL, host)
}
