package fakeatlassian

import (
	"net/url"
	"strconv"
	"time"
)

// JSON shapes of the product APIs, close to what Jira and Confluence
// Cloud answer. Called with Fake.mu held.

// jiraTime formats like Jira: 2024-05-01T10:00:00.000+0000.
func jiraTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000-0700") }

// knowsAccount reports whether id is a user or an app user of the site.
func (s *siteState) knowsAccount(id string) bool {
	if s.users[id] != nil {
		return true
	}
	for _, a := range s.apps {
		if a.accountID == id {
			return true
		}
	}
	return false
}

func userJSON(s *siteState, accountID string) map[string]any {
	out := map[string]any{
		"self":      s.info.BaseURL + "/rest/api/3/user?accountId=" + url.QueryEscape(accountID),
		"accountId": accountID,
		"active":    true,
		"avatarUrls": map[string]string{
			"48x48": "https://avatar-management.services.atlassian.com/default/48",
		},
	}
	if u := s.users[accountID]; u != nil {
		out["accountType"] = "atlassian"
		out["displayName"] = u.DisplayName
		out["emailAddress"] = u.Email
		out["timeZone"] = u.TimeZone
		out["locale"] = u.Locale
		return out
	}
	for _, a := range s.apps {
		if a.accountID == accountID {
			out["accountType"] = "app"
			out["displayName"] = a.desc.Name
			out["timeZone"] = "UTC"
			return out
		}
	}
	out["accountType"] = "unknown"
	out["displayName"] = "Former user"
	out["active"] = false
	return out
}

func projectJSON(s *siteState, p *project, full bool) map[string]any {
	out := map[string]any{
		"self":           s.info.BaseURL + "/rest/api/3/project/" + p.ID,
		"id":             p.ID,
		"key":            p.Key,
		"name":           p.Name,
		"projectTypeKey": "software",
		"simplified":     false,
		"style":          "classic",
		"isPrivate":      false,
	}
	if full {
		out["lead"] = userJSON(s, p.Lead)
		out["description"] = ""
		var types []any
		for _, name := range []string{"Task", "Bug", "Story"} {
			types = append(types, issueTypeJSON(s, name))
		}
		out["issueTypes"] = types
	}
	return out
}

func issueTypeJSON(s *siteState, name string) map[string]any {
	id := issueTypes[name]
	return map[string]any{"self": s.info.BaseURL + "/rest/api/3/issuetype/" + id, "id": id, "name": name, "subtask": false}
}

func statusJSON(s *siteState, st issueStatus) map[string]any {
	return map[string]any{
		"self": s.info.BaseURL + "/rest/api/3/status/" + st.ID,
		"id":   st.ID, "name": st.Name,
		"statusCategory": map[string]any{"key": st.CategoryKey, "name": st.CategoryName},
	}
}

func issueSelf(s *siteState, is *Issue, version int) string {
	return s.info.BaseURL + "/rest/api/" + strconv.Itoa(version) + "/issue/" + is.ID
}

// issueJSON renders an issue as API version 2 (description as a string)
// or 3 (description as an Atlassian Document). fields, when not nil,
// limits the fields returned.
func issueJSON(s *siteState, is *Issue, version int, fields map[string]bool) map[string]any {
	st, _ := findStatus(is.Status)
	var desc any
	if is.Description != "" {
		desc = is.Description
		if version >= 3 {
			desc = map[string]any{"type": "doc", "version": 1, "content": []any{
				map[string]any{"type": "paragraph", "content": []any{map[string]any{"type": "text", "text": is.Description}}},
			}}
		}
	}
	var assignee any
	if is.Assignee != "" {
		assignee = userJSON(s, is.Assignee)
	}
	all := map[string]any{
		"summary":     is.Summary,
		"description": desc,
		"status":      statusJSON(s, st),
		"project":     projectJSON(s, s.project(is.ProjectKey), false),
		"issuetype":   issueTypeJSON(s, is.IssueType),
		"labels":      is.Labels,
		"created":     jiraTime(is.Created),
		"updated":     jiraTime(is.Updated),
		"reporter":    userJSON(s, is.Reporter),
		"assignee":    assignee,
		"priority":    map[string]any{"id": "3", "name": "Medium"},
	}
	out := map[string]any{"expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
		"id": is.ID, "key": is.Key, "self": issueSelf(s, is, version)}
	if fields == nil {
		out["fields"] = all
		return out
	}
	picked := map[string]any{}
	for name := range fields {
		if v, ok := all[name]; ok {
			picked[name] = v
		}
	}
	if len(picked) > 0 || !fields["id"] {
		out["fields"] = picked
	}
	return out
}
