package fakeatlassian

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
)

// restRequest is what a REST handler works with.
type restRequest struct {
	site   *siteState
	caller *caller
}

type restKey struct{}

func restOf(r *http.Request) *restRequest { return r.Context().Value(restKey{}).(*restRequest) }

// writeProductError answers in the product's error shape: Jira's
// {"errorMessages": [...], "errors": {}} or Confluence's
// {"statusCode": ..., "message": ...}.
func writeProductError(w http.ResponseWriter, product string, status int, msg string) {
	if product == ProductConfluence {
		writeJSON(w, status, map[string]any{"statusCode": status, "message": msg})
		return
	}
	writeJSON(w, status, map[string]any{"errorMessages": []string{msg}, "errors": map[string]string{}})
}

// writeFieldErrors is Jira's answer to invalid fields.
func writeFieldErrors(w http.ResponseWriter, errs map[string]string) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"errorMessages": []string{}, "errors": errs})
}

// serveSite dispatches everything under /s/<name>: REST under the site's
// base path + /rest/, product pages otherwise.
func (f *Fake) serveSite(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("site")
	f.mu.Lock()
	s := f.sites[name]
	f.mu.Unlock()
	note := noteOf(r)
	if s == nil {
		http.Error(w, "no such site", http.StatusNotFound)
		return
	}
	note.site = name
	rel, ok := strings.CutPrefix(r.URL.Path, s.basePath)
	if !ok || (rel != "" && !strings.HasPrefix(rel, "/")) {
		http.Error(w, "not found (this "+s.info.Product+" site lives at "+s.info.BaseURL+")", http.StatusNotFound)
		return
	}
	if strings.HasPrefix(rel, "/rest/") {
		note.kind = KindREST
		f.serveREST(w, r, s, rel)
		return
	}
	f.servePage(w, r, s, rel)
}

// serveREST authenticates a REST request and routes it.
func (f *Fake) serveREST(w http.ResponseWriter, r *http.Request, s *siteState, rel string) {
	if f.applyKnobs(w, r, s.info.Product) {
		return
	}
	c, refusal := f.authenticateREST(r, s, rawRequestPath(r))
	if c == nil {
		noteOf(r).err = refusal
		w.Header().Set("WWW-Authenticate", `JWT realm="Atlassian", Bearer realm="Atlassian"`)
		writeProductError(w, s.info.Product, http.StatusUnauthorized, refusal)
		return
	}
	f.routeREST(w, r, s, rel, c)
}

// routeREST runs an authenticated REST request: it is shared by the
// network path and by AP.request from product pages.
func (f *Fake) routeREST(w http.ResponseWriter, r *http.Request, s *siteState, rel string, c *caller) {
	note := noteOf(r)
	note.app, note.accountID, note.auth = c.appKey, c.accountID, c.auth
	if path.Clean(rel) != rel {
		writeProductError(w, s.info.Product, http.StatusNotFound, "No REST resource at "+rel)
		return
	}
	mux := f.restJira
	if s.info.Product == ProductConfluence {
		mux = f.restConfluence
	}
	r2 := r.Clone(context.WithValue(r.Context(), restKey{}, &restRequest{site: s, caller: c}))
	r2.URL.Path = rel
	r2.URL.RawPath = ""
	if _, pattern := mux.Handler(r2); pattern == "" {
		writeProductError(w, s.info.Product, http.StatusNotFound, "No REST resource at "+r.Method+" "+rel)
		return
	}
	mux.ServeHTTP(w, r2)
}

// restHandler wraps a handler with the scope check; scope "" means the
// handler checks access itself.
func (f *Fake) restHandler(scope string, h func(http.ResponseWriter, *http.Request, *restRequest)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rr := restOf(r)
		want := scope
		if want == "*" {
			want = requiredScope(r.Method)
		}
		if want != "" && !hasScope(rr.caller.scopes, want) {
			writeProductError(w, rr.site.info.Product, http.StatusForbidden,
				fmt.Sprintf("The app %q is not allowed to do this: scope %s is required.", rr.caller.appKey, want))
			return
		}
		h(w, r, rr)
	}
}

func (f *Fake) buildRESTRouters() {
	j := http.NewServeMux()
	h := func(pattern string, scope string, fn func(http.ResponseWriter, *http.Request, *restRequest)) {
		j.Handle(pattern, f.restHandler(scope, fn))
	}
	h("GET /rest/api/{v}/myself", "*", f.restMyself)
	h("GET /rest/api/{v}/user", "*", f.restUser)
	h("GET /rest/api/{v}/serverInfo", "", f.restServerInfo)
	h("GET /rest/api/{v}/project", "*", f.restProjects)
	h("GET /rest/api/{v}/project/{key}", "*", f.restProject)
	h("POST /rest/api/{v}/issue", "*", f.restCreateIssue)
	h("GET /rest/api/{v}/issue/{key}", "*", f.restGetIssue)
	h("PUT /rest/api/{v}/issue/{key}", "*", f.restEditIssue)
	h("DELETE /rest/api/{v}/issue/{key}", "*", f.restDeleteIssue)
	h("GET /rest/api/{v}/issue/{key}/transitions", "*", f.restTransitions)
	h("POST /rest/api/{v}/issue/{key}/transitions", "*", f.restDoTransition)
	h("GET /rest/api/{v}/issue/{key}/properties", "*", f.restIssuePropertyKeys)
	h("GET /rest/api/{v}/issue/{key}/properties/{prop}", "*", f.restIssueProperty)
	h("PUT /rest/api/{v}/issue/{key}/properties/{prop}", "*", f.restIssueProperty)
	h("DELETE /rest/api/{v}/issue/{key}/properties/{prop}", "*", f.restIssueProperty)
	h("GET /rest/api/{v}/search", "*", f.restSearch)
	h("POST /rest/api/{v}/search", "READ", f.restSearch)
	h("GET /rest/api/{v}/search/jql", "*", f.restSearch)
	h("POST /rest/api/{v}/search/jql", "READ", f.restSearch)
	f.connectRoutes(j)
	f.restJira = j

	c := http.NewServeMux()
	c.Handle("GET /rest/api/content/{id}", f.restHandler("*", f.restContent))
	c.Handle("GET /rest/api/content", f.restHandler("*", f.restContentList))
	c.Handle("GET /rest/api/user/current", f.restHandler("*", f.restConfluenceCurrentUser))
	f.connectRoutes(c)
	f.restConfluence = c
}

// connectRoutes are the Connect APIs both products have.
func (f *Fake) connectRoutes(mux *http.ServeMux) {
	mux.Handle("GET /rest/atlassian-connect/1/addons/{appKey}", f.restHandler("", f.restAddon))
	mux.Handle("GET /rest/atlassian-connect/1/addons/{appKey}/properties", f.restHandler("", f.restAppPropertyKeys))
	for _, m := range []string{"GET", "PUT", "DELETE"} {
		mux.Handle(m+" /rest/atlassian-connect/1/addons/{appKey}/properties/{prop}", f.restHandler("", f.restAppProperty))
	}
}

// apiVersion checks the {v} of /rest/api/{v}: Jira has 2 and 3.
func apiVersion(w http.ResponseWriter, r *http.Request) (int, bool) {
	switch r.PathValue("v") {
	case "2":
		return 2, true
	case "3", "latest":
		return 3, true
	}
	writeProductError(w, ProductJira, http.StatusNotFound, "No REST API version "+r.PathValue("v"))
	return 0, false
}

func (f *Fake) restMyself(w http.ResponseWriter, r *http.Request, rr *restRequest) {
	if _, ok := apiVersion(w, r); !ok {
		return
	}
	f.mu.Lock()
	u := userJSON(rr.site, rr.caller.accountID)
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, u)
}

func (f *Fake) restUser(w http.ResponseWriter, r *http.Request, rr *restRequest) {
	if _, ok := apiVersion(w, r); !ok {
		return
	}
	id := r.URL.Query().Get("accountId")
	f.mu.Lock()
	defer f.mu.Unlock()
	if !rr.site.knowsAccount(id) {
		writeProductError(w, ProductJira, http.StatusNotFound, fmt.Sprintf("The user with accountId '%s' does not exist.", id))
		return
	}
	writeJSON(w, http.StatusOK, userJSON(rr.site, id))
}

func (f *Fake) restServerInfo(w http.ResponseWriter, r *http.Request, rr *restRequest) {
	writeJSON(w, http.StatusOK, map[string]any{
		"baseUrl": rr.site.info.BaseURL, "displayUrl": rr.site.info.BaseURL, "version": "1001.0.0-SNAPSHOT",
		"versionNumbers": []int{1001, 0, 0}, "deploymentType": "Cloud", "buildNumber": 100300,
		"serverTitle": "Jira", "serverTime": jiraTime(f.now()),
	})
}

func (f *Fake) restProjects(w http.ResponseWriter, r *http.Request, rr *restRequest) {
	if _, ok := apiVersion(w, r); !ok {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []any{}
	for _, p := range rr.site.projects {
		out = append(out, projectJSON(rr.site, p, false))
	}
	writeJSON(w, http.StatusOK, out)
}

func (f *Fake) restProject(w http.ResponseWriter, r *http.Request, rr *restRequest) {
	if _, ok := apiVersion(w, r); !ok {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p := rr.site.project(r.PathValue("key"))
	if p == nil {
		writeProductError(w, ProductJira, http.StatusNotFound, fmt.Sprintf("No project could be found with key '%s'.", r.PathValue("key")))
		return
	}
	writeJSON(w, http.StatusOK, projectJSON(rr.site, p, true))
}

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

// maxPropertyBytes is Jira's limit on one entity property value.
const maxPropertyBytes = 32 << 10

// readPropertyValue reads a JSON property value.
func readPropertyValue(w http.ResponseWriter, r *http.Request, product string) (json.RawMessage, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPropertyBytes+1))
	if err != nil || len(body) > maxPropertyBytes {
		writeProductError(w, product, http.StatusRequestEntityTooLarge, fmt.Sprintf("The property value is larger than %d bytes.", maxPropertyBytes))
		return nil, false
	}
	if !json.Valid(body) {
		writeProductError(w, product, http.StatusBadRequest, "The property value must be valid JSON.")
		return nil, false
	}
	return json.RawMessage(body), true
}

var propKeyOK = func(k string) bool { return k != "" && len(k) <= 255 }

func (f *Fake) restIssuePropertyKeys(w http.ResponseWriter, r *http.Request, rr *restRequest) {
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
	keys := []any{}
	props := rr.site.issueProps[is.ID]
	for _, k := range sortedKeys(props) {
		keys = append(keys, map[string]any{"key": k, "self": issueSelf(rr.site, is, v) + "/properties/" + k})
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
}

func (f *Fake) restIssueProperty(w http.ResponseWriter, r *http.Request, rr *restRequest) {
	if _, ok := apiVersion(w, r); !ok {
		return
	}
	prop := r.PathValue("prop")
	if !propKeyOK(prop) {
		writeProductError(w, ProductJira, http.StatusBadRequest, "The property key must have 1 to 255 characters.")
		return
	}
	var value json.RawMessage
	if r.Method == http.MethodPut {
		var ok bool
		if value, ok = readPropertyValue(w, r, ProductJira); !ok {
			return
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	is := rr.site.issue(r.PathValue("key"))
	if is == nil {
		writeIssueNotFound(w)
		return
	}
	props := rr.site.issueProps[is.ID]
	if props == nil {
		props = map[string]json.RawMessage{}
		rr.site.issueProps[is.ID] = props
	}
	servePropertyLocked(w, r, props, prop, value, ProductJira)
}

// servePropertyLocked does GET/PUT/DELETE of one property in props.
func servePropertyLocked(w http.ResponseWriter, r *http.Request, props map[string]json.RawMessage, prop string, value json.RawMessage, product string) {
	old, exists := props[prop]
	switch r.Method {
	case http.MethodGet:
		if !exists {
			writeProductError(w, product, http.StatusNotFound, fmt.Sprintf("The property with key '%s' does not exist.", prop))
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"key": prop, "value": old})
	case http.MethodPut:
		props[prop] = value
		if exists {
			writeJSON(w, http.StatusOK, map[string]any{"message": "Property updated.", "statusCode": 200})
		} else {
			writeJSON(w, http.StatusCreated, map[string]any{"message": "Property created.", "statusCode": 201})
		}
	case http.MethodDelete:
		if !exists {
			writeProductError(w, product, http.StatusNotFound, fmt.Sprintf("The property with key '%s' does not exist.", prop))
			return
		}
		delete(props, prop)
		w.WriteHeader(http.StatusNoContent)
	}
}

// ownApp refuses access to another app's Connect resources.
func ownApp(w http.ResponseWriter, r *http.Request, rr *restRequest) bool {
	if r.PathValue("appKey") != rr.caller.appKey {
		writeProductError(w, rr.site.info.Product, http.StatusForbidden, "An app may only access its own properties and license.")
		return false
	}
	return true
}

func (f *Fake) restAppPropertyKeys(w http.ResponseWriter, r *http.Request, rr *restRequest) {
	if !ownApp(w, r, rr) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	keys := []any{}
	for _, k := range sortedKeys(rr.site.appProps[rr.caller.appKey]) {
		keys = append(keys, map[string]any{"key": k, "self": rr.site.info.BaseURL + "/rest/atlassian-connect/1/addons/" + rr.caller.appKey + "/properties/" + k})
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
}

func (f *Fake) restAppProperty(w http.ResponseWriter, r *http.Request, rr *restRequest) {
	if !ownApp(w, r, rr) {
		return
	}
	product := rr.site.info.Product
	prop := r.PathValue("prop")
	if !propKeyOK(prop) {
		writeProductError(w, product, http.StatusBadRequest, "The property key must have 1 to 255 characters.")
		return
	}
	var value json.RawMessage
	if r.Method == http.MethodPut {
		var ok bool
		if value, ok = readPropertyValue(w, r, product); !ok {
			return
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	props := rr.site.appProps[rr.caller.appKey]
	if props == nil {
		props = map[string]json.RawMessage{}
		rr.site.appProps[rr.caller.appKey] = props
	}
	servePropertyLocked(w, r, props, prop, value, product)
}

// restAddon is the license API: GET /rest/atlassian-connect/1/addons/{appKey}.
func (f *Fake) restAddon(w http.ResponseWriter, r *http.Request, rr *restRequest) {
	if !ownApp(w, r, rr) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	a := rr.site.apps[rr.caller.appKey]
	out := map[string]any{
		"key": a.desc.Key, "version": "1.0.0", "state": strings.ToUpper(a.state),
		"host":  map[string]any{"product": productTitle(rr.site.info.Product), "contacts": []any{}},
		"links": map[string]any{"self": []map[string]string{{"href": rr.site.info.BaseURL + "/rest/atlassian-connect/1/addons/" + a.desc.Key}}},
	}
	if a.license == "active" || a.desc.EnableLicensing {
		out["license"] = map[string]any{
			"active": a.license == "active", "type": "COMMERCIAL", "evaluation": false,
			"supportEntitlementNumber": a.sen, "entitlementNumber": a.entitlementNumber,
			"subscriptionEndDate": nil, "billingPeriod": "MONTHLY",
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
