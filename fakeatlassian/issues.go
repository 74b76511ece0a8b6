package fakeatlassian

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Issues of Jira sites: the Go API and the changes shared with the REST
// API. Every change fires the matching webhook.

// Issue is a Jira issue as the Go API returns it.
type Issue struct {
	ID          string    `json:"id"`
	Key         string    `json:"key"`
	ProjectKey  string    `json:"projectKey"`
	Summary     string    `json:"summary"`
	Description string    `json:"description"`
	Status      string    `json:"status"`
	IssueType   string    `json:"issueType"`
	Labels      []string  `json:"labels"`
	Reporter    string    `json:"reporter"` // accountId
	Assignee    string    `json:"assignee"` // accountId, "" when unassigned
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
}

// IssueInput creates an issue. ProjectKey and Summary are required.
type IssueInput struct {
	ProjectKey  string   `json:"projectKey"`
	Summary     string   `json:"summary"`
	Description string   `json:"description"`
	IssueType   string   `json:"issueType"` // Task (default), Bug or Story
	Labels      []string `json:"labels"`
	// AccountID is who acts (the webhook's user); default: the site's default user.
	AccountID string `json:"accountId"`
}

// IssueUpdate changes the fields that are not nil.
type IssueUpdate struct {
	Summary     *string   `json:"summary"`
	Description *string   `json:"description"`
	Status      *string   `json:"status"` // "To Do", "In Progress" or "Done"
	Labels      *[]string `json:"labels"`
	Assignee    *string   `json:"assignee"` // accountId; "" unassigns
	AccountID   string    `json:"accountId"`
}

// createIssue adds an issue; the caller validated in.
func (s *siteState) createIssue(in IssueInput, actor string, now time.Time) *Issue {
	p := s.project(in.ProjectKey)
	typ := in.IssueType
	if typ == "" {
		typ = "Task"
	}
	is := &Issue{
		ID:          strconv.Itoa(s.nextIssueID),
		Key:         p.Key + "-" + strconv.Itoa(p.nextNum),
		ProjectKey:  p.Key,
		Summary:     in.Summary,
		Description: in.Description,
		Status:      "To Do",
		IssueType:   typ,
		Labels:      slices.Clone(in.Labels),
		Reporter:    actor,
		Created:     now,
		Updated:     now,
	}
	if is.Labels == nil {
		is.Labels = []string{}
	}
	s.nextIssueID++
	p.nextNum++
	s.issues[is.Key] = is
	s.issueOrder = append(s.issueOrder, is.Key)
	return is
}

func validIssueInput(s *siteState, in IssueInput) error {
	var problems []string
	if s.info.Product != ProductJira {
		return fmt.Errorf("%w: site %q is not a Jira site", ErrInvalid, s.info.Name)
	}
	if s.project(in.ProjectKey) == nil {
		problems = append(problems, fmt.Sprintf("no project %q", in.ProjectKey))
	}
	if strings.TrimSpace(in.Summary) == "" {
		problems = append(problems, "summary is required")
	} else if len(in.Summary) > 255 {
		problems = append(problems, "summary is longer than 255 characters")
	}
	if _, ok := issueTypes[in.IssueType]; in.IssueType != "" && !ok {
		problems = append(problems, fmt.Sprintf("issue type %q is not Task, Bug or Story", in.IssueType))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(problems, "; "))
	}
	return nil
}

func findStatus(name string) (issueStatus, bool) {
	for _, st := range issueStatuses {
		if strings.EqualFold(st.Name, name) {
			return st, true
		}
	}
	return issueStatus{}, false
}

// changeItem is one entry of a Jira changelog.
type changeItem struct {
	Field      string  `json:"field"`
	FieldType  string  `json:"fieldtype"`
	From       *string `json:"from"`
	FromString *string `json:"fromString"`
	To         *string `json:"to"`
	ToString   *string `json:"toString"`
}

func strp(s string) *string { return &s }

// updateIssue applies up and returns the changelog items.
func (s *siteState) updateIssue(is *Issue, up IssueUpdate, now time.Time) ([]changeItem, error) {
	if up.Summary != nil && strings.TrimSpace(*up.Summary) == "" {
		return nil, fmt.Errorf("%w: summary cannot be empty", ErrInvalid)
	}
	if up.Status != nil {
		if _, ok := findStatus(*up.Status); !ok {
			return nil, fmt.Errorf("%w: status %q is not To Do, In Progress or Done", ErrInvalid, *up.Status)
		}
	}
	if up.Assignee != nil && *up.Assignee != "" && s.users[*up.Assignee] == nil {
		return nil, fmt.Errorf("%w: no user %q", ErrInvalid, *up.Assignee)
	}
	var items []changeItem
	if up.Summary != nil && *up.Summary != is.Summary {
		items = append(items, changeItem{Field: "summary", FieldType: "jira", FromString: strp(is.Summary), ToString: strp(*up.Summary)})
		is.Summary = *up.Summary
	}
	if up.Description != nil && *up.Description != is.Description {
		items = append(items, changeItem{Field: "description", FieldType: "jira", FromString: strp(is.Description), ToString: strp(*up.Description)})
		is.Description = *up.Description
	}
	if up.Status != nil {
		st, _ := findStatus(*up.Status)
		if st.Name != is.Status {
			old, _ := findStatus(is.Status)
			items = append(items, changeItem{Field: "status", FieldType: "jira", From: strp(old.ID), FromString: strp(old.Name), To: strp(st.ID), ToString: strp(st.Name)})
			is.Status = st.Name
		}
	}
	if up.Labels != nil && !slices.Equal(*up.Labels, is.Labels) {
		items = append(items, changeItem{Field: "labels", FieldType: "jira", FromString: strp(strings.Join(is.Labels, " ")), ToString: strp(strings.Join(*up.Labels, " "))})
		is.Labels = slices.Clone(*up.Labels)
	}
	if up.Assignee != nil && *up.Assignee != is.Assignee {
		items = append(items, changeItem{Field: "assignee", FieldType: "jira", From: strp(is.Assignee), To: strp(*up.Assignee)})
		is.Assignee = *up.Assignee
	}
	if len(items) > 0 {
		is.Updated = now
	}
	return items, nil
}

func (s *siteState) deleteIssue(is *Issue) {
	delete(s.issues, is.Key)
	delete(s.issueProps, is.ID)
	s.issueOrder = slices.DeleteFunc(s.issueOrder, func(k string) bool { return k == is.Key })
}

func (s *siteState) actor(accountID string) (string, error) {
	if accountID == "" {
		return s.info.DefaultAccountID, nil
	}
	if s.users[accountID] == nil {
		return "", fmt.Errorf("%w: no user %q on site %q", ErrNotFound, accountID, s.info.Name)
	}
	return accountID, nil
}

func cloneIssue(is *Issue) Issue {
	c := *is
	c.Labels = slices.Clone(is.Labels)
	return c
}

// CreateIssue creates an issue and fires jira:issue_created.
func (f *Fake) CreateIssue(site *Site, in IssueInput) (Issue, error) {
	f.mu.Lock()
	s, err := f.siteLocked(site)
	if err != nil {
		f.mu.Unlock()
		return Issue{}, err
	}
	actor, err := s.actor(in.AccountID)
	if err == nil {
		err = validIssueInput(s, in)
	}
	if err != nil {
		f.mu.Unlock()
		return Issue{}, err
	}
	is := s.createIssue(in, actor, f.now())
	snap := cloneIssue(is)
	f.queueIssueEventLocked(s, eventIssueCreated, snap, nil, actor)
	f.mu.Unlock()
	return snap, nil
}

// UpdateIssue changes an issue and fires jira:issue_updated when
// something changed.
func (f *Fake) UpdateIssue(site *Site, key string, up IssueUpdate) (Issue, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.siteLocked(site)
	if err != nil {
		return Issue{}, err
	}
	actor, err := s.actor(up.AccountID)
	if err != nil {
		return Issue{}, err
	}
	is := s.issue(key)
	if is == nil {
		return Issue{}, fmt.Errorf("%w: issue %q on site %q", ErrNotFound, key, s.info.Name)
	}
	items, err := s.updateIssue(is, up, f.now())
	if err != nil {
		return Issue{}, err
	}
	snap := cloneIssue(is)
	if len(items) > 0 {
		f.queueIssueEventLocked(s, eventIssueUpdated, snap, items, actor)
	}
	return snap, nil
}

// DeleteIssue deletes an issue and fires jira:issue_deleted.
func (f *Fake) DeleteIssue(site *Site, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.siteLocked(site)
	if err != nil {
		return err
	}
	is := s.issue(key)
	if is == nil {
		return fmt.Errorf("%w: issue %q on site %q", ErrNotFound, key, s.info.Name)
	}
	s.deleteIssue(is)
	f.queueIssueEventLocked(s, eventIssueDeleted, cloneIssue(is), nil, s.info.DefaultAccountID)
	return nil
}

// GetIssue returns an issue by key or id.
func (f *Fake) GetIssue(site *Site, key string) (Issue, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.siteLocked(site)
	if err != nil {
		return Issue{}, err
	}
	is := s.issue(key)
	if is == nil {
		return Issue{}, fmt.Errorf("%w: issue %q on site %q", ErrNotFound, key, s.info.Name)
	}
	return cloneIssue(is), nil
}
