package fakeatlassian

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strings"
)

// The host endpoints serve host.js on product pages: a context token for
// AP.context.getToken and REST calls for AP.request. They are scoped by
// the page session (site, user, frames of that page) and only answer the
// fake's own origin: the host script runs on the fake's pages, never in an
// app's iframe.

const maxHostRequestBody = 1 << 20

// hostSession checks the request and returns its session and frame.
func (f *Fake) hostSession(w http.ResponseWriter, r *http.Request, frameID string) (*siteState, *pageSession, *frame, bool) {
	// Browsers send Origin on these POSTs; it must be the page's own
	// origin, i.e. the host this request was sent to.
	if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host && o != "https://"+r.Host {
		writeControlError(w, http.StatusForbidden, "host endpoints only answer the fake's own pages")
		return nil, nil, nil, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ps := f.sessions[r.PathValue("session")]
	if ps == nil || f.now().After(ps.expires) {
		writeControlError(w, http.StatusUnauthorized, "the page session is unknown or expired; reload the page")
		return nil, nil, nil, false
	}
	fr := ps.frames[frameID]
	if fr == nil {
		writeControlError(w, http.StatusNotFound, "no such frame on this page")
		return nil, nil, nil, false
	}
	s := f.sites[ps.site]
	a := s.apps[fr.appKey]
	if a == nil || a.state != AppEnabled {
		writeControlError(w, http.StatusConflict, "the app is not enabled any more")
		return nil, nil, nil, false
	}
	n := noteOf(r)
	n.site, n.app, n.accountID, n.auth = ps.site, fr.appKey, ps.account, "session"
	return s, ps, fr, true
}

func (f *Fake) serveHostToken(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Frame string `json:"frame"`
	}
	if !readJSON(w, r, &body, func(status int, msg string) { writeControlError(w, status, msg) }) {
		return
	}
	s, ps, fr, ok := f.hostSession(w, r, body.Frame)
	if !ok {
		return
	}
	f.mu.Lock()
	token, err := f.contextTokenLocked(s, s.apps[fr.appKey], ps.account, fr.context)
	f.mu.Unlock()
	if err != nil {
		writeControlError(w, http.StatusInternalServerError, "signing the context token failed")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]string{"token": token})
}

// hostRequest is AP.request as host.js forwards it.
type hostRequest struct {
	Frame       string            `json:"frame"`
	URL         string            `json:"url"`
	Type        string            `json:"type"`
	Data        string            `json:"data"`
	ContentType string            `json:"contentType"`
	Headers     map[string]string `json:"headers"`
}

// serveHostRequest performs AP.request against the site's REST API as the
// page's user, with the app's scopes, and returns the answer to the
// iframe. Knobs apply as to any REST call.
func (f *Fake) serveHostRequest(w http.ResponseWriter, r *http.Request) {
	var body hostRequest
	if !readJSON(w, r, &body, func(status int, msg string) { writeControlError(w, status, msg) }) {
		return
	}
	s, ps, fr, ok := f.hostSession(w, r, body.Frame)
	if !ok {
		return
	}
	method := strings.ToUpper(body.Type)
	if method == "" {
		method = http.MethodGet
	}
	if !slices.Contains([]string{"GET", "POST", "PUT", "DELETE", "PATCH"}, method) {
		writeControlError(w, http.StatusBadRequest, "type must be GET, POST, PUT, PATCH or DELETE")
		return
	}
	if !strings.HasPrefix(body.URL, "/rest/") || strings.Contains(body.URL, "..") {
		writeControlError(w, http.StatusBadRequest, "url must be a product REST path relative to the site, like /rest/api/3/myself")
		return
	}
	if len(body.Data) > maxHostRequestBody {
		writeControlError(w, http.StatusRequestEntityTooLarge, "data is too large")
		return
	}
	var reqBody *bytes.Reader
	if method != http.MethodGet && body.Data != "" {
		reqBody = bytes.NewReader([]byte(body.Data))
	} else {
		reqBody = bytes.NewReader(nil)
	}
	inner, err := http.NewRequestWithContext(r.Context(), method, f.URL()+s.basePath+body.URL, reqBody)
	if err != nil {
		writeControlError(w, http.StatusBadRequest, "url is not a valid URL")
		return
	}
	ct := body.ContentType
	if ct == "" && reqBody.Len() > 0 {
		ct = "application/json"
	}
	if ct != "" {
		inner.Header.Set("Content-Type", ct)
	}
	for k, v := range body.Headers {
		if strings.EqualFold(k, "Accept") || strings.EqualFold(k, "Content-Type") {
			inner.Header.Set(k, v)
		}
	}
	inner = inner.WithContext(context.WithValue(r.Context(), callNoteKey{}, noteOf(r)))

	f.mu.Lock()
	a := s.apps[fr.appKey]
	c := &caller{appKey: fr.appKey, accountID: ps.account, scopes: slices.Clone(a.desc.Scopes), auth: "session"}
	f.mu.Unlock()

	rec := &bufferedResponse{header: http.Header{}}
	if !f.applyKnobs(rec, inner, s.info.Product) {
		rel := strings.TrimPrefix(inner.URL.Path, s.basePath)
		f.routeREST(rec, inner, s, rel, c)
	}
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"status":       rec.status,
		"statusText":   http.StatusText(rec.status),
		"responseText": rec.body.String(),
		"contentType":  rec.header.Get("Content-Type"),
		"retryAfter":   rec.header.Get("Retry-After"),
	})
}

// bufferedResponse collects an internal REST answer.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}
