package fakeatlassian

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Directions of a Call.
const (
	DirectionIn  = "in"  // a request the fake received
	DirectionOut = "out" // a call the fake made to an app
)

// Kinds of a Call.
const (
	KindREST       = "rest"       // product REST API
	KindPage       = "page"       // product page for a browser
	KindHost       = "host"       // host-page endpoints (context token, AP.request)
	KindKeys       = "keys"       // install-keys server
	KindOAuth      = "oauth"      // OAuth 2.0 token endpoint
	KindStatic     = "static"     // all.js and page assets
	KindDescriptor = "descriptor" // descriptor fetch (out)
	KindLifecycle  = "lifecycle"  // installed/enabled/... callback (out)
	KindWebhook    = "webhook"    // webhook delivery attempt (out)
	KindOther      = "other"
)

// Call is one request the fake received or one call it made. The control
// API itself is not recorded. URLs have their jwt parameter redacted.
type Call struct {
	Seq       int64         `json:"seq"`
	Time      time.Time     `json:"time"`
	Direction string        `json:"direction"`
	Kind      string        `json:"kind"`
	Site      string        `json:"site,omitempty"`
	App       string        `json:"app,omitempty"`
	AccountID string        `json:"accountId,omitempty"` // the user a REST call acted as
	Auth      string        `json:"auth,omitempty"`      // REST: "jwt", "bearer" or "session"
	Method    string        `json:"method"`
	URL       string        `json:"url"`
	Status    int           `json:"status"` // 0 when no answer came
	Error     string        `json:"error,omitempty"`
	Event     string        `json:"event,omitempty"`     // lifecycle eventType or webhook event
	WebhookID string        `json:"webhookId,omitempty"` // X-Atlassian-Webhook-Identifier
	Retry     int           `json:"retry,omitempty"`     // X-Atlassian-Webhook-Retry
	Duration  time.Duration `json:"durationNs"`
}

// Calls returns a copy of the call record, oldest first.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

// ResetCalls empties the call record.
func (f *Fake) ResetCalls() {
	f.mu.Lock()
	f.calls = nil
	f.mu.Unlock()
}

// record appends c, stamping its sequence number, start time and duration.
func (f *Fake) record(c Call, start time.Time) {
	c.Time = start
	c.Duration = f.now().Sub(start)
	c.URL = redactJWT(c.URL)
	f.mu.Lock()
	f.callSeq++
	c.Seq = f.callSeq
	if len(f.calls) >= f.maxCalls {
		// Drop a tenth at once so that a full record does not cost a
		// copy per call under load.
		drop := max(f.maxCalls/10, len(f.calls)-f.maxCalls+1)
		f.calls = append(f.calls[:0], f.calls[drop:]...)
	}
	f.calls = append(f.calls, c)
	f.mu.Unlock()
	level := slogLevelFor(c.Status, c.Error)
	f.log.Log(context.Background(), level, "fake atlassian call",
		"dir", c.Direction, "kind", c.Kind, "method", c.Method, "url", c.URL,
		"status", c.Status, "site", c.Site, "app", c.App, "event", c.Event, "error", c.Error)
}

// redactJWT replaces the value of every jwt query parameter: URLs in the
// record and the log must not carry live tokens.
func redactJWT(u string) string {
	base, query, ok := strings.Cut(u, "?")
	if !ok || !strings.Contains(query, "jwt=") {
		return u
	}
	parts := strings.Split(query, "&")
	for i, p := range parts {
		if strings.HasPrefix(p, "jwt=") {
			parts[i] = "jwt=REDACTED"
		}
	}
	return base + "?" + strings.Join(parts, "&")
}

// callNote lets handlers add what they learned (site, app, user) to the
// record of the request they serve.
type callNote struct {
	kind, site, app, accountID, auth, err string
}

type callNoteKey struct{}

func noteOf(r *http.Request) *callNote {
	if n, ok := r.Context().Value(callNoteKey{}).(*callNote); ok {
		return n
	}
	return &callNote{}
}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// recordCalls records every request except those of the control API.
func (f *Fake) recordCalls(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, controlPrefix+"/") || r.URL.Path == controlPrefix {
			next.ServeHTTP(w, r)
			return
		}
		start := f.now()
		note := &callNote{kind: kindOfPath(r.URL.Path)}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), callNoteKey{}, note)))
		f.record(Call{
			Direction: DirectionIn, Kind: note.kind, Site: note.site, App: note.app,
			AccountID: note.accountID, Auth: note.auth, Method: r.Method,
			URL: requestURL(r), Status: sw.status, Error: note.err,
		}, start)
	})
}

func kindOfPath(p string) string {
	switch {
	case strings.HasPrefix(p, keyServerPath+"/"):
		return KindKeys
	case strings.HasPrefix(p, authServerPath+"/"):
		return KindOAuth
	case strings.HasPrefix(p, "/_host/"):
		return KindHost
	case strings.HasPrefix(p, "/_static/") || p == allJSPath:
		return KindStatic
	case strings.HasPrefix(p, "/s/") || p == "/":
		return KindPage // serveSite changes it to rest for API paths
	}
	return KindOther
}

// requestURL is the path and raw query the client sent.
func requestURL(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// rawRequestPath is the request path exactly as sent, for hashing.
func rawRequestPath(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		p, _, _ := strings.Cut(r.RequestURI, "?")
		return p
	}
	return r.URL.EscapedPath()
}

func slogLevelFor(status int, errText string) slog.Level {
	if errText != "" || status >= 500 || status == 0 {
		return slog.LevelWarn
	}
	return slog.LevelInfo
}
