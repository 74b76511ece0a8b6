package fakeatlassian

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Products a site can be.
const (
	ProductJira       = "jira"
	ProductConfluence = "confluence"
)

// SiteOptions describe a new site.
type SiteOptions struct {
	// Name is the site's short name: lower-case letters, digits and '-',
	// starting with a letter or digit, at most 63 characters. The site
	// lives at <fake>/s/<name>.
	Name string
	// Product is ProductJira (the default) or ProductConfluence.
	Product string
	// ClientKey fixes the site's clientKey, so a site recreated with the
	// same key is the same tenant to an app (local development keeps its
	// data across restarts this way). Default: a random UUID.
	ClientKey string
	// Users replaces the seeded users; the first is the default user of
	// product pages. Empty fields get defaults (a random accountId,
	// locale en-US, time zone UTC).
	Users []User
}

// User is a person on a site.
type User struct {
	AccountID   string `json:"accountId"`
	DisplayName string `json:"displayName"`
	Email       string `json:"emailAddress,omitempty"`
	Locale      string `json:"locale"`
	TimeZone    string `json:"timeZone"`
}

// Site is a product site (a tenant). Its fields never change after
// AddSite, so it can be shared freely.
type Site struct {
	Name      string `json:"name"`
	Product   string `json:"product"`
	ClientKey string `json:"clientKey"` // the tenant id apps see
	CloudID   string `json:"cloudId"`
	// BaseURL is the product URL apps receive: <fake>/s/<name> for Jira,
	// <fake>/s/<name>/wiki for Confluence. Its path is stripped before
	// hashing requests to the product.
	BaseURL          string `json:"baseUrl"`
	DefaultAccountID string `json:"defaultAccountId"`
	Users            []User `json:"users"`
}

type project struct {
	ID, Key, Name string
	Lead          string
	nextNum       int
}

type issueStatus struct{ ID, Name, CategoryKey, CategoryName string }

var issueStatuses = []issueStatus{
	{"10000", "To Do", "new", "To Do"},
	{"3", "In Progress", "indeterminate", "In Progress"},
	{"10001", "Done", "done", "Done"},
}

var issueTypes = map[string]string{"Task": "10001", "Bug": "10002", "Story": "10003"}

// page is a Confluence page.
type page struct {
	ID, Title, SpaceKey, Body string
	Version                   int
	Created                   time.Time
}

// siteState is a site and everything it holds. Guarded by Fake.mu.
type siteState struct {
	// lifecycle serialises the installs, upgrades and state changes of
	// this site, which make network calls and therefore cannot hold the
	// fake's mu; different sites change at the same time, as real ones do.
	lifecycle sync.Mutex

	info     Site
	basePath string // path of info.BaseURL, stripped for qsh
	users    map[string]*User
	apps     map[string]*appState
	appOrder []string

	projects    []*project
	issues      map[string]*Issue // by key
	issueOrder  []string          // keys, creation order
	nextIssueID int
	issueProps  map[string]map[string]json.RawMessage // issue id → property → value
	appProps    map[string]map[string]json.RawMessage // app key → property → value
	pages       map[string]*page
	pageOrder   []string
	spaceName   string
}

var siteNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
var clientKeyRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// AddSite creates a site with seeded projects, issues (Jira) or pages
// (Confluence) and users. The fake must know its URL (Start was called
// or Options.URL was set).
func (f *Fake) AddSite(opts SiteOptions) (*Site, error) {
	if !siteNameRE.MatchString(opts.Name) {
		return nil, fmt.Errorf("%w: site name %q must be lower-case letters, digits and '-' (at most 63)", ErrInvalid, opts.Name)
	}
	product := opts.Product
	if product == "" {
		product = ProductJira
	}
	if product != ProductJira && product != ProductConfluence {
		return nil, fmt.Errorf("%w: product %q is not %q or %q", ErrInvalid, product, ProductJira, ProductConfluence)
	}
	clientKey := opts.ClientKey
	if clientKey == "" {
		clientKey = f.newUUID()
	} else if !clientKeyRE.MatchString(clientKey) {
		return nil, fmt.Errorf("%w: clientKey %q must be 1 to 128 letters, digits, '-', '_', ':' or '.'", ErrInvalid, clientKey)
	}
	base := f.URL()
	if base == "" {
		return nil, fmt.Errorf("%w: the fake has no URL yet: call Start or set Options.URL", ErrInvalid)
	}
	users := opts.Users
	if len(users) == 0 {
		users = []User{
			{DisplayName: "Alice Admin", Email: "alice@example.com"},
			{DisplayName: "Bob Builder", Email: "bob@example.com"},
		}
	}
	s := &siteState{
		users:      map[string]*User{},
		apps:       map[string]*appState{},
		issues:     map[string]*Issue{},
		issueProps: map[string]map[string]json.RawMessage{},
		appProps:   map[string]map[string]json.RawMessage{},
		pages:      map[string]*page{},
	}
	s.info = Site{
		Name:      opts.Name,
		Product:   product,
		ClientKey: clientKey,
		CloudID:   f.newUUID(),
		BaseURL:   base + "/s/" + opts.Name,
	}
	if product == ProductConfluence {
		s.info.BaseURL += "/wiki"
	}
	s.basePath = basePathOf(s.info.BaseURL)
	for _, u := range users {
		if u.AccountID == "" {
			u.AccountID = "712020:" + f.newUUID()
		}
		if u.DisplayName == "" {
			u.DisplayName = u.AccountID
		}
		if u.Locale == "" {
			u.Locale = "en-US"
		}
		if u.TimeZone == "" {
			u.TimeZone = "UTC"
		}
		if _, dup := s.users[u.AccountID]; dup {
			return nil, fmt.Errorf("%w: accountId %q appears twice", ErrInvalid, u.AccountID)
		}
		u := u
		s.users[u.AccountID] = &u
		s.info.Users = append(s.info.Users, u)
	}
	s.info.DefaultAccountID = s.info.Users[0].AccountID
	now := f.now()
	if product == ProductJira {
		s.seedJira(now)
	} else {
		s.seedConfluence(now)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if _, dup := f.sites[opts.Name]; dup {
		return nil, fmt.Errorf("%w: a site named %q exists", ErrConflict, opts.Name)
	}
	f.sites[opts.Name] = s
	f.siteOrder = append(f.siteOrder, opts.Name)
	info := s.info
	return &info, nil
}

func (s *siteState) seedJira(now time.Time) {
	lead := s.info.DefaultAccountID
	s.projects = []*project{
		{ID: "10000", Key: "DEMO", Name: "Demo project", Lead: lead, nextNum: 1},
		{ID: "10001", Key: "OPS", Name: "Operations", Lead: lead, nextNum: 1},
	}
	s.nextIssueID = 10000
	seed := []IssueInput{
		{ProjectKey: "DEMO", Summary: "Welcome to the fake Jira", Description: "This issue was seeded by the fake Atlassian.", IssueType: "Task"},
		{ProjectKey: "DEMO", Summary: "The app panel shows up here", Description: "Open this issue to see the app's issue modules.", IssueType: "Story", Labels: []string{"demo"}},
		{ProjectKey: "OPS", Summary: "Rotate the install keys", IssueType: "Bug"},
	}
	for _, in := range seed {
		s.createIssue(in, lead, now)
	}
}

func (s *siteState) seedConfluence(now time.Time) {
	s.spaceName = "Demo space"
	for i, p := range []page{
		{Title: "Welcome to the fake Confluence", Body: "<p>This page was seeded by the fake Atlassian.</p>"},
		{Title: "Meeting notes", Body: "<p>Nothing was decided.</p>"},
	} {
		p.ID = strconv.Itoa(65537 + i)
		p.SpaceKey = "DEMO"
		p.Version = 1
		p.Created = now
		s.pages[p.ID] = &p
		s.pageOrder = append(s.pageOrder, p.ID)
	}
}

// siteLocked returns the state of a site given to a Go API method.
func (f *Fake) siteLocked(site *Site) (*siteState, error) {
	if site == nil {
		return nil, fmt.Errorf("%w: nil site", ErrInvalid)
	}
	s, ok := f.sites[site.Name]
	if !ok || s.info.ClientKey != site.ClientKey {
		return nil, fmt.Errorf("%w: site %q", ErrNotFound, site.Name)
	}
	return s, nil
}

// lockLifecycle takes site's lifecycle lock and returns its release. An
// unknown site takes nothing: the caller's own lookup then fails.
func (f *Fake) lockLifecycle(site *Site) (unlock func()) {
	f.mu.Lock()
	s, err := f.siteLocked(site)
	f.mu.Unlock()
	if err != nil {
		return func() {}
	}
	s.lifecycle.Lock()
	return s.lifecycle.Unlock
}

// Site returns the site named name.
func (f *Fake) Site(name string) (*Site, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sites[name]
	if !ok {
		return nil, fmt.Errorf("%w: site %q", ErrNotFound, name)
	}
	info := s.info
	return &info, nil
}

// Sites lists the sites in creation order.
func (f *Fake) Sites() []*Site {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*Site, 0, len(f.siteOrder))
	for _, name := range f.siteOrder {
		info := f.sites[name].info
		out = append(out, &info)
	}
	return out
}

func (s *siteState) project(keyOrID string) *project {
	for _, p := range s.projects {
		if strings.EqualFold(p.Key, keyOrID) || p.ID == keyOrID {
			return p
		}
	}
	return nil
}

// issue finds an issue by key (case-insensitive) or id.
func (s *siteState) issue(keyOrID string) *Issue {
	if is, ok := s.issues[strings.ToUpper(keyOrID)]; ok {
		return is
	}
	for _, is := range s.issues {
		if is.ID == keyOrID {
			return is
		}
	}
	return nil
}
