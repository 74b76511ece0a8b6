package lint

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// CheckManifest validates a Forge manifest.yml. name is the file name
// problems carry (ManifestFile when empty). Beyond the schema it checks
// that what one entry names exists: endpoint remotes, resources,
// resolver and trigger endpoints and functions, remotes in fetch
// permissions; that module keys are unique; and that connectModules
// names Connect module types.
func CheckManifest(manifest []byte, name string) []Problem {
	_, probs := checkManifest(manifest, name)
	return probs
}

func checkManifest(raw []byte, name string) (*doc, []Problem) {
	if name == "" {
		name = ManifestFile
	}
	d, probs := parseYAML(raw, name)
	if d == nil {
		return nil, probs
	}
	probs = append(probs, validate(d, "forge-manifest.schema.json")...)
	probs = append(probs, manifestReferences(d)...)
	Sort(probs)
	return d, probs
}

// keyed lists the "key" of each entry of a list, by key.
func keyed(list any) map[string]bool {
	keys := map[string]bool{}
	items, _ := list.([]any)
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			if k, ok := m["key"].(string); ok {
				keys[k] = true
			}
		}
	}
	return keys
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func manifestReferences(d *doc) []Problem {
	top, _ := d.value.(map[string]any)
	if top == nil {
		return nil
	}
	var probs []Problem
	remotes := keyed(top["remotes"])
	resources := keyed(top["resources"])
	modules, _ := top["modules"].(map[string]any)
	endpoints := keyed(modules["endpoint"])
	functions := keyed(modules["function"])

	// ref reports path's string value when it names nothing in known.
	ref := func(path []string, val any, what, where string, known map[string]bool) {
		s, ok := val.(string)
		if !ok || known[s] {
			return
		}
		n, _ := d.at(path)
		msg := fmt.Sprintf("%s: %s %q is not defined", pathString(path), what, s)
		if len(known) == 0 {
			msg += "; add it to " + where
		} else {
			msg += "; add it to " + where + didYouMean(s, sortedKeys(known))
		}
		probs = append(probs, d.problem(n, false, Error, "%s", msg))
	}

	if app, ok := top["app"].(map[string]any); ok {
		if c, ok := app["connect"].(map[string]any); ok {
			ref([]string{"app", "connect", "remote"}, c["remote"], "remote", "remotes", remotes)
		}
	}

	seenKeys := map[string][]string{} // module key → where first defined
	types := make([]string, 0, len(modules))
	for t := range modules {
		types = append(types, t)
	}
	// In file order, so a duplicate is reported where it is repeated.
	sort.Slice(types, func(i, j int) bool {
		a, _ := d.at([]string{"modules", types[i]})
		b, _ := d.at([]string{"modules", types[j]})
		return a.keyLine < b.keyLine || (a.keyLine == b.keyLine && types[i] < types[j])
	})
	for _, t := range types {
		items, _ := modules[t].([]any)
		for i, it := range items {
			m, ok := it.(map[string]any)
			if !ok {
				continue
			}
			at := []string{"modules", t, strconv.Itoa(i)}
			sub := func(k ...string) []string { return append(append([]string{}, at...), k...) }
			if k, ok := m["key"].(string); ok {
				if first, dup := seenKeys[k]; dup {
					n, _ := d.at(sub("key"))
					probs = append(probs, d.problem(n, false, Error, "%s: module key %q is also used by %s: module keys must be unique within the manifest", pathString(sub("key")), k, pathString(first)))
				} else {
					seenKeys[k] = at
				}
			}
			if t == "endpoint" {
				ref(sub("remote"), m["remote"], "remote", "remotes", remotes)
			} else {
				ref(sub("endpoint"), m["endpoint"], "endpoint", "modules.endpoint", endpoints)
			}
			if t != "function" {
				ref(sub("function"), m["function"], "function", "modules.function", functions)
			}
			if r, ok := m["resource"].(string); ok {
				key, _, _ := strings.Cut(r, "/")
				ref(sub("resource"), key, "resource", "resources", resources)
			}
			if res, ok := m["resolver"].(map[string]any); ok {
				ref(sub("resolver", "endpoint"), res["endpoint"], "endpoint", "modules.endpoint", endpoints)
				ref(sub("resolver", "function"), res["function"], "function", "modules.function", functions)
			}
		}
	}

	if perms, ok := top["permissions"].(map[string]any); ok {
		ext, _ := perms["external"].(map[string]any)
		fetch, _ := ext["fetch"].(map[string]any)
		for _, side := range []string{"backend", "client"} {
			items, _ := fetch[side].([]any)
			for i, it := range items {
				if m, ok := it.(map[string]any); ok {
					ref([]string{"permissions", "external", "fetch", side, strconv.Itoa(i), "remote"}, m["remote"], "remote", "remotes", remotes)
				}
			}
		}
	}

	if cm, ok := top["connectModules"].(map[string]any); ok {
		known := connectModuleTypes()
		for k := range cm {
			product, typ, ok := strings.Cut(k, ":")
			if !ok || (product != "jira" && product != "confluence") || known[typ] {
				continue // the schema reports the form
			}
			n, _ := d.at([]string{"connectModules", k})
			msg := fmt.Sprintf("connectModules: unknown Connect module type %q", typ)
			if s := suggest(typ, sortedKeys(known)); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", product+":"+s)
			}
			probs = append(probs, d.problem(n, true, Error, "%s", msg))
		}
	}
	return probs
}

// connectModuleTypes are the module types of the descriptor schema: one
// list serves the descriptor and a manifest's connectModules.
func connectModuleTypes() map[string]bool {
	s, err := loadSchema("connect-descriptor.schema.json")
	if err != nil {
		return nil
	}
	out := map[string]bool{}
	for _, n := range propertyNames(property(s.root, "modules")) {
		out[n] = true
	}
	return out
}
