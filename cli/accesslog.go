package cli

import (
	"io"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenon-dev/tenon/server"
)

// The request log of serve and dev: one JSON line per request, written
// by server.AccessLog to the same destination as the other log lines,
// off the request's goroutine. newLogger gives its handler the shared
// destination; build finds it there (accessLogOut) and starts the access
// log, which Backend.Close flushes.

// lockedWriter serializes whole writes of the log handler and of the
// access log to one destination.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// logHandler is the JSON handler of the command line's logger; it knows
// its destination so the access log can write there too.
type logHandler struct {
	*slog.JSONHandler
	out io.Writer
}

func newLogHandler(w io.Writer, level slog.Level) logHandler {
	lw := &lockedWriter{w: w}
	return logHandler{JSONHandler: slog.NewJSONHandler(lw, &slog.HandlerOptions{Level: level}), out: lw}
}

// accessLogOut is where logger writes, when it is the command line's
// own logger; nil otherwise (the server then logs requests through it).
func accessLogOut(logger *slog.Logger) io.Writer {
	if h, ok := logger.Handler().(logHandler); ok {
		return h.out
	}
	return nil
}

// startAccessLog gives the server its access log, with its dropped
// lines counted in tenon_access_log_dropped_total.
func (b *Backend) startAccessLog(sc *server.Config) {
	out := accessLogOut(b.Logger)
	if out == nil {
		return
	}
	b.accessLog = server.NewAccessLog(out, server.AccessLogOptions{})
	sc.AccessLog = b.accessLog
	if b.Metrics != nil {
		al := b.accessLog
		if err := b.Metrics.Registry().Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tenon_access_log_dropped_total",
			Help: "Request log lines not written because the log's destination could not keep up (or failed).",
		}, func() float64 { return float64(al.Dropped()) })); err != nil {
			b.Logger.Warn("access log metric not registered", "error", err)
		}
	}
}
