package lint

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// schemaSet is one compiled embedded schema. Compiling takes a
// millisecond; a check compiles its schema afresh, so the package keeps
// no state.
type schemaSet struct {
	c    *jsonschema.Compiler
	root *jsonschema.Schema
}

func loadSchema(file string) (*schemaSet, error) {
	raw, err := schemaFiles.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("lint: schema %s: %w", file, err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("lint: schema %s: %w", file, err)
	}
	url := "tenon:///" + file
	c := jsonschema.NewCompiler()
	if err := c.AddResource(url, v); err != nil {
		return nil, fmt.Errorf("lint: schema %s: %w", file, err)
	}
	root, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("lint: schema %s: %w", file, err)
	}
	return &schemaSet{c: c, root: root}, nil
}

// at returns the compiled schema at a location the validator reported.
func (s *schemaSet) at(loc string) *jsonschema.Schema {
	sch, err := s.c.Compile(loc)
	if err != nil {
		return nil
	}
	return sch
}

// property finds the schema of an object member, through $ref.
func property(sch *jsonschema.Schema, name string) *jsonschema.Schema {
	for ; sch != nil; sch = sch.Ref {
		if p := sch.Properties[name]; p != nil {
			return p
		}
	}
	return nil
}

// propertyNames lists the members a schema names, through $ref.
func propertyNames(sch *jsonschema.Schema) []string {
	var names []string
	for ; sch != nil; sch = sch.Ref {
		for n := range sch.Properties {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// describe is the description of a schema or of what it refers to.
func describe(sch *jsonschema.Schema) string {
	for ; sch != nil; sch = sch.Ref {
		if sch.Description != "" {
			return sch.Description
		}
	}
	return ""
}

// validate checks d against the embedded schema file and turns every
// failure into a positioned problem.
func validate(d *doc, file string) []Problem {
	s, err := loadSchema(file)
	if err != nil {
		// The schemas are embedded and tested; this is a build mistake.
		return []Problem{{File: d.file, Line: 1, Col: 1, Msg: err.Error()}}
	}
	err = s.root.Validate(d.value)
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return nil
	}
	r := &reporter{doc: d, schemas: s, printer: message.NewPrinter(language.English)}
	r.walk(verr)
	return r.probs
}

type reporter struct {
	doc     *doc
	schemas *schemaSet
	printer *message.Printer
	probs   []Problem
	seen    map[string]bool
}

func (r *reporter) add(p Problem) {
	k := p.String()
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	if !r.seen[k] {
		r.seen[k] = true
		r.probs = append(r.probs, p)
	}
}

// deepest is the longest instance location among e and its causes: how
// far a branch of a oneOf got before it failed.
func deepest(e *jsonschema.ValidationError) int {
	d := len(e.InstanceLocation)
	for _, c := range e.Causes {
		d = max(d, deepest(c))
	}
	return d
}

func (r *reporter) walk(e *jsonschema.ValidationError) {
	loc := e.InstanceLocation
	n, resolved := r.doc.at(loc)
	where := pathString(loc[:resolved])
	label := where
	if label == "" {
		label = "top level"
	}
	sch := r.schemas.at(e.SchemaURL)
	switch k := e.ErrorKind.(type) {
	case *kind.Schema, *kind.Group, *kind.AllOf, *kind.Reference:
		for _, c := range e.Causes {
			r.walk(c)
		}
	case *kind.OneOf, *kind.AnyOf:
		var best *jsonschema.ValidationError
		bestDepth := len(loc)
		for _, c := range e.Causes {
			if d := deepest(c); d > bestDepth {
				best, bestDepth = c, d
			}
		}
		if best == nil {
			// No branch got past this value: when all but one fail on
			// its type alone, the one left says what is wrong.
			var left []*jsonschema.ValidationError
			for _, c := range e.Causes {
				if _, typeOnly := c.ErrorKind.(*kind.Type); !typeOnly {
					left = append(left, c)
				}
			}
			if len(left) == 1 {
				best = left[0]
			}
		}
		if best != nil {
			r.walk(best)
			return
		}
		msg := describe(sch)
		if msg == "" {
			msg = "does not have any of the allowed forms"
		}
		r.add(r.doc.problem(n, false, Error, "%s: %s", label, msg))
	case *kind.Required:
		for _, m := range k.Missing {
			hint := describe(sch)
			if hint == "" {
				hint = describe(property(sch, m))
			}
			r.add(r.doc.problem(n, true, Error, "%s: missing %q%s", label, m, withHint(hint)))
		}
	case *kind.AdditionalProperties:
		allowed := propertyNames(sch)
		for _, p := range k.Properties {
			kid := n.kids[p]
			if kid == nil {
				kid = n
			}
			what := "unknown key"
			switch where {
			case "modules":
				what = "unknown module type"
			case "":
				what = "unknown top-level key"
			}
			msg := fmt.Sprintf("%s %q", what, p)
			if where != "" && what == "unknown key" {
				msg += " in " + where
			}
			if s := didYouMean(p, allowed); s != "" {
				msg += s
			} else if len(allowed) <= 12 {
				msg += "; known: " + strings.Join(allowed, ", ")
			}
			r.add(r.doc.problem(kid, true, Error, "%s", msg))
		}
	case *kind.Type:
		r.add(r.doc.problem(n, false, Error, "%s: must be %s, not %s%s", label, strings.Join(k.Want, " or "), k.Got, withHint(describe(sch))))
	case *kind.Enum:
		var want []string
		for _, v := range k.Want {
			want = append(want, fmt.Sprintf("%v", v))
		}
		msg := fmt.Sprintf("%s: %s is not one of %s", label, display(k.Got), strings.Join(want, ", "))
		if got, ok := k.Got.(string); ok {
			msg += didYouMean(got, want)
		}
		msg += withHint(describe(sch))
		r.add(r.doc.problem(n, false, Error, "%s", msg))
	case *kind.Const:
		hint := describe(sch)
		if hint == "" {
			hint = fmt.Sprintf("it must be %s", display(k.Want))
		}
		r.add(r.doc.problem(n, false, Error, "%s: %s is not allowed: %s", label, display(k.Got), hint))
	case *kind.Pattern:
		hint := describe(sch)
		if hint == "" {
			hint = fmt.Sprintf("it must match %s", k.Want)
		}
		r.add(r.doc.problem(n, false, Error, "%s: %q is not allowed: %s", label, k.Got, hint))
	default:
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				r.walk(c)
			}
			return
		}
		r.add(r.doc.problem(n, false, Error, "%s: %s%s", label, e.ErrorKind.LocalizedString(r.printer), withHint(describe(sch))))
	}
}

func withHint(h string) string {
	if h == "" {
		return ""
	}
	return ": " + h
}

// display shows a JSON value as it is written.
func display(v any) string {
	switch t := v.(type) {
	case string:
		return strconv.Quote(t)
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	}
	return fmt.Sprint(v)
}

// pathString writes an instance location the way the file's author
// reads it: modules.webPanels[0].url; "" for the top level.
func pathString(loc []string) string {
	var b strings.Builder
	for _, seg := range loc {
		if _, err := strconv.Atoi(seg); err == nil {
			b.WriteString("[" + seg + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(seg)
	}
	return b.String()
}
