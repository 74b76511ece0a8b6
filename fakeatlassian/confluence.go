package fakeatlassian

import (
	"net/http"
	"slices"
	"strings"
)

// The Confluence REST subset: content by id, a content list and the
// current user. Paths are relative to the site base URL, which ends in
// /wiki.

func (f *Fake) contentJSON(s *siteState, p *page, expand []string) map[string]any {
	out := map[string]any{
		"id": p.ID, "type": "page", "status": "current", "title": p.Title,
		"space":   map[string]any{"key": p.SpaceKey, "name": s.spaceName, "type": "global"},
		"version": map[string]any{"number": p.Version, "when": jiraTime(p.Created)},
		"_links": map[string]any{
			"webui": "/spaces/" + p.SpaceKey + "/pages/" + p.ID,
			"self":  s.info.BaseURL + "/rest/api/content/" + p.ID,
			"base":  s.info.BaseURL,
		},
	}
	if slices.Contains(expand, "body.storage") || slices.Contains(expand, "body") {
		out["body"] = map[string]any{"storage": map[string]any{"value": p.Body, "representation": "storage"}}
	}
	return out
}

func expandParam(r *http.Request) []string {
	var out []string
	for _, v := range r.URL.Query()["expand"] {
		for _, e := range strings.Split(v, ",") {
			out = append(out, strings.TrimSpace(e))
		}
	}
	return out
}

func (f *Fake) restContent(w http.ResponseWriter, r *http.Request, rr *restRequest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := rr.site.pages[r.PathValue("id")]
	if p == nil {
		writeProductError(w, ProductConfluence, http.StatusNotFound, "No content found with id: ContentId{id="+r.PathValue("id")+"}")
		return
	}
	writeJSON(w, http.StatusOK, f.contentJSON(rr.site, p, expandParam(r)))
}

func (f *Fake) restContentList(w http.ResponseWriter, r *http.Request, rr *restRequest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	results := []any{}
	for _, id := range rr.site.pageOrder {
		results = append(results, f.contentJSON(rr.site, rr.site.pages[id], expandParam(r)))
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": results, "start": 0, "limit": 25, "size": len(results),
		"_links": map[string]any{"base": rr.site.info.BaseURL, "self": rr.site.info.BaseURL + "/rest/api/content"}})
}

func (f *Fake) restConfluenceCurrentUser(w http.ResponseWriter, r *http.Request, rr *restRequest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := userJSON(rr.site, rr.caller.accountID)
	out := map[string]any{
		"type": "known", "accountId": rr.caller.accountID, "accountType": u["accountType"],
		"displayName": u["displayName"], "publicName": u["displayName"],
		"_links": map[string]any{"self": rr.site.info.BaseURL + "/rest/api/user?accountId=" + rr.caller.accountID,
			"base": rr.site.info.BaseURL},
	}
	if tz, ok := u["timeZone"]; ok {
		out["timeZone"] = tz
	}
	writeJSON(w, http.StatusOK, out)
}
