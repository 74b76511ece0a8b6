package fakeatlassian

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

//go:embed static
var staticFiles embed.FS

var pageTemplates = template.Must(template.ParseFS(staticFiles, "static/pages.html"))

// pageSession is the state of one rendered product page: who is looking
// and which app frames it shows. The host script reaches the fake's host
// endpoints with the session id, which is random and scoped to one page,
// so it can neither act as another user nor for another app.
type pageSession struct {
	site    string
	account string
	frames  map[string]*frame // by frame element id
	expires time.Time
}

const pageSessionLifetime = 2 * time.Hour

// frameView is what the templates and the host script know of a frame.
type frameView struct {
	ID      string         `json:"id"`
	Src     string         `json:"-"`
	Origin  string         `json:"origin"`
	AppKey  string         `json:"appKey"`
	Module  string         `json:"moduleKey"`
	Title   string         `json:"-"`
	Type    string         `json:"-"`
	Context map[string]any `json:"context"`
	Error   string         `json:"-"`
}

// hostData is handed to host.js as JSON.
type hostData struct {
	Session string         `json:"session"`
	Fake    string         `json:"fake"`
	Site    string         `json:"site"`
	BaseURL string         `json:"baseUrl"`
	User    map[string]any `json:"user"`
	Locale  string         `json:"locale"`
	Theme   themeState     `json:"theme"`
	Frames  []frameView    `json:"frames"`
}

// themeState is the theme as the product's front end describes it to
// app iframes: AP.theming.initializeTheming and the context's theme. The
// colour mode is the one in use; light and dark name the theme of each
// mode, as the product's token style sheets are keyed by both.
type themeState struct {
	ColorMode string `json:"colorMode"`
	Light     string `json:"light"`
	Dark      string `json:"dark"`
	Spacing   string `json:"spacing"`
}

// The colour modes a page can show, chosen with ?theme=; light is the
// product's default.
const (
	themeLight = "light"
	themeDark  = "dark"
)

// pageTheme reads the theme parameter of a page request.
func pageTheme(q url.Values) (string, bool) {
	switch t := q.Get("theme"); t {
	case "":
		return themeLight, true
	case themeLight, themeDark:
		return t, true
	}
	return "", false
}

// themeSwitch is the link of a page to itself in the other colour mode.
func themeSwitch(r *http.Request, theme string) string {
	q := r.URL.Query()
	if theme == themeDark {
		q.Set("theme", themeLight)
	} else {
		q.Set("theme", themeDark)
	}
	return r.URL.Path + "?" + q.Encode()
}

type userLink struct {
	User    User
	Current bool
	Href    string
}

// pageView is the data of every product page template.
type pageView struct {
	Title   string
	Theme   string // light or dark: the html element's data-color-mode
	Switch  string // the same page in the other theme
	Fake    string
	Site    *Site
	User    User
	Locale  string
	Users   []userLink
	Issue   map[string]any
	Issues  []map[string]any
	Pages   []map[string]any
	Apps    []appView
	Frames  []frameView
	Sites   []siteView
	Host    *hostData
	Message string
	KeyURL  string
	AuthURL string
}

type appView struct {
	App
	Modules []moduleLink
}

type moduleLink struct {
	Key, Name, Type, Href string
}

type siteView struct {
	Site
	Apps []appView
}

func (f *Fake) serveStatic(name string) http.HandlerFunc {
	ctype := "application/javascript; charset=utf-8"
	if strings.HasSuffix(name, ".css") {
		ctype = "text/css; charset=utf-8"
	}
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := staticFiles.ReadFile("static/" + name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Cache-Control", "no-cache")
		// all.js runs in app iframes on other origins.
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Write(b)
	}
}

func (f *Fake) render(w http.ResponseWriter, name string, status int, v *pageView) {
	var buf bytes.Buffer
	if err := pageTemplates.ExecuteTemplate(&buf, name, v); err != nil {
		f.log.Error("render page", "page", name, "err", err)
		http.Error(w, "page rendering failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	io.Copy(w, &buf)
}

func (f *Fake) appViewsLocked(s *siteState) []appView {
	var out []appView
	for _, k := range s.appOrder {
		a := s.apps[k]
		v := appView{App: a.snapshot(s)}
		v.SharedSecret = "" // pages never show secrets
		for _, m := range a.desc.modules {
			if isPageModule(m.Type) {
				v.Modules = append(v.Modules, moduleLink{Key: m.Key, Name: m.Name, Type: m.Type,
					Href: f.ModulePageURL(&s.info, k, m.Key)})
			}
		}
		out = append(out, v)
	}
	return out
}

// isPageModule reports whether a module type renders as a full page.
func isPageModule(typ string) bool {
	switch typ {
	case "generalPages", "adminPages", "configurePage", "postInstallPage", "jiraProjectPages", "jiraProjectAdminTabPanels":
		return true
	}
	return false
}

// isIssueModule reports whether m renders on the issue view.
func isIssueModule(m module) bool {
	switch m.Type {
	case "webPanels":
		return strings.Contains(m.Location, "atl.jira.view.issue")
	case "jiraIssueContents", "jiraIssueGlances", "jiraIssueActivityPanels":
		return true
	}
	return false
}

func (f *Fake) serveHome(w http.ResponseWriter, r *http.Request) {
	theme, ok := pageTheme(r.URL.Query())
	if !ok {
		f.render(w, "message", http.StatusBadRequest, badTheme(r))
		return
	}
	f.mu.Lock()
	v := &pageView{Title: "Fake Atlassian", Theme: theme, Switch: themeSwitch(r, theme),
		Fake: f.url, KeyURL: f.url + keyServerPath, AuthURL: f.url + authServerPath}
	for _, name := range f.siteOrder {
		s := f.sites[name]
		v.Sites = append(v.Sites, siteView{Site: s.info, Apps: f.appViewsLocked(s)})
	}
	f.mu.Unlock()
	f.render(w, "home", http.StatusOK, v)
}

// servePage serves the product pages of a site; rel is the path relative
// to the site's base URL.
func (f *Fake) servePage(w http.ResponseWriter, r *http.Request, s *siteState, rel string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	f.mu.Lock()
	v, status := f.pageLocked(r, s, rel)
	f.mu.Unlock()
	if v == nil {
		http.Error(w, "no such page", status)
		return
	}
	name := "site"
	switch {
	case v.Issue != nil:
		name = "issue"
	case v.Host != nil:
		name = "module"
	}
	if v.Message != "" {
		name = "message"
	}
	f.render(w, name, status, v)
}

// pageLocked builds the view of a site page.
func (f *Fake) pageLocked(r *http.Request, s *siteState, rel string) (*pageView, int) {
	q := r.URL.Query()
	theme, ok := pageTheme(q)
	if !ok {
		v := badTheme(r)
		v.Fake, v.Site = f.url, &s.info
		return v, http.StatusBadRequest
	}
	account := s.info.DefaultAccountID
	if as := q.Get("as"); as != "" {
		if s.users[as] == nil {
			return &pageView{Title: "Unknown user", Theme: theme, Fake: f.url, Site: &s.info, Message: "No user with accountId " + as + " on this site."}, http.StatusNotFound
		}
		account = as
	}
	user := *s.users[account]
	locale := user.Locale
	if loc := q.Get("loc"); loc != "" && len(loc) <= 35 {
		locale = loc
	}
	v := &pageView{Theme: theme, Switch: themeSwitch(r, theme), Fake: f.url, Site: &s.info, User: user, Locale: locale, Apps: f.appViewsLocked(s)}
	for _, u := range s.info.Users {
		link := userLink{User: u, Current: u.AccountID == account}
		qq := r.URL.Query()
		qq.Set("as", u.AccountID)
		link.Href = r.URL.Path + "?" + qq.Encode()
		v.Users = append(v.Users, link)
	}
	opts := FrameOptions{AccountID: account, Locale: locale}

	switch {
	case rel == "" || rel == "/":
		v.Title = s.info.Name
		if s.info.Product == ProductJira {
			for _, key := range s.issueOrder {
				v.Issues = append(v.Issues, issueJSON(s, s.issues[key], 2, nil))
			}
		} else {
			for _, id := range s.pageOrder {
				v.Pages = append(v.Pages, f.contentJSON(s, s.pages[id], []string{"body.storage"}))
			}
		}
		return v, http.StatusOK

	case strings.HasPrefix(rel, "/browse/") && s.info.Product == ProductJira:
		is := s.issue(strings.TrimPrefix(rel, "/browse/"))
		if is == nil {
			return nil, http.StatusNotFound
		}
		v.Title = is.Key + ": " + is.Summary
		v.Issue = issueJSON(s, is, 2, nil)
		opts.IssueKey = is.Key
		var frames []frameView
		for _, appKey := range s.appOrder {
			a := s.apps[appKey]
			if a.state != AppEnabled {
				continue
			}
			for _, m := range a.desc.modules {
				if isIssueModule(m) && m.URL != "" {
					frames = append(frames, f.frameViewLocked(s, appKey, m, opts))
				}
			}
		}
		v.Frames = frames
		v.Host = f.newSessionLocked(s, account, locale, theme, frames)
		return v, http.StatusOK

	case strings.HasPrefix(rel, "/plugins/servlet/ac/"):
		appKey, moduleKey, ok := strings.Cut(strings.TrimPrefix(rel, "/plugins/servlet/ac/"), "/")
		a := s.apps[appKey]
		if !ok || a == nil {
			return nil, http.StatusNotFound
		}
		m, found := a.desc.module(moduleKey)
		if !found {
			return nil, http.StatusNotFound
		}
		if a.state != AppEnabled {
			v.Message = "The app " + a.desc.Name + " is " + a.state + "."
			return v, http.StatusConflict
		}
		if issueKey := q.Get("issue"); issueKey != "" {
			opts.IssueKey = issueKey
		}
		if id := q.Get("content"); id != "" {
			opts.ContentID = id
		}
		fv := f.frameViewLocked(s, appKey, m, opts)
		v.Title = fv.Title
		v.Frames = []frameView{fv}
		v.Host = f.newSessionLocked(s, account, locale, theme, v.Frames)
		return v, http.StatusOK
	}
	return nil, http.StatusNotFound
}

// badTheme is the page for a theme parameter the fake does not know.
func badTheme(r *http.Request) *pageView {
	return &pageView{Title: "Unknown theme", Theme: themeLight,
		Message: fmt.Sprintf("The theme %q is not one the product has: use theme=light or theme=dark.", r.URL.Query().Get("theme"))}
}

// frameViewLocked renders one module frame; a failure shows in its place.
func (f *Fake) frameViewLocked(s *siteState, appKey string, m module, opts FrameOptions) frameView {
	fv := frameView{ID: "frame-" + f.randomHex(8), AppKey: appKey, Module: m.Key, Title: m.Name, Type: m.Type}
	fr, err := f.buildFrameLocked(s, appKey, m.Key, opts)
	if err != nil {
		fv.Error = err.Error()
		return fv
	}
	fv.Src, fv.Origin, fv.Context = fr.src, fr.origin, fr.context
	return fv
}

// newSessionLocked records a page session for the frames of a page and
// returns what the host script needs.
func (f *Fake) newSessionLocked(s *siteState, account, locale, theme string, frames []frameView) *hostData {
	now := f.now()
	for id, ps := range f.sessions { // drop old sessions as new ones come
		if now.After(ps.expires) {
			delete(f.sessions, id)
		}
	}
	id := f.randomHex(16)
	ps := &pageSession{site: s.info.Name, account: account, frames: map[string]*frame{}, expires: now.Add(pageSessionLifetime)}
	for _, fv := range frames {
		if fv.Error == "" {
			ps.frames[fv.ID] = &frame{origin: fv.Origin, appKey: fv.AppKey, context: fv.Context, account: account}
		}
	}
	f.sessions[id] = ps
	u := userJSON(s, account)
	hd := &hostData{
		Session: id, Fake: f.url, Site: s.info.Name, BaseURL: s.info.BaseURL, Locale: locale,
		Theme:  themeState{ColorMode: theme, Light: themeLight, Dark: themeDark, Spacing: "spacing"},
		User:   map[string]any{"atlassianAccountId": account, "accountId": account, "displayName": u["displayName"], "timeZone": u["timeZone"]},
		Frames: []frameView{},
	}
	for _, fv := range frames {
		if fv.Error == "" {
			hd.Frames = append(hd.Frames, fv)
		}
	}
	return hd
}
