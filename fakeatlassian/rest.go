package fakeatlassian

import (
	"context"
	"fmt"
	"net/http"
	"path"
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
	if !ok && r.Method == http.MethodGet && strings.TrimSuffix(r.URL.Path, "/") == "/s/"+name {
		// A Confluence site's root is /wiki; send a person there.
		http.Redirect(w, r, s.info.BaseURL+"/", http.StatusFound)
		return
	}
	if !ok || (rel != "" && !strings.HasPrefix(rel, "/")) {
		http.Error(w, "not found (this "+s.info.Product+" site lives at "+s.info.BaseURL+")", http.StatusNotFound)
		return
	}
	if strings.HasPrefix(rel, "/rest/") || rel == reportAccountsPath {
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
	if path.Clean(rel) != rel && rel != reportAccountsPath { // the reporting API ends in /
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
	_, pattern := mux.Handler(r2)
	if pattern == "" {
		writeProductError(w, s.info.Product, http.StatusNotFound, "No REST resource at "+r.Method+" "+rel)
		return
	}
	if f.applyRateLimits(w, r, s, c.appKey, pattern, rel) {
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
	mux.Handle("POST "+reportAccountsPath, f.restHandler("", f.restReportAccounts)) // personal.go
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
