package checklist

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/server"
)

// issue is the part of Jira's issue the panel shows.
type issue struct {
	Key    string `json:"key"`
	Fields struct {
		Summary string `json:"summary"`
	} `json:"fields"`
}

// panelData is what the panel template renders. Every value goes through
// html/template, which escapes it for its context (text, attribute, URL).
type panelData struct {
	T         *messages
	AllJSURL  string
	JSVersion string
	CSSVer    string
	IssueKey  string
	Issue     *issue // nil when Jira could not tell
	Notice    string
	Checklist *Checklist
	Progress  string
	StateJSON string // the checklist, for the browser code
	I18nJSON  string // the strings the browser code needs

	// Announcements are the operator's notices (tenon notice set) for
	// this site and for every site.
	Announcements []tenon.Notice
}

// panel renders the issue panel. The issueKey parameter is covered by the
// token's qsh, so it names the issue the product rendered the panel for.
func (a *App) panel(w http.ResponseWriter, r *http.Request) error {
	p := tenon.PrincipalFrom(r.Context())
	if p == nil {
		return errors.New("checklist: panel without a principal")
	}
	key := r.URL.Query().Get("issueKey")
	if err := checkIssueKey(key); err != nil {
		return err
	}
	t := messagesFor(p.Locale)

	doc, err := load(r.Context(), p.Data(), key)
	if err != nil {
		return fmt.Errorf("checklist: panel: load %s: %w", key, err)
	}
	d := &panelData{
		T:         t,
		AllJSURL:  a.opts.AllJSURL,
		JSVersion: a.files["checklist.js"].version,
		CSSVer:    a.files["checklist.css"].version,
		IssueKey:  key,
		Checklist: &doc.Checklist,
		Progress:  progress(t, &doc.Checklist),
	}
	d.Issue, d.Notice = a.readIssue(r.Context(), p, key, t)
	d.Announcements = server.Notices(r)

	state, err := json.Marshal(&doc.Checklist)
	if err != nil {
		return fmt.Errorf("checklist: panel: encode state: %w", err)
	}
	i18n, err := json.Marshal(t.JS())
	if err != nil {
		return fmt.Errorf("checklist: panel: encode messages: %w", err)
	}
	d.StateJSON, d.I18nJSON = string(state), string(i18n)

	// Render into a buffer first: a template error must become an error
	// page, not half a panel.
	var buf bytes.Buffer
	if err := a.page.Execute(&buf, d); err != nil {
		return fmt.Errorf("checklist: panel: render: %w", err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store") // the URL carries a token and the page user data
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer") // keep the signed URL out of other sites' logs
	h.Set("Content-Security-Policy", a.csp(p.Installation))
	_, err = buf.WriteTo(w)
	return err
}

// readIssue fetches the issue's summary as the app. Jira being slow or
// down must not take the checklist with it: failures become a notice.
func (a *App) readIssue(ctx context.Context, p *tenon.Principal, key string, t *messages) (*issue, string) {
	ctx, cancel := context.WithTimeout(ctx, jiraTimeout)
	defer cancel()
	var is issue
	// As the app: signed with the tenant's shared secret by the server's
	// product client (tenon serve wires it; calls show in its metrics).
	err := p.AsApp(ctx).GetJSON(ctx, "/rest/api/3/issue/"+url.PathEscape(key)+"?fields=summary", &is)
	switch {
	case err == nil && is.Key != "":
		return &is, ""
	case tenon.ErrorCode(err) == tenon.ENOTFOUND:
		return nil, t.IssueNotFound
	}
	if err == nil {
		err = errors.New("the response has no issue key")
	}
	a.log.WarnContext(ctx, "checklist: reading the issue from Jira failed", "client_key", p.ClientKey(), "issue", key, "err", err)
	return nil, t.JiraUnavailable
}

func progress(t *messages, c *Checklist) string {
	return strings.NewReplacer("{done}", strconv.Itoa(c.Done()), "{total}", strconv.Itoa(len(c.Items))).Replace(t.Progress)
}

// csp is the panel's Content Security Policy. Scripts come only from the
// app itself and the AP library's origin; nothing inline. Styles allow
// inline because the AP library sets some at run time, which is harmless
// next to scripts. The page may be framed only by the tenant's site.
func (a *App) csp(in *tenon.Installation) string {
	ap := origin(a.opts.AllJSURL)
	ancestors := origin(in.BaseURL)
	if d := origin(in.DisplayURL); d != "" && d != ancestors {
		ancestors += " " + d
	}
	if ancestors == "" {
		ancestors = "'none'"
	}
	return "default-src 'none'; script-src 'self' " + ap +
		"; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'" +
		"; base-uri 'none'; form-action 'none'; frame-ancestors " + ancestors
}

// origin returns scheme://host of an absolute URL, or "".
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// serveStatic serves the embedded script and style sheet. Their URLs carry
// a content hash (?v=...), so a matching request may be cached for good.
func (a *App) serveStatic(w http.ResponseWriter, r *http.Request) {
	_, name, found := cutLast(r.URL.Path, "/static/")
	f, ok := a.files[name]
	if !found || !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("ETag", `"`+f.version+`"`)
	if r.URL.Query().Get("v") == f.version {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}
