package server_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

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
// runs it: the request line through the access log and the Prometheus
// observer.
func BenchmarkModuleRequestObserved(b *testing.B) {
	al := server.NewAccessLog(io.Discard, server.AccessLogOptions{})
	b.Cleanup(func() { _ = al.Close() })
	benchModule(b, func(c *server.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
		c.AccessLog = al
		c.Observer = metrics.New(metrics.Options{})
	})
}

// BenchmarkModuleRequestObservedSlog writes the request line through
// slog's JSON handler instead, as the server does without an AccessLog.
func BenchmarkModuleRequestObservedSlog(b *testing.B) {
	benchModule(b, func(c *server.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
		c.Observer = metrics.New(metrics.Options{})
	})
}

// BenchmarkAccessLogLine is the whole cost of one access log line:
// encoding, queueing and the writer's share, one line at a time as
// requests that are slower than the writer log them (no line dropped),
// with no linger: every line is a write of its own, the worst case.
func BenchmarkAccessLogLine(b *testing.B) {
	w := &signalWriter{wrote: make(chan struct{}, 1)}
	al := server.NewAccessLog(w, server.AccessLogOptions{Linger: -1})
	b.Cleanup(func() { _ = al.Close() })
	info := server.RequestInfo{ID: "9f86d081884c7d65", Method: "GET", Route: "GET /app/page/{id}", Status: 200, Bytes: 1234, Duration: 1500 * time.Microsecond, ClientKey: "client-a"}
	at := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		al.Log(at, info, "/app/page/7", "10.0.0.1")
		<-w.wrote
	}
	if al.Dropped() != 0 {
		b.Fatalf("dropped %d lines", al.Dropped())
	}
}

// BenchmarkAccessLogBusy logs from many goroutines at once, as a busy
// server does, and reports how many writes reach the destination per
// line: the system calls the log costs. Each goroutine stands for a
// connection whose request waits on the network between lines (a short
// sleep), so lines arrive at a rate a server produces (thousands per
// second), not as fast as a loop can log. ns/op is the pacing, not the
// log's cost; BenchmarkAccessLogLine measures that.
func BenchmarkAccessLogBusy(b *testing.B) {
	b.Run("linger=default", func(b *testing.B) { benchAccessLogBusy(b, 0) })
	b.Run("linger=none", func(b *testing.B) { benchAccessLogBusy(b, -1) })
}

func benchAccessLogBusy(b *testing.B, linger time.Duration) {
	w := &countingWriter{}
	al := server.NewAccessLog(w, server.AccessLogOptions{Linger: linger})
	info := server.RequestInfo{ID: "9f86d081884c7d65", Method: "GET", Route: "GET /app/page/{id}", Status: 200, Bytes: 1234, Duration: 1500 * time.Microsecond, ClientKey: "client-a"}
	at := time.Now()
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			time.Sleep(100 * time.Microsecond)
			al.Log(at, info, "/app/page/7", "10.0.0.1")
		}
	})
	_ = al.Close()
	lines := w.lines.Load()
	if lines == 0 {
		b.Fatal("no line was written")
	}
	b.ReportMetric(float64(w.writes.Load())/float64(lines), "writes/line")
	b.ReportMetric(float64(al.Dropped())/float64(b.N), "dropped/op")
}

// BenchmarkAccessLogEncode is the encoding of one line alone.
func BenchmarkAccessLogEncode(b *testing.B) {
	info := server.RequestInfo{ID: "9f86d081884c7d65", Method: "GET", Route: "GET /app/page/{id}", Status: 200, Bytes: 1234, Duration: 1500 * time.Microsecond, ClientKey: "client-a"}
	at := time.Now()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = server.AppendRequestLine(buf[:0], at, info, "/app/page/7", "10.0.0.1")
	}
}

// BenchmarkSlogRequestLine is the same line through slog's JSON handler.
func BenchmarkSlogRequestLine(b *testing.B) {
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		log.LogAttrs(ctx, slog.LevelInfo, "request",
			slog.String("method", "GET"), slog.String("route", "GET /app/page/{id}"), slog.String("path", "/app/page/7"),
			slog.Int("status", 200), slog.Int64("bytes", 1234), slog.Float64("duration_ms", 1.5),
			slog.String("remote", "10.0.0.1"), slog.String("client_key", "client-a"), slog.String("request_id", "9f86d081884c7d65"))
	}
}
