package fakeatlassian

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// The control API lets a test in any language drive a fake started by
// `tenon fake`: JSON in, JSON out, under /_fake/. It has no
// authentication: bind the fake to a loopback address. See README.md for
// the route list.

const controlPrefix = "/_fake"

func (f *Fake) controlRoutes(mux *http.ServeMux) {
	h := func(pattern string, fn http.HandlerFunc) { mux.HandleFunc(pattern, fn) }
	p := controlPrefix
	h("GET "+p, f.ctlInfo)
	h("GET "+p+"/{$}", f.ctlInfo)
	h("GET "+p+"/sites", f.ctlListSites)
	h("POST "+p+"/sites", f.ctlAddSite)
	h("GET "+p+"/sites/{site}", f.ctlGetSite)
	h("GET "+p+"/sites/{site}/apps", f.ctlListApps)
	h("POST "+p+"/sites/{site}/apps", f.ctlInstall)
	h("GET "+p+"/sites/{site}/apps/{app}", f.ctlGetApp)
	h("DELETE "+p+"/sites/{site}/apps/{app}", f.ctlAppAction("uninstall"))
	h("POST "+p+"/sites/{site}/apps/{app}/reinstall", f.ctlAppAction("reinstall"))
	h("POST "+p+"/sites/{site}/apps/{app}/enable", f.ctlAppAction("enable"))
	h("POST "+p+"/sites/{site}/apps/{app}/disable", f.ctlAppAction("disable"))
	h("PUT "+p+"/sites/{site}/apps/{app}/license", f.ctlLicense)
	h("POST "+p+"/sites/{site}/apps/{app}/frame-url", f.ctlFrameURL)
	h("POST "+p+"/sites/{site}/apps/{app}/context-token", f.ctlContextToken)
	h("GET "+p+"/sites/{site}/issues", f.ctlListIssues)
	h("POST "+p+"/sites/{site}/issues", f.ctlCreateIssue)
	h("GET "+p+"/sites/{site}/issues/{key}", f.ctlGetIssue)
	h("PUT "+p+"/sites/{site}/issues/{key}", f.ctlUpdateIssue)
	h("DELETE "+p+"/sites/{site}/issues/{key}", f.ctlDeleteIssue)
	h("GET "+p+"/knobs", f.ctlGetKnobs)
	h("PUT "+p+"/knobs", f.ctlSetKnobs)
	h("GET "+p+"/calls", f.ctlCalls)
	h("DELETE "+p+"/calls", f.ctlResetCalls)
	h("POST "+p+"/keys/rotate", f.ctlRotateKey)
	h("POST "+p+"/webhooks/wait", f.ctlWaitWebhooks)
	h(p+"/", func(w http.ResponseWriter, r *http.Request) {
		writeControlError(w, http.StatusNotFound, "no control route "+r.Method+" "+r.URL.Path)
	})
}

// writeErr maps Go API errors to statuses.
func writeErr(w http.ResponseWriter, err error) {
	var de *DescriptorError
	var le *LifecycleError
	switch {
	case errors.As(err, &de):
		writeControlError(w, http.StatusUnprocessableEntity, "the app descriptor is invalid", de.Problems...)
	case errors.As(err, &le):
		detail := "no answer: " + errString(le.Err)
		if le.Status != 0 {
			detail = "answered " + strconv.Itoa(le.Status) + ": " + le.Body
		}
		writeControlError(w, http.StatusBadGateway, "the app refused the "+le.Event+" callback", detail)
	case errors.Is(err, ErrNotFound):
		writeControlError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrInvalid):
		writeControlError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrConflict):
		writeControlError(w, http.StatusConflict, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		writeControlError(w, http.StatusGatewayTimeout, err.Error())
	default:
		writeControlError(w, http.StatusBadGateway, err.Error())
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func ctlRead(w http.ResponseWriter, r *http.Request, v any) bool {
	return readJSON(w, r, v, func(status int, msg string) { writeControlError(w, status, msg) })
}

func (f *Fake) ctlSite(w http.ResponseWriter, r *http.Request) (*Site, bool) {
	s, err := f.Site(r.PathValue("site"))
	if err != nil {
		writeErr(w, err)
		return nil, false
	}
	return s, true
}

func (f *Fake) ctlInfo(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"url": f.URL(), "keyServerUrl": f.KeyServerURL(), "authServerUrl": f.AuthServerURL(),
		"allJsUrl": f.URL() + allJSPath, "sites": f.Sites(),
	})
}

func (f *Fake) ctlListSites(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, f.Sites())
}

func (f *Fake) ctlAddSite(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name    string `json:"name"`
		Product string `json:"product"`
		Users   []User `json:"users"`
	}
	if !ctlRead(w, r, &in) {
		return
	}
	s, err := f.AddSite(SiteOptions{Name: in.Name, Product: in.Product, Users: in.Users})
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, s)
}

func (f *Fake) ctlGetSite(w http.ResponseWriter, r *http.Request) {
	s, ok := f.ctlSite(w, r)
	if !ok {
		return
	}
	apps, _ := f.Apps(s)
	writeJSON(w, http.StatusOK, map[string]any{"site": s, "apps": apps})
}

func (f *Fake) ctlListApps(w http.ResponseWriter, r *http.Request) {
	s, ok := f.ctlSite(w, r)
	if !ok {
		return
	}
	apps, err := f.Apps(s)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, apps)
}

func (f *Fake) ctlInstall(w http.ResponseWriter, r *http.Request) {
	s, ok := f.ctlSite(w, r)
	if !ok {
		return
	}
	var in struct {
		DescriptorURL string `json:"descriptorUrl"`
	}
	if !ctlRead(w, r, &in) {
		return
	}
	if in.DescriptorURL == "" {
		writeControlError(w, http.StatusBadRequest, "descriptorUrl is required")
		return
	}
	app, err := f.Install(r.Context(), s, in.DescriptorURL)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, app)
}

func (f *Fake) ctlGetApp(w http.ResponseWriter, r *http.Request) {
	s, ok := f.ctlSite(w, r)
	if !ok {
		return
	}
	app, err := f.App(s, r.PathValue("app"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, app)
}

func (f *Fake) ctlAppAction(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := f.ctlSite(w, r)
		if !ok {
			return
		}
		appKey := r.PathValue("app")
		var err error
		switch action {
		case "uninstall":
			err = f.Uninstall(r.Context(), s, appKey)
		case "reinstall":
			_, err = f.Reinstall(r.Context(), s, appKey)
		case "enable":
			err = f.Enable(r.Context(), s, appKey)
		case "disable":
			err = f.Disable(r.Context(), s, appKey)
		}
		if err != nil {
			writeErr(w, err)
			return
		}
		app, err := f.App(s, appKey)
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, app)
	}
}

func (f *Fake) ctlLicense(w http.ResponseWriter, r *http.Request) {
	s, ok := f.ctlSite(w, r)
	if !ok {
		return
	}
	var in struct {
		Active *bool `json:"active"`
	}
	if !ctlRead(w, r, &in) {
		return
	}
	if in.Active == nil {
		writeControlError(w, http.StatusBadRequest, "active (true or false) is required")
		return
	}
	if err := f.SetLicense(s, r.PathValue("app"), *in.Active); err != nil {
		writeErr(w, err)
		return
	}
	app, _ := f.App(s, r.PathValue("app"))
	writeJSON(w, http.StatusOK, app)
}

// frameRequest is the body of frame-url and context-token.
type frameRequest struct {
	ModuleKey string            `json:"moduleKey"`
	AccountID string            `json:"accountId"`
	Locale    string            `json:"locale"`
	TimeZone  string            `json:"timeZone"`
	IssueKey  string            `json:"issueKey"`
	ContentID string            `json:"contentId"`
	Vars      map[string]string `json:"vars"`
}

func (fr frameRequest) options() FrameOptions {
	return FrameOptions{AccountID: fr.AccountID, Locale: fr.Locale, TimeZone: fr.TimeZone,
		IssueKey: fr.IssueKey, ContentID: fr.ContentID, Vars: fr.Vars}
}

func (f *Fake) ctlFrameURL(w http.ResponseWriter, r *http.Request) {
	s, ok := f.ctlSite(w, r)
	if !ok {
		return
	}
	var in frameRequest
	if !ctlRead(w, r, &in) {
		return
	}
	u, err := f.SignedModuleURL(s, r.PathValue("app"), in.ModuleKey, in.options())
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"url": u})
}

func (f *Fake) ctlContextToken(w http.ResponseWriter, r *http.Request) {
	s, ok := f.ctlSite(w, r)
	if !ok {
		return
	}
	var in frameRequest
	if !ctlRead(w, r, &in) {
		return
	}
	tok, err := f.ContextToken(s, r.PathValue("app"), in.options())
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"token": tok})
}

func (f *Fake) ctlListIssues(w http.ResponseWriter, r *http.Request) {
	s, ok := f.ctlSite(w, r)
	if !ok {
		return
	}
	f.mu.Lock()
	st, err := f.siteLocked(s)
	out := []Issue{}
	if err == nil {
		for _, k := range st.issueOrder {
			out = append(out, cloneIssue(st.issues[k]))
		}
	}
	f.mu.Unlock()
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (f *Fake) ctlCreateIssue(w http.ResponseWriter, r *http.Request) {
	s, ok := f.ctlSite(w, r)
	if !ok {
		return
	}
	var in IssueInput
	if !ctlRead(w, r, &in) {
		return
	}
	is, err := f.CreateIssue(s, in)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, is)
}

func (f *Fake) ctlGetIssue(w http.ResponseWriter, r *http.Request) {
	s, ok := f.ctlSite(w, r)
	if !ok {
		return
	}
	is, err := f.GetIssue(s, r.PathValue("key"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, is)
}

func (f *Fake) ctlUpdateIssue(w http.ResponseWriter, r *http.Request) {
	s, ok := f.ctlSite(w, r)
	if !ok {
		return
	}
	var up IssueUpdate
	if !ctlRead(w, r, &up) {
		return
	}
	is, err := f.UpdateIssue(s, r.PathValue("key"), up)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, is)
}

func (f *Fake) ctlDeleteIssue(w http.ResponseWriter, r *http.Request) {
	s, ok := f.ctlSite(w, r)
	if !ok {
		return
	}
	if err := f.DeleteIssue(s, r.PathValue("key")); err != nil {
		writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// controlKnobs is the JSON form of the knobs; durations in milliseconds.
type controlKnobs struct {
	LatencyMs *int64 `json:"latencyMs,omitempty"`
	Outage    *bool  `json:"outage,omitempty"`
	FailNext  *struct {
		Count  int `json:"count"`
		Status int `json:"status"`
	} `json:"failNext,omitempty"`
	RateLimitNext *struct {
		Count             int   `json:"count"`
		RetryAfterSeconds int64 `json:"retryAfterSeconds"`
	} `json:"rateLimitNext,omitempty"`
}

func (f *Fake) ctlGetKnobs(w http.ResponseWriter, r *http.Request) {
	k := f.Knobs()
	writeJSON(w, http.StatusOK, map[string]any{
		"latencyMs": k.Latency.Milliseconds(), "outage": k.Outage,
		"failNext":      map[string]int{"count": k.FailNext, "status": k.FailStatus},
		"rateLimitNext": map[string]int64{"count": int64(k.RateLimitNext), "retryAfterSeconds": int64(k.RetryAfter / time.Second)},
	})
}

// ctlSetKnobs changes the knobs present in the body and leaves the others.
func (f *Fake) ctlSetKnobs(w http.ResponseWriter, r *http.Request) {
	var in controlKnobs
	if !ctlRead(w, r, &in) {
		return
	}
	if in.LatencyMs != nil && (*in.LatencyMs < 0 || *in.LatencyMs > 600_000) {
		writeControlError(w, http.StatusBadRequest, "latencyMs must be between 0 and 600000")
		return
	}
	if in.FailNext != nil && (in.FailNext.Count < 0 || in.FailNext.Status < 400 || in.FailNext.Status > 599) {
		writeControlError(w, http.StatusBadRequest, "failNext needs count >= 0 and a status from 400 to 599")
		return
	}
	if in.RateLimitNext != nil && (in.RateLimitNext.Count < 0 || in.RateLimitNext.RetryAfterSeconds < 0) {
		writeControlError(w, http.StatusBadRequest, "rateLimitNext needs count >= 0 and retryAfterSeconds >= 0")
		return
	}
	if in.LatencyMs != nil {
		f.SetLatency(time.Duration(*in.LatencyMs) * time.Millisecond)
	}
	if in.Outage != nil {
		f.SetOutage(*in.Outage)
	}
	if in.FailNext != nil {
		f.FailNext(in.FailNext.Count, in.FailNext.Status)
	}
	if in.RateLimitNext != nil {
		f.RateLimitNext(in.RateLimitNext.Count, time.Duration(in.RateLimitNext.RetryAfterSeconds)*time.Second)
	}
	f.ctlGetKnobs(w, r)
}

// ctlCalls lists calls, filtered by kind, direction, site, app and since
// (a sequence number: only later calls).
func (f *Fake) ctlCalls(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var since int64
	if s := q.Get("since"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			writeControlError(w, http.StatusBadRequest, "since must be a sequence number")
			return
		}
		since = n
	}
	out := []Call{}
	for _, c := range f.Calls() {
		if c.Seq <= since ||
			(q.Has("kind") && c.Kind != q.Get("kind")) ||
			(q.Has("direction") && c.Direction != q.Get("direction")) ||
			(q.Has("site") && c.Site != q.Get("site")) ||
			(q.Has("app") && c.App != q.Get("app")) {
			continue
		}
		out = append(out, c)
	}
	writeJSON(w, http.StatusOK, out)
}

func (f *Fake) ctlResetCalls(w http.ResponseWriter, r *http.Request) {
	f.ResetCalls()
	w.WriteHeader(http.StatusNoContent)
}

func (f *Fake) ctlRotateKey(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"kid": f.RotateInstallKey()})
}

// ctlWaitWebhooks waits for queued webhook deliveries; ?timeout=5s
// (default 30 s, at most 5 min).
func (f *Fake) ctlWaitWebhooks(w http.ResponseWriter, r *http.Request) {
	timeout := 30 * time.Second
	if s := r.URL.Query().Get("timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > 5*time.Minute {
			writeControlError(w, http.StatusBadRequest, "timeout must be a Go duration between 0 and 5m, like 10s")
			return
		}
		timeout = d
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	if err := f.WaitWebhooks(ctx); err != nil {
		writeControlError(w, http.StatusGatewayTimeout, "webhook deliveries are still running")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
