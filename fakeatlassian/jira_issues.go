package fakeatlassian

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Jira issue resources: get, create, edit, delete, transitions and search.

func (f *Fake) restGetIssue(w http.ResponseWriter, r *http.Request, rr *restRequest) {
	v, ok := apiVersion(w, r)
	if !ok {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	is := rr.site.issue(r.PathValue("key"))
	if is == nil {
		writeIssueNotFound(w)
		return
	}
	writeJSON(w, http.StatusOK, issueJSON(rr.site, is, v, fieldFilter(r.URL.Query()["fields"])))
}

func writeIssueNotFound(w http.ResponseWriter) {
	writeProductError(w, ProductJira, http.StatusNotFound, "Issue does not exist or you do not have permission to see it.")
}

// issueFields is the "fields" object of issue create and edit bodies.
type issueFields struct {
	Project *struct {
		Key string `json:"key"`
		ID  string `json:"id"`
	} `json:"project"`
	Summary     *string         `json:"summary"`
	Description json.RawMessage `json:"description"`
	IssueType   *struct {
		Name string `json:"name"`
		ID   string `json:"id"`
	} `json:"issuetype"`
	Labels   *[]string       `json:"labels"`
	Assignee json.RawMessage `json:"assignee"`
	Status   json.RawMessage `json:"status"`
}

func decodeIssueBody(w http.ResponseWriter, r *http.Request) (*issueFields, bool) {
	var body struct {
		Fields *issueFields `json:"fields"`
	}
	if !readJSON(w, r, &body, func(status int, msg string) { writeProductError(w, ProductJira, status, msg) }) {
		return nil, false
	}
	if body.Fields == nil {
		writeProductError(w, ProductJira, http.StatusBadRequest, "The body needs a \"fields\" object.")
		return nil, false
	}
	return body.Fields, true
}

// descriptionText accepts a plain string (API v2) or an Atlassian
// Document (v3) and keeps its text.
func descriptionText(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var doc any
	if json.Unmarshal(raw, &doc) != nil {
		return "", false
	}
	m, ok := doc.(map[string]any)
	if !ok || m["type"] != "doc" {
		return "", false
	}
	return strings.TrimSpace(adfText(m)), true
}

func adfText(n any) string {
	m, ok := n.(map[string]any)
	if !ok {
		return ""
	}
	if t, ok := m["text"].(string); ok {
		return t
	}
	var b strings.Builder
	content, _ := m["content"].([]any)
	for _, c := range content {
		b.WriteString(adfText(c))
	}
	if m["type"] == "paragraph" {
		b.WriteString("\n")
	}
	return b.String()
}

func assigneeOf(raw json.RawMessage) (*string, bool) {
	if len(raw) == 0 {
		return nil, true
	}
	if string(raw) == "null" {
		empty := ""
		return &empty, true
	}
	var a struct {
		AccountID string `json:"accountId"`
	}
	if json.Unmarshal(raw, &a) != nil {
		return nil, false
	}
	return &a.AccountID, true
}

func (f *Fake) restCreateIssue(w http.ResponseWriter, r *http.Request, rr *restRequest) {
	v, ok := apiVersion(w, r)
	if !ok {
		return
	}
	fields, ok := decodeIssueBody(w, r)
	if !ok {
		return
	}
	errs := map[string]string{}
	in := IssueInput{}
	if fields.Project == nil {
		errs["project"] = "Specify a valid project ID or key"
	} else {
		in.ProjectKey = fields.Project.Key
		if in.ProjectKey == "" {
			in.ProjectKey = fields.Project.ID
		}
	}
	if fields.Summary == nil || strings.TrimSpace(*fields.Summary) == "" {
		errs["summary"] = "You must specify a summary of the issue."
	} else {
		in.Summary = *fields.Summary
	}
	if d, ok := descriptionText(fields.Description); ok {
		in.Description = d
	} else {
		errs["description"] = "Operation value must be a string or an Atlassian Document."
	}
	if fields.IssueType != nil {
		in.IssueType = fields.IssueType.Name
		for name, id := range issueTypes {
			if id == fields.IssueType.ID {
				in.IssueType = name
			}
		}
		if _, ok := issueTypes[in.IssueType]; !ok {
			errs["issuetype"] = "Specify a valid issue type"
		}
	}
	if fields.Labels != nil {
		in.Labels = *fields.Labels
	}
	assignee, ok := assigneeOf(fields.Assignee)
	if !ok {
		errs["assignee"] = "Specify the assignee as {\"accountId\": ...}"
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s := rr.site
	if fields.Project != nil && s.project(in.ProjectKey) == nil {
		errs["project"] = "Specify a valid project ID or key"
	}
	if assignee != nil && *assignee != "" && s.users[*assignee] == nil {
		errs["assignee"] = fmt.Sprintf("The user %q does not exist.", *assignee)
	}
	if len(errs) > 0 {
		writeFieldErrors(w, errs)
		return
	}
	now := f.now()
	is := s.createIssue(in, rr.caller.accountID, now)
	if assignee != nil {
		is.Assignee = *assignee
	}
	f.queueIssueEventLocked(s, eventIssueCreated, cloneIssue(is), nil, rr.caller.accountID)
	writeJSON(w, http.StatusCreated, map[string]any{"id": is.ID, "key": is.Key, "self": issueSelf(s, is, v)})
}

func (f *Fake) restEditIssue(w http.ResponseWriter, r *http.Request, rr *restRequest) {
	if _, ok := apiVersion(w, r); !ok {
		return
	}
	fields, ok := decodeIssueBody(w, r)
	if !ok {
		return
	}
	errs := map[string]string{}
	up := IssueUpdate{Summary: fields.Summary, Labels: fields.Labels}
	if fields.Project != nil {
		errs["project"] = "Field 'project' cannot be set. It is not on the appropriate screen, or unknown."
	}
	if len(fields.Status) > 0 {
		errs["status"] = "Field 'status' cannot be set. It is not on the appropriate screen, or unknown. Use a transition."
	}
	if fields.Summary != nil && strings.TrimSpace(*fields.Summary) == "" {
		errs["summary"] = "You must specify a summary of the issue."
	}
	if len(fields.Description) > 0 {
		d, ok := descriptionText(fields.Description)
		if !ok {
			errs["description"] = "Operation value must be a string or an Atlassian Document."
		}
		up.Description = &d
	}
	var okA bool
	if up.Assignee, okA = assigneeOf(fields.Assignee); !okA {
		errs["assignee"] = "Specify the assignee as {\"accountId\": ...}"
	}
	if len(errs) > 0 {
		writeFieldErrors(w, errs)
		return
	}
	f.updateIssueREST(w, rr, r.PathValue("key"), up)
}

func (f *Fake) updateIssueREST(w http.ResponseWriter, rr *restRequest, key string, up IssueUpdate) {
	f.mu.Lock()
	defer f.mu.Unlock()
	is := rr.site.issue(key)
	if is == nil {
		writeIssueNotFound(w)
		return
	}
	items, err := rr.site.updateIssue(is, up, f.now())
	if err != nil {
		writeProductError(w, ProductJira, http.StatusBadRequest, strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": "))
		return
	}
	if len(items) > 0 {
		f.queueIssueEventLocked(rr.site, eventIssueUpdated, cloneIssue(is), items, rr.caller.accountID)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (f *Fake) restDeleteIssue(w http.ResponseWriter, r *http.Request, rr *restRequest) {
	if _, ok := apiVersion(w, r); !ok {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	is := rr.site.issue(r.PathValue("key"))
	if is == nil {
		writeIssueNotFound(w)
		return
	}
	rr.site.deleteIssue(is)
	f.queueIssueEventLocked(rr.site, eventIssueDeleted, cloneIssue(is), nil, rr.caller.accountID)
	w.WriteHeader(http.StatusNoContent)
}

// Transition ids: one per target status, like a simple Jira workflow.
var transitionIDs = map[string]string{"11": "To Do", "21": "In Progress", "31": "Done"}

func (f *Fake) restTransitions(w http.ResponseWriter, r *http.Request, rr *restRequest) {
	if _, ok := apiVersion(w, r); !ok {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if rr.site.issue(r.PathValue("key")) == nil {
		writeIssueNotFound(w)
		return
	}
	var out []any
	for _, id := range []string{"11", "21", "31"} {
		st, _ := findStatus(transitionIDs[id])
		out = append(out, map[string]any{"id": id, "name": st.Name, "to": statusJSON(rr.site, st), "isAvailable": true})
	}
	writeJSON(w, http.StatusOK, map[string]any{"expand": "transitions", "transitions": out})
}

func (f *Fake) restDoTransition(w http.ResponseWriter, r *http.Request, rr *restRequest) {
	if _, ok := apiVersion(w, r); !ok {
		return
	}
	var body struct {
		Transition struct {
			ID string `json:"id"`
		} `json:"transition"`
	}
	if !readJSON(w, r, &body, func(status int, msg string) { writeProductError(w, ProductJira, status, msg) }) {
		return
	}
	target, ok := transitionIDs[body.Transition.ID]
	if !ok {
		writeFieldErrors(w, map[string]string{"transition": fmt.Sprintf("Transition id '%s' is not valid for this issue.", body.Transition.ID)})
		return
	}
	f.updateIssueREST(w, rr, r.PathValue("key"), IssueUpdate{Status: &target})
}

// fieldFilter returns which issue fields to include; nil means all.
func fieldFilter(params []string) map[string]bool {
	var names []string
	for _, p := range params {
		for _, n := range strings.Split(p, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
	}
	if len(names) == 0 || slices.Contains(names, "*all") || slices.Contains(names, "*navigable") {
		return nil
	}
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// searchParams are the parameters of both search APIs, from the query
// (GET) or the JSON body (POST).
type searchParams struct {
	JQL           string   `json:"jql"`
	StartAt       int      `json:"startAt"`
	MaxResults    *int     `json:"maxResults"`
	Fields        []string `json:"fields"`
	NextPageToken string   `json:"nextPageToken"`
}

func (f *Fake) restSearch(w http.ResponseWriter, r *http.Request, rr *restRequest) {
	v, ok := apiVersion(w, r)
	if !ok {
		return
	}
	enhanced := strings.HasSuffix(r.URL.Path, "/search/jql")
	var p searchParams
	if r.Method == http.MethodPost {
		if !readJSON(w, r, &p, func(status int, msg string) { writeProductError(w, ProductJira, status, msg) }) {
			return
		}
	} else {
		q := r.URL.Query()
		p.JQL, p.NextPageToken, p.Fields = q.Get("jql"), q.Get("nextPageToken"), q["fields"]
		if s := q.Get("startAt"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				writeProductError(w, ProductJira, http.StatusBadRequest, "startAt must be a non-negative integer.")
				return
			}
			p.StartAt = n
		}
		if s := q.Get("maxResults"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				writeProductError(w, ProductJira, http.StatusBadRequest, "maxResults must be a non-negative integer.")
				return
			}
			p.MaxResults = &n
		}
	}
	max := 50
	if p.MaxResults != nil {
		max = min(*p.MaxResults, 100)
	}
	if enhanced {
		p.StartAt = 0
		if p.NextPageToken != "" {
			b, err := base64.RawURLEncoding.DecodeString(p.NextPageToken)
			n, err2 := strconv.Atoi(string(b))
			if err != nil || err2 != nil || n < 0 {
				writeProductError(w, ProductJira, http.StatusBadRequest, "The nextPageToken is invalid.")
				return
			}
			p.StartAt = n
		}
	}
	q, err := parseJQL(p.JQL)
	if err != nil {
		writeProductError(w, ProductJira, http.StatusBadRequest, "Error in the JQL Query: "+err.Error())
		return
	}
	filter := fieldFilter(p.Fields)
	if enhanced && len(p.Fields) == 0 {
		filter = map[string]bool{"id": true} // the new API returns ids only unless asked
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	s := rr.site
	var found []*Issue
	for _, key := range s.issueOrder {
		if is := s.issues[key]; q.matches(s, is, rr.caller.accountID) {
			found = append(found, is)
		}
	}
	q.sortIssues(found)
	total := len(found)
	start := min(p.StartAt, total)
	end := min(start+max, total)
	issues := []any{}
	for _, is := range found[start:end] {
		issues = append(issues, issueJSON(s, is, v, filter))
	}
	if enhanced {
		out := map[string]any{"issues": issues, "isLast": end >= total}
		if end < total {
			out["nextPageToken"] = base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end)))
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"expand": "names,schema", "startAt": start, "maxResults": max, "total": total, "issues": issues,
	})
}
