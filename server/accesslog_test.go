package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/server"
)

// slogLine is the line slog's JSON handler writes for the request record
// the server logged before it had an AccessLog: the format to keep.
func slogLine(t *testing.T, at time.Time, info server.RequestInfo, path, remote string) string {
	t.Helper()
	clip := func(s string) string {
		if len(s) > 128 {
			return s[:128] + "…"
		}
		return s
	}
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, nil)
	rec := slog.NewRecord(at, slog.LevelInfo, "request", 0)
	rec.AddAttrs(
		slog.String("method", info.Method),
		slog.String("route", info.Route),
		slog.String("path", clip(path)),
		slog.Int("status", info.Status),
		slog.Int64("bytes", info.Bytes),
		slog.Float64("duration_ms", float64(info.Duration.Microseconds())/1000),
		slog.String("remote", clip(remote)),
	)
	if info.ClientKey != "" {
		rec.AddAttrs(slog.String("client_key", info.ClientKey))
	}
	if info.Lifecycle != "" {
		rec.AddAttrs(slog.String("lifecycle", info.Lifecycle))
	}
	if info.ID != "" {
		rec.AddAttrs(slog.String("request_id", info.ID))
	}
	if err := h.Handle(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func accessLine(t *testing.T, at time.Time, info server.RequestInfo, path, remote string) string {
	t.Helper()
	var buf bytes.Buffer
	l := server.NewAccessLog(&buf, server.AccessLogOptions{})
	l.Log(at, info, path, remote)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l.Dropped() != 0 {
		t.Fatalf("dropped %d lines", l.Dropped())
	}
	return buf.String()
}

// The access log writes exactly what slog's JSON handler wrote for the
// same request, odd characters included.
func TestAccessLogFormat(t *testing.T) {
	at := time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.FixedZone("CET", 3600))
	base := server.RequestInfo{ID: "9f86d081884c7d65", Method: "GET", Route: "GET /app/page/{id}", Status: 200, Bytes: 1234, Duration: 1500 * time.Microsecond, ClientKey: "client-a"}

	want := `{"time":"2026-03-14T15:09:26.535897+01:00","level":"INFO","msg":"request","method":"GET","route":"GET /app/page/{id}","path":"/app/page/7","status":200,"bytes":1234,"duration_ms":1.5,"remote":"10.0.0.1","client_key":"client-a","request_id":"9f86d081884c7d65"}` + "\n"
	if got := accessLine(t, at, base, "/app/page/7", "10.0.0.1"); got != want {
		t.Errorf("line\n%s\nwant\n%s", got, want)
	}

	odd := []struct {
		name   string
		info   func(*server.RequestInfo)
		path   string
		remote string
	}{
		{"quotes and backslashes", nil, `/app/"x"\y`, "::1"},
		{"control characters", nil, "/app/a\nb\rc\td\x00e\x1f\x7f", "10.0.0.1"},
		{"html stays", nil, "/app/<script>&amp;</script>", "10.0.0.1"},
		{"invalid utf-8", nil, "/app/\xff\xfe/\xc3", "10.0.0.1"},
		{"line separators", nil, "/app/\u2028\u2029ü€😀", "10.0.0.1"},
		{"long path clipped", nil, "/app/" + strings.Repeat("ab", 100), "10.0.0.1"},
		{"clipped inside a rune", nil, "/app/" + strings.Repeat("é", 70), "10.0.0.1"},
		{"long remote clipped", nil, "/", strings.Repeat("r", 200)},
		{"lifecycle, no tenant", func(i *server.RequestInfo) {
			i.ClientKey, i.Lifecycle, i.Route, i.Method = "", "installed", "POST /app/installed", "POST"
		}, "/app/installed", "10.0.0.1"},
		{"no route", func(i *server.RequestInfo) { i.Route, i.Status, i.ClientKey = "", 404, "" }, "/nope", "10.0.0.1"},
		{"zero duration", func(i *server.RequestInfo) { i.Duration = 0 }, "/", "10.0.0.1"},
		{"sub-millisecond", func(i *server.RequestInfo) { i.Duration = 7 * time.Microsecond }, "/", "10.0.0.1"},
		{"long duration", func(i *server.RequestInfo) { i.Duration = 93*time.Minute + 123456*time.Microsecond }, "/", "10.0.0.1"},
		{"odd method", func(i *server.RequestInfo) { i.Method = "PR\"OP" }, "/", "10.0.0.1"},
	}
	for _, tc := range odd {
		t.Run(tc.name, func(t *testing.T) {
			info := base
			if tc.info != nil {
				tc.info(&info)
			}
			got := accessLine(t, at, info, tc.path, tc.remote)
			if want := slogLine(t, at, info, tc.path, tc.remote); got != want {
				t.Errorf("line\n%q\nslog writes\n%q", got, want)
			}
		})
	}
}

// FuzzAccessLogFormat checks the encoder against slog for any path.
func FuzzAccessLogFormat(f *testing.F) {
	f.Add("/app/x", "10.0.0.1", "client-a")
	f.Add("\xff\u2028\"\\\x01", "::1", "")
	f.Fuzz(func(t *testing.T, path, remote, clientKey string) {
		at := time.Unix(1700000000, 123).UTC()
		info := server.RequestInfo{ID: "id", Method: "GET", Route: "GET /x", Status: 200, Duration: time.Millisecond, ClientKey: clientKey}
		if got, want := accessLine(t, at, info, path, remote), slogLine(t, at, info, path, remote); got != want {
			t.Errorf("line\n%q\nslog writes\n%q", got, want)
		}
	})
}

// gate is a destination that holds the writer in Write until released.
type gate struct {
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (g *gate) Write(p []byte) (int, error) {
	g.entered <- struct{}{}
	<-g.release
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(p)
}

// A slow destination never holds a request: lines beyond the queue are
// dropped and counted, the queued ones are written on Close, and lines
// after Close are dropped.
func TestAccessLogDropsInsteadOfBlocking(t *testing.T) {
	g := &gate{entered: make(chan struct{}, 8), release: make(chan struct{})}
	l := server.NewAccessLog(g, server.AccessLogOptions{Queue: 1})
	info := server.RequestInfo{ID: "a", Method: "GET", Status: 200}
	at := time.Unix(0, 0).UTC()
	l.Log(at, info, "/1", "x")
	<-g.entered // the writer holds line 1 and waits
	info.ID = "b"
	l.Log(at, info, "/2", "x") // queued
	info.ID = "c"
	l.Log(at, info, "/3", "x") // queue full: dropped
	if got := l.Dropped(); got != 1 {
		t.Fatalf("dropped %d, want 1", got)
	}
	close(g.release)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l.Log(at, info, "/4", "x")
	if got := l.Dropped(); got != 2 {
		t.Errorf("dropped %d after a line past Close, want 2", got)
	}
	g.mu.Lock()
	out := g.buf.String()
	g.mu.Unlock()
	var ids []string
	for _, m := range jsonLogs(t, out) {
		ids = append(ids, m["request_id"].(string))
	}
	if strings.Join(ids, ",") != "a,b" {
		t.Errorf("written lines %v, want a,b", ids)
	}
}

// signalWriter discards what it is given and says so.
type signalWriter struct{ wrote chan struct{} }

func (w *signalWriter) Write(p []byte) (int, error) {
	w.wrote <- struct{}{}
	return len(p), nil
}

// Encoding and queueing a line allocates nothing.
func TestAccessLogAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers at random")
	}
	w := &signalWriter{wrote: make(chan struct{}, 1)}
	l := server.NewAccessLog(w, server.AccessLogOptions{})
	defer l.Close()
	info := server.RequestInfo{ID: "9f86d081884c7d65", Method: "GET", Route: "GET /app/page/{id}", Status: 200, Bytes: 1234, Duration: 1500 * time.Microsecond, ClientKey: "client-a"}
	at := time.Now()
	logOne := func() {
		l.Log(at, info, "/app/page/7", "10.0.0.1")
		<-w.wrote // one line at a time, as requests that are slower than the writer
	}
	logOne() // the first line makes the buffer
	if n := testing.AllocsPerRun(200, logOne); n != 0 {
		t.Errorf("%v allocations per line, want 0", n)
	}
}

// The server writes its request lines through Config.AccessLog, with the
// verified tenant, and nothing of the query, the token or the secret.
func TestRequestLogThroughAccessLog(t *testing.T) {
	out := &logBuffer{}
	al := server.NewAccessLog(out, server.AccessLogOptions{})
	obs := &observed{}
	e := newEnv(t, func(c *server.Config) {
		c.AccessLog = al
		c.Observer = obs
	})
	const secret = "s3cr3t-shared-value-0123456789abcdef"
	e.install("client-a", secret)
	tok := e.tenantToken("client-a", secret, "GET", "/page?secret-param=hunter2")
	r := e.get("/page?secret-param=hunter2", tok)
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	id := r.header.Get("X-Request-Id")
	hdr := e.request("GET", "/page", "", nil, "Authorization", "JWT "+tok)
	obs.byID(t, id) // the observer hears after the line was queued
	obs.byID(t, hdr.header.Get("X-Request-Id"))
	if err := al.Close(); err != nil {
		t.Fatal(err)
	}
	raw := out.String()
	for _, secretPart := range []string{tok, strings.Split(tok, ".")[1], secret, "hunter2", "secret-param", "jwt"} {
		if strings.Contains(raw, secretPart) {
			t.Errorf("request log contains %q:\n%s", secretPart, raw)
		}
	}
	lines := linesOf(jsonLogs(t, raw), id)
	if len(lines) != 1 {
		t.Fatalf("lines of the request: %v\n%s", lines, raw)
	}
	l := lines[0]
	for k, v := range map[string]any{"msg": "request", "level": "INFO", "route": "GET /app/page", "path": "/app/page", "status": 200.0, "client_key": "client-a", "method": "GET", "remote": "127.0.0.1"} {
		if l[k] != v {
			t.Errorf("log %s = %v, want %v", k, l[k], v)
		}
	}
}

// countingWriter counts the writes it is given and the lines in them.
type countingWriter struct {
	writes, lines atomic.Int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes.Add(1)
	w.lines.Add(int64(bytes.Count(p, []byte("\n"))))
	return len(p), nil
}

// Lines logged together reach the destination in one write, in order,
// and a lone line is written without waiting for Close.
func TestAccessLogLingerBatches(t *testing.T) {
	out := &logBuffer{}
	w := &countingWriter{}
	l := server.NewAccessLog(io.MultiWriter(w, out), server.AccessLogOptions{Linger: time.Hour})
	info := server.RequestInfo{Method: "GET", Status: 200}
	at := time.Unix(0, 0).UTC()
	for i := range 100 {
		info.ID = fmt.Sprint(i)
		l.Log(at, info, "/p", "x")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := w.writes.Load(); got != 1 {
		t.Errorf("%d writes for 100 lines logged within the linger, want 1", got)
	}
	for i, m := range jsonLogs(t, out.String()) {
		if m["request_id"] != fmt.Sprint(i) {
			t.Fatalf("line %d has request_id %v: order lost", i, m["request_id"])
		}
	}

	sw := &signalWriter{wrote: make(chan struct{}, 1)}
	l = server.NewAccessLog(sw, server.AccessLogOptions{Linger: time.Millisecond})
	defer l.Close()
	l.Log(at, info, "/p", "x")
	select {
	case <-sw.wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("a lone line was not written before Close")
	}
}
