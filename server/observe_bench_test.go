package server_test

import (
	"io"
	"log/slog"
	"net/http"
	"testing"

	"github.com/tenon-dev/tenon/metrics"
	"github.com/tenon-dev/tenon/server"
)

func benchModule(b *testing.B, opts ...envOption) {
	e := newEnv(b, opts...)
	e.install("client-a", "secret-a-0123456789abcdef0123456789abcdef")
	e.srv.Module("GET /bench", func(w http.ResponseWriter, r *http.Request) error { return nil })
	pq := "/bench?cp=%2Fjira&cv=1001.0.0&lic=active&loc=en-US&tz=Europe%2FBerlin&xdm_c=channel-1&xdm_e=https%3A%2F%2Facme.atlassian.net"
	target := appBaseURL + pq + "&jwt=" + e.tenantToken("client-a", "secret-a-0123456789abcdef0123456789abcdef", "GET", pq)
	benchRequest(b, e, target, "")
}

// BenchmarkModuleRequestQuiet is BenchmarkModuleRequest without the
// request log line (log level warn) and without metrics: the cost of
// the verified path and of request ids alone.
func BenchmarkModuleRequestQuiet(b *testing.B) {
	benchModule(b, func(c *server.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
}

// BenchmarkModuleRequestObserved is a module request as `tenon serve`
// runs it: a JSON request log line and the Prometheus observer.
func BenchmarkModuleRequestObserved(b *testing.B) {
	benchModule(b, func(c *server.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
		c.Observer = metrics.New(metrics.Options{})
	})
}
