package lint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// doc is a parsed descriptor or manifest: the plain value the schema
// validator reads, and the position of every value and member key.
type doc struct {
	file  string
	value any
	root  *node
}

// node is where one value stands in its file.
type node struct {
	line, col       int // the value
	keyLine, keyCol int // the member key, for object members; 0 otherwise
	kids            map[string]*node
}

// at returns the node at the instance location path, and how many of
// path's segments it resolved: a missing member stops at its parent.
func (d *doc) at(path []string) (*node, int) {
	n := d.root
	for i, seg := range path {
		k := n.kids[seg]
		if k == nil {
			return n, i
		}
		n = k
	}
	return n, len(path)
}

// problem makes a problem positioned at n; onKey positions it at the
// member key instead of the value, when n has one.
func (d *doc) problem(n *node, onKey bool, sev Severity, format string, args ...any) Problem {
	line, col := n.line, n.col
	if onKey && n.keyLine > 0 {
		line, col = n.keyLine, n.keyCol
	}
	return Problem{File: d.file, Line: line, Col: col, Severity: sev, Msg: fmt.Sprintf(format, args...)}
}

// lines maps byte offsets of a text to lines and columns (both from 1;
// columns count characters).
type lines struct {
	text   []byte
	starts []int
}

func newLines(text []byte) *lines {
	l := &lines{text: text, starts: []int{0}}
	for i, b := range text {
		if b == '\n' {
			l.starts = append(l.starts, i+1)
		}
	}
	return l
}

func (l *lines) pos(off int) (line, col int) {
	off = min(max(off, 0), len(l.text))
	lo, hi := 0, len(l.starts)-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if l.starts[mid] <= off {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo + 1, utf8.RuneCount(l.text[l.starts[lo]:off]) + 1
}

// parseJSON reads one JSON value with the position of everything in it.
// A syntax error, a duplicate key or trailing data is a problem with its
// line and column.
func parseJSON(raw []byte, file string) (*doc, []Problem) {
	l := newLines(raw)
	d := &doc{file: file}
	p := &jsonParser{raw: raw, dec: json.NewDecoder(bytes.NewReader(raw)), lines: l, doc: d}
	p.dec.UseNumber()
	v, n, err := p.value()
	if err == nil {
		off := p.next()
		if _, err2 := p.dec.Token(); err2 != io.EOF {
			line, col := l.pos(off)
			return nil, []Problem{{File: file, Line: line, Col: col, Msg: "unexpected data after the JSON value: the file must hold one JSON object"}}
		}
		d.value, d.root = v, n
		return d, p.dups
	}
	var se *json.SyntaxError
	off := p.next()
	msg := err.Error()
	switch {
	case errors.As(err, &se):
		// The decoder's offsets count differently from Unmarshal's,
		// whose Offset is just past the byte that broke the syntax.
		var v any
		if errors.As(json.Unmarshal(raw, &v), &se) {
			off = int(se.Offset) - 1
		}
		msg = "invalid JSON: " + se.Error()
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		off = len(raw)
		msg = "invalid JSON: the file ends before the value does (a missing '}' or ']'?)"
	}
	line, col := l.pos(off)
	return nil, append(p.dups, Problem{File: file, Line: line, Col: col, Msg: msg})
}

type jsonParser struct {
	raw   []byte
	dec   *json.Decoder
	lines *lines
	doc   *doc
	dups  []Problem
}

// next is the offset of the next token: the decoder stands after the
// previous one, before any white space and separators.
func (p *jsonParser) next() int {
	off := int(p.dec.InputOffset())
	for off < len(p.raw) && bytes.IndexByte([]byte(" \t\r\n,:"), p.raw[off]) >= 0 {
		off++
	}
	return off
}

func (p *jsonParser) value() (any, *node, error) {
	line, col := p.lines.pos(p.next())
	n := &node{line: line, col: col}
	tok, err := p.dec.Token()
	if err != nil {
		return nil, nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			obj := map[string]any{}
			n.kids = map[string]*node{}
			for p.dec.More() {
				kl, kc := p.lines.pos(p.next())
				keyTok, err := p.dec.Token()
				if err != nil {
					return nil, nil, err
				}
				key, _ := keyTok.(string)
				v, kid, err := p.value()
				if err != nil {
					return nil, nil, err
				}
				kid.keyLine, kid.keyCol = kl, kc
				if first, dup := n.kids[key]; dup {
					p.dups = append(p.dups, Problem{File: p.doc.file, Line: kl, Col: kc,
						Msg: fmt.Sprintf("duplicate key %q (first at line %d): keep one", key, first.keyLine)})
					continue
				}
				obj[key], n.kids[key] = v, kid
			}
			if _, err := p.dec.Token(); err != nil {
				return nil, nil, err
			}
			return obj, n, nil
		case '[':
			arr := []any{}
			n.kids = map[string]*node{}
			for p.dec.More() {
				v, kid, err := p.value()
				if err != nil {
					return nil, nil, err
				}
				n.kids[strconv.Itoa(len(arr))] = kid
				arr = append(arr, v)
			}
			if _, err := p.dec.Token(); err != nil {
				return nil, nil, err
			}
			return arr, n, nil
		}
		return nil, nil, fmt.Errorf("unexpected %q", t)
	}
	return tok, n, nil
}

// yamlLine finds the line the YAML parser names in its errors.
var yamlLine = regexp.MustCompile(`line (\d+)(?:, column (\d+))?`)

// parseYAML reads one YAML document with the position of everything in
// it. Anchors and aliases are resolved; keys must be strings.
func parseYAML(raw []byte, file string) (*doc, []Problem) {
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		line, col := 1, 1
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
			if m[2] != "" {
				col, _ = strconv.Atoi(m[2])
			}
		}
		return nil, []Problem{{File: file, Line: line, Col: col, Msg: "invalid YAML: " + err.Error()}}
	}
	d := &doc{file: file}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, []Problem{{File: file, Line: 1, Col: 1, Msg: "the file is empty: a manifest starts with app: {id, runtime}"}}
	}
	var probs []Problem
	v, n := yamlValue(root.Content[0], file, &probs, 0)
	d.value, d.root = v, n
	return d, probs
}

// maxAliasDepth bounds alias expansion, so a hostile file cannot make
// the converted value explode.
const maxAliasDepth = 16

func yamlValue(y *yaml.Node, file string, probs *[]Problem, depth int) (any, *node) {
	n := &node{line: y.Line, col: y.Column}
	switch y.Kind {
	case yaml.AliasNode:
		if depth >= maxAliasDepth || y.Alias == nil {
			*probs = append(*probs, Problem{File: file, Line: y.Line, Col: y.Column, Msg: "alias nested too deeply"})
			return nil, n
		}
		v, target := yamlValue(y.Alias, file, probs, depth+1)
		n.kids = target.kids
		return v, n
	case yaml.MappingNode:
		obj := map[string]any{}
		n.kids = map[string]*node{}
		for i := 0; i+1 < len(y.Content); i += 2 {
			k, val := y.Content[i], y.Content[i+1]
			if k.Kind != yaml.ScalarNode || (k.Tag != "!!str" && k.Tag != "!!int" && k.Tag != "!!bool") {
				*probs = append(*probs, Problem{File: file, Line: k.Line, Col: k.Column, Msg: "keys must be plain strings (merge keys and complex keys are not supported)"})
				continue
			}
			v, kid := yamlValue(val, file, probs, depth)
			kid.keyLine, kid.keyCol = k.Line, k.Column
			if first, dup := n.kids[k.Value]; dup {
				*probs = append(*probs, Problem{File: file, Line: k.Line, Col: k.Column,
					Msg: fmt.Sprintf("duplicate key %q (first at line %d): keep one", k.Value, first.keyLine)})
				continue
			}
			obj[k.Value], n.kids[k.Value] = v, kid
		}
		return obj, n
	case yaml.SequenceNode:
		arr := make([]any, 0, len(y.Content))
		n.kids = map[string]*node{}
		for _, item := range y.Content {
			v, kid := yamlValue(item, file, probs, depth)
			n.kids[strconv.Itoa(len(arr))] = kid
			arr = append(arr, v)
		}
		return arr, n
	case yaml.ScalarNode:
		var v any
		if err := y.Decode(&v); err != nil {
			*probs = append(*probs, Problem{File: file, Line: y.Line, Col: y.Column, Msg: "invalid value: " + err.Error()})
			return nil, n
		}
		switch t := v.(type) {
		case int:
			return json.Number(strconv.Itoa(t)), n
		case uint64:
			return json.Number(strconv.FormatUint(t, 10)), n
		case int64:
			return json.Number(strconv.FormatInt(t, 10)), n
		case float64:
			return json.Number(strconv.FormatFloat(t, 'g', -1, 64)), n
		}
		return v, n
	}
	return nil, n
}
