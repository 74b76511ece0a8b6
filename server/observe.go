package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/tenon-dev/tenon"
)

// RequestInfo describes one finished request, for the request log and for
// metrics. It holds nothing secret: no query string, header or token.
type RequestInfo struct {
	// ID identifies the request in every log line it caused; it is sent
	// back in the X-Request-Id header.
	ID     string
	Method string
	// Route is the pattern that matched, as registered with the mux
	// (e.g. "GET /page/{id}" under the base path); "" when none did.
	// Paths are not reported: an attacker chooses them at will.
	Route string
	// Lifecycle is "installed", "uninstalled", "enabled" or "disabled" on
	// the lifecycle routes, "" elsewhere.
	Lifecycle string
	Status    int
	Bytes     int64 // response body bytes written
	Duration  time.Duration
	// ClientKey is the tenant the request was verified for, "" when it
	// was not authenticated. It belongs in logs, never in metric labels:
	// one series per tenant grows without bound.
	ClientKey string
}

// RequestObserver hears about every finished request (Config.Observer).
// The metrics package implements it. ObserveRequest runs on the request's
// goroutine after the response was written, so it must be fast; it is
// called concurrently.
type RequestObserver interface {
	ObserveRequest(RequestInfo)
}

// Observer returns Config.Observer when it also implements tenon.Observer
// (the metrics package's does), else tenon.NopObserver. Apps pass it to
// the clients they build in Routes — hostclient.Policy.Observer — so
// their calls to the product are counted with the server's requests.
func (s *Server) Observer() tenon.Observer {
	if o, ok := s.cfg.Observer.(tenon.Observer); ok {
		return o
	}
	return tenon.NopObserver{}
}

// RequestIDHeader carries the request id in responses, and in requests
// from a proxy that made one.
const RequestIDHeader = "X-Request-Id"

type requestKey struct{}

// requestRecord is what the server learns about a request while serving
// it. It is the request's context too, extending the one the request
// came with, so that giving a request its record costs one allocation on
// the hot path instead of three. It is only written from the request's
// own goroutine.
type requestRecord struct {
	context.Context
	id        string
	clientKey string
	header    [1]string // backing array of the X-Request-Id header value
}

// Value implements context.Context.
func (rec *requestRecord) Value(key any) any {
	if key == (requestKey{}) {
		return rec
	}
	return rec.Context.Value(key)
}

// RequestID returns the id of the request ctx belongs to, or "". App
// handlers can add it to their own logs and error reports.
func RequestID(ctx context.Context) string {
	if rec, ok := ctx.Value(requestKey{}).(*requestRecord); ok {
		return rec.id
	}
	return ""
}

// noteClientKey records the verified tenant of the request, for its log line.
func noteClientKey(ctx context.Context, clientKey string) {
	if rec, ok := ctx.Value(requestKey{}).(*requestRecord); ok {
		rec.clientKey = clientKey
	}
}

// validRequestID accepts the ids proxies generate (nginx's $request_id,
// UUIDs, ...) and nothing that could disturb a log line or a header.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// beginRequest gives the request its id and record. A well-formed
// X-Request-Id from the client is kept, so one id follows the request from
// a proxy through the app; servers reachable by untrusted clients should
// strip the header in front of the server (the edge package does).
func (s *Server) beginRequest(rw *responseWriter, r *http.Request) *http.Request {
	rec := &requestRecord{Context: r.Context(), id: r.Header.Get(RequestIDHeader)}
	if !validRequestID(rec.id) {
		rec.id = newRequestID()
	}
	rec.header[0] = rec.id
	rw.Header()[RequestIDHeader] = rec.header[:]
	rw.start = s.cfg.Now()
	return r.WithContext(rec)
}

// newRequestID returns 64 random bits in hex: unique enough to find one
// request's lines among a day of logs, short enough to read.
func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails
	var out [16]byte
	hex.Encode(out[:], b[:])
	return string(out[:])
}

// endRequest writes the request's log line and tells the observer.
func (s *Server) endRequest(rw *responseWriter, r *http.Request) {
	rec, _ := r.Context().Value(requestKey{}).(*requestRecord)
	status := rw.status
	if status == 0 {
		// Nothing was written: net/http answers 200 with an empty body,
		// unless the handler aborted, which only a panic does here.
		status = http.StatusOK
	}
	info := RequestInfo{
		ID:        rec.id,
		Method:    r.Method,
		Route:     r.Pattern,
		Lifecycle: s.lifecycleEvent(r.Pattern),
		Status:    status,
		Bytes:     rw.bytes,
		Duration:  s.cfg.Now().Sub(rw.start),
		ClientKey: rec.clientKey,
	}
	if s.cfg.Observer != nil {
		defer s.cfg.Observer.ObserveRequest(info)
	}
	if !s.log.Enabled(r.Context(), slog.LevelInfo) {
		return
	}
	if s.cfg.AccessLog != nil {
		s.cfg.AccessLog.Log(s.cfg.Now(), info, r.URL.Path, remoteHost(r.RemoteAddr))
		return
	}
	attrs := []slog.Attr{
		slog.String("method", info.Method),
		slog.String("route", info.Route),
		slog.String("path", clip(r.URL.Path)),
		slog.Int("status", info.Status),
		slog.Int64("bytes", info.Bytes),
		slog.Float64("duration_ms", float64(info.Duration.Microseconds())/1000),
		slog.String("remote", clip(remoteHost(r.RemoteAddr))),
	}
	if info.ClientKey != "" {
		attrs = append(attrs, slog.String("client_key", info.ClientKey))
	}
	if info.Lifecycle != "" {
		attrs = append(attrs, slog.String("lifecycle", info.Lifecycle))
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
}

// lifecycleEvent names the lifecycle callback a route pattern belongs to,
// without allocating: it runs for every request.
func (s *Server) lifecycleEvent(pattern string) string {
	rest, ok := strings.CutPrefix(pattern, "POST ")
	if !ok {
		return ""
	}
	rest, ok = strings.CutPrefix(rest, s.basePath)
	if !ok {
		return ""
	}
	for _, l := range [...]struct{ name, path string }{
		{"installed", s.desc.Lifecycle.Installed},
		{"uninstalled", s.desc.Lifecycle.Uninstalled},
		{"enabled", s.desc.Lifecycle.Enabled},
		{"disabled", s.desc.Lifecycle.Disabled},
	} {
		if p, _, _ := strings.Cut(l.path, "?"); p != "" && p == rest {
			return l.name
		}
	}
	return ""
}

// remoteHost is the host part of a remote address, or all of it when it
// has none; the log clips it.
func remoteHost(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// requestIDHandler adds the request id to every record logged with the
// request's context, so the server's own lines (refusals, failures) can
// be matched with the request's log line.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r = r.Clone()
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}
