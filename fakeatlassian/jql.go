package fakeatlassian

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// A small JQL: clauses joined by AND, then an optional ORDER BY. It covers
// what apps commonly send (project = X, key in, status = "Done",
// summary ~ "text", assignee = currentUser(), labels = x) and answers
// anything else with the error Jira gives for bad JQL, so an app never
// silently gets a wrong result.

type jqlClause struct {
	field  string
	op     string // =, !=, ~, !~, in, not in, is, is not
	values []string
}

type jqlOrder struct {
	field string
	desc  bool
}

type jqlQuery struct {
	clauses []jqlClause
	order   []jqlOrder
}

var jqlFields = map[string]string{
	"project": "project", "key": "key", "issuekey": "key", "id": "key", "status": "status",
	"summary": "summary", "text": "text", "description": "description", "issuetype": "issuetype",
	"type": "issuetype", "labels": "labels", "assignee": "assignee", "reporter": "reporter",
	"created": "created", "updated": "updated",
}

func tokenizeJQL(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(' || c == ')' || c == ',':
			toks = append(toks, string(c))
			i++
		case c == '=' || c == '~':
			toks = append(toks, string(c))
			i++
		case c == '!' && i+1 < len(s) && (s[i+1] == '=' || s[i+1] == '~'):
			toks = append(toks, s[i:i+2])
			i += 2
		case c == '"' || c == '\'':
			j := i + 1
			var b strings.Builder
			for ; j < len(s) && s[j] != c; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("the quoted string starting at character %d is not closed", i+1)
			}
			toks = append(toks, "\x00"+b.String()) // marks a quoted value
			i = j + 1
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\r\n(),=~!\"'<>", rune(s[j])) {
				j++
			}
			if j == i {
				return nil, fmt.Errorf("the operator %q at character %d is not supported", string(c), i+1)
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks, nil
}

func parseJQL(s string) (*jqlQuery, error) {
	toks, err := tokenizeJQL(s)
	if err != nil {
		return nil, err
	}
	q := &jqlQuery{}
	pos := 0
	peek := func() string {
		if pos < len(toks) {
			return toks[pos]
		}
		return ""
	}
	next := func() string { t := peek(); pos++; return t }
	isWord := func(t, w string) bool { return !strings.HasPrefix(t, "\x00") && strings.EqualFold(t, w) }
	value := func() (string, error) {
		t := next()
		switch {
		case t == "" || t == "(" || t == ")" || t == ",":
			return "", fmt.Errorf("expected a value but got %q", t)
		case strings.HasPrefix(t, "\x00"):
			return t[1:], nil
		case isWord(t, "currentUser") && peek() == "(":
			next()
			if next() != ")" {
				return "", fmt.Errorf("currentUser takes no arguments")
			}
			return "currentUser()", nil
		}
		return t, nil
	}

	for pos < len(toks) && !isWord(peek(), "order") {
		if len(q.clauses) > 0 {
			t := next()
			if isWord(t, "or") || isWord(t, "not") {
				return nil, fmt.Errorf("%s is not supported by the fake (AND only)", strings.ToUpper(t))
			}
			if !isWord(t, "and") {
				return nil, fmt.Errorf("expected AND, OR or ORDER BY but got %q", strings.TrimPrefix(t, "\x00"))
			}
		}
		name := strings.TrimPrefix(next(), "\x00")
		field, ok := jqlFields[strings.ToLower(name)]
		if !ok {
			return nil, fmt.Errorf("field %q does not exist or you do not have permission to view it", name)
		}
		var op string
		switch t := next(); {
		case t == "=" || t == "!=" || t == "~" || t == "!~":
			op = t
		case isWord(t, "in"):
			op = "in"
		case isWord(t, "not") && isWord(peek(), "in"):
			next()
			op = "not in"
		case isWord(t, "is"):
			op = "is"
			if isWord(peek(), "not") {
				next()
				op = "is not"
			}
		default:
			return nil, fmt.Errorf("the operator %q is not supported after %q", strings.TrimPrefix(t, "\x00"), name)
		}
		c := jqlClause{field: field, op: op}
		if op == "in" || op == "not in" {
			if next() != "(" {
				return nil, fmt.Errorf("expected '(' after %s", strings.ToUpper(op))
			}
			for {
				v, err := value()
				if err != nil {
					return nil, err
				}
				c.values = append(c.values, v)
				t := next()
				if t == ")" {
					break
				}
				if t != "," {
					return nil, fmt.Errorf("expected ',' or ')' in the list of %s", name)
				}
			}
		} else {
			v, err := value()
			if err != nil {
				return nil, err
			}
			if (op == "is" || op == "is not") && !isWord(v, "empty") && !isWord(v, "null") {
				return nil, fmt.Errorf("IS must be followed by EMPTY or NULL")
			}
			c.values = []string{v}
		}
		if (op == "~" || op == "!~") && field != "summary" && field != "text" && field != "description" {
			return nil, fmt.Errorf("the operator '~' is not supported by the field %q", name)
		}
		q.clauses = append(q.clauses, c)
	}
	if isWord(peek(), "order") {
		next()
		if !isWord(next(), "by") {
			return nil, fmt.Errorf("expected BY after ORDER")
		}
		for {
			name := strings.TrimPrefix(next(), "\x00")
			field, ok := jqlFields[strings.ToLower(name)]
			if !ok {
				return nil, fmt.Errorf("field %q cannot be used in ORDER BY", name)
			}
			o := jqlOrder{field: field}
			if isWord(peek(), "asc") {
				next()
			} else if isWord(peek(), "desc") {
				next()
				o.desc = true
			}
			q.order = append(q.order, o)
			if peek() != "," {
				break
			}
			next()
		}
	}
	if pos < len(toks) {
		return nil, fmt.Errorf("unexpected %q at the end of the query", strings.TrimPrefix(toks[pos], "\x00"))
	}
	return q, nil
}

// matches reports whether is satisfies every clause; me is the caller's
// accountId for currentUser().
func (q *jqlQuery) matches(s *siteState, is *Issue, me string) bool {
	for _, c := range q.clauses {
		if !c.matches(s, is, me) {
			return false
		}
	}
	return true
}

func (c jqlClause) matches(s *siteState, is *Issue, me string) bool {
	fieldValues := func() []string {
		switch c.field {
		case "project":
			p := s.project(is.ProjectKey)
			return []string{p.Key, p.ID, p.Name}
		case "key":
			return []string{is.Key, is.ID}
		case "status":
			return []string{is.Status}
		case "issuetype":
			return []string{is.IssueType}
		case "labels":
			return is.Labels
		case "assignee":
			if is.Assignee == "" {
				return nil
			}
			return []string{is.Assignee}
		case "reporter":
			return []string{is.Reporter}
		case "summary":
			return []string{is.Summary}
		case "description":
			return []string{is.Description}
		case "text":
			return []string{is.Summary, is.Description}
		}
		return nil
	}()
	want := make([]string, len(c.values))
	for i, v := range c.values {
		if v == "currentUser()" {
			v = me
		}
		want[i] = v
	}
	anyEqual := func() bool {
		for _, fv := range fieldValues {
			for _, w := range want {
				if strings.EqualFold(fv, w) {
					return true
				}
			}
		}
		return false
	}
	contains := func() bool {
		for _, fv := range fieldValues {
			if strings.Contains(strings.ToLower(fv), strings.ToLower(strings.Trim(want[0], "*"))) {
				return true
			}
		}
		return false
	}
	switch c.op {
	case "=", "in":
		return anyEqual()
	case "!=", "not in":
		return !anyEqual()
	case "~":
		return contains()
	case "!~":
		return !contains()
	case "is":
		return len(fieldValues) == 0
	case "is not":
		return len(fieldValues) > 0
	}
	return false
}

// sortIssues orders issues by q's ORDER BY, or newest first by default.
func (q *jqlQuery) sortIssues(list []*Issue) {
	order := q.order
	if len(order) == 0 {
		order = []jqlOrder{{field: "created", desc: true}}
	}
	num := func(is *Issue) int {
		_, n, _ := strings.Cut(is.Key, "-")
		i, _ := strconv.Atoi(n)
		return i
	}
	id := func(is *Issue) int { i, _ := strconv.Atoi(is.ID); return i }
	sort.SliceStable(list, func(i, j int) bool {
		a, b := list[i], list[j]
		for _, o := range order {
			var cmp int
			switch o.field {
			case "key":
				cmp = strings.Compare(a.ProjectKey, b.ProjectKey)
				if cmp == 0 {
					cmp = num(a) - num(b)
				}
			case "created":
				cmp = a.Created.Compare(b.Created)
				if cmp == 0 {
					cmp = id(a) - id(b)
				}
			case "updated":
				cmp = a.Updated.Compare(b.Updated)
			case "summary":
				cmp = strings.Compare(strings.ToLower(a.Summary), strings.ToLower(b.Summary))
			case "status":
				cmp = strings.Compare(a.Status, b.Status)
			case "project":
				cmp = strings.Compare(a.ProjectKey, b.ProjectKey)
			default:
				cmp = id(a) - id(b)
			}
			if cmp != 0 {
				if o.desc {
					return cmp > 0
				}
				return cmp < 0
			}
		}
		return false
	})
}
