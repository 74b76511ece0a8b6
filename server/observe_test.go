package server_test

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/metrics"
	"github.com/tenon-dev/tenon/server"
)

// observed records what a RequestObserver is told.
type observed struct {
	mu    sync.Mutex
	infos []server.RequestInfo
}

func (o *observed) ObserveRequest(info server.RequestInfo) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.infos = append(o.infos, info)
}

// byID returns the info of the request with id. The server reports a
// request after its response went out, so the client may be faster: wait.
func (o *observed) byID(t *testing.T, id string) server.RequestInfo {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		o.mu.Lock()
		for _, in := range o.infos {
			if in.ID == id {
				o.mu.Unlock()
				return in
			}
		}
		o.mu.Unlock()
	}
	t.Fatalf("no observed request with id %q", id)
	return server.RequestInfo{}
}

// jsonLogs parses JSON log lines.
func jsonLogs(t *testing.T, raw string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// linesOf returns the log lines carrying request id.
func linesOf(logs []map[string]any, id string) []map[string]any {
	var out []map[string]any
	for _, l := range logs {
		if l["request_id"] == id {
			out = append(out, l)
		}
	}
	return out
}

// observedEnv is an env whose logs are JSON and whose requests are observed.
func observedEnv(t *testing.T) (*env, *observed, *logBuffer) {
	obs := &observed{}
	logs := &logBuffer{}
	e := newEnv(t, func(c *server.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.Observer = obs
	})
	e.srv.Module("GET /issue/{key}", func(w http.ResponseWriter, r *http.Request) error {
		_, err := io.WriteString(w, "issue "+r.PathValue("key")+" in request "+server.RequestID(r.Context()))
		return err
	})
	return e, obs, logs
}

// Every request gets an id, returned in X-Request-Id; its log line carries
// the id, the route pattern (not the path), the verified tenant, status and
// latency; the server's other lines about the request carry the same id.
func TestRequestLogAndObserver(t *testing.T) {
	e, obs, logs := observedEnv(t)
	const secret = "s3cr3t-shared-value-0123456789abcdef"
	e.install("client-a", secret)

	r := e.get("/issue/DEMO-7", e.tenantToken("client-a", secret, "GET", "/issue/DEMO-7"))
	id := r.header.Get("X-Request-Id")
	if r.status != 200 || id == "" {
		t.Fatalf("status %d, X-Request-Id %q", r.status, id)
	}
	if !strings.HasSuffix(r.body, "in request "+id) {
		t.Errorf("handler saw request id differently: %q", r.body)
	}
	info := obs.byID(t, id)
	want := server.RequestInfo{ID: id, Method: "GET", Route: "GET /app/issue/{key}", Status: 200, Bytes: int64(len(r.body)), ClientKey: "client-a"}
	info.Duration = 0
	if info != want {
		t.Errorf("observed %+v\nwant     %+v", info, want)
	}
	lines := linesOf(jsonLogs(t, logs.String()), id)
	if len(lines) != 1 || lines[0]["msg"] != "request" {
		t.Fatalf("log lines of the request: %v", lines)
	}
	l := lines[0]
	for k, v := range map[string]any{"route": "GET /app/issue/{key}", "path": "/app/issue/DEMO-7", "status": 200.0, "client_key": "client-a", "method": "GET"} {
		if l[k] != v {
			t.Errorf("log %s = %v, want %v", k, l[k], v)
		}
	}
	if _, ok := l["duration_ms"].(float64); !ok {
		t.Errorf("log line has no duration_ms: %v", l)
	}

	// A refused request: the refusal and the request line share the id,
	// and the unverified issuer is not reported as the tenant.
	r = e.get("/issue/DEMO-7", e.tenantToken("client-a", "wrong-secret", "GET", "/issue/DEMO-7"))
	id = r.header.Get("X-Request-Id")
	if r.status != 401 || id == "" {
		t.Fatalf("forged token: status %d, id %q", r.status, id)
	}
	if got := obs.byID(t, id); got.ClientKey != "" || got.Status != 401 {
		t.Errorf("refused request observed as %+v", got)
	}
	lines = linesOf(jsonLogs(t, logs.String()), id)
	var msgs []string
	for _, l := range lines {
		msgs = append(msgs, l["msg"].(string))
		if _, ok := l["client_key"]; ok && l["msg"] == "request" {
			t.Errorf("refused request logged with a client_key: %v", l)
		}
	}
	if strings.Join(msgs, "|") != "request refused|request" {
		t.Errorf("lines of the refused request: %q", msgs)
	}
}

func TestRequestIDFromProxy(t *testing.T) {
	e, _, _ := observedEnv(t)
	tests := []struct {
		sent string
		kept bool
	}{
		{"7f3a9c2e-5b1d-4e8f-9a6b-0c1d2e3f4a5b", true},
		{"abc123", true},
		{"bad id;forged=log", false},
		{"<script>", false},
		{strings.Repeat("a", 129), false},
	}
	for _, tc := range tests {
		r := e.request("GET", "/health", "", nil, "X-Request-Id", tc.sent)
		got := r.header.Get("X-Request-Id")
		if (got == tc.sent) != tc.kept || got == "" {
			t.Errorf("sent %q, answered %q; kept %v, want %v", tc.sent, got, got == tc.sent, tc.kept)
		}
	}
}

// The observer gets bounded labels: the lifecycle event on lifecycle
// routes, "" for paths no route matched, 500 after a panic.
func TestObserverLabels(t *testing.T) {
	e, obs, _ := observedEnv(t)
	r := e.lifecycle("installed", lifecycleBody("client-b", "s3cr3t-0123456789abcdef0123456789"), e.installToken("client-b", "installed"))
	if got := obs.byID(t, r.header.Get("X-Request-Id")); got.Lifecycle != "installed" || got.Status != 204 || got.ClientKey != "client-b" || got.Route != "POST /app/installed" {
		t.Errorf("install observed as %+v", got)
	}
	r = e.request("GET", "/no/such/path/12345", "", nil)
	if got := obs.byID(t, r.header.Get("X-Request-Id")); got.Route != "" || got.Status != 404 || got.Lifecycle != "" {
		t.Errorf("unknown path observed as %+v", got)
	}
	e.install("client-c", "s3cr3t-0123456789abcdef0123456789")
	r = e.get("/panic", e.tenantToken("client-c", "s3cr3t-0123456789abcdef0123456789", "GET", "/panic"))
	if got := obs.byID(t, r.header.Get("X-Request-Id")); got.Status != 500 || got.Route != "GET /app/panic" {
		t.Errorf("panic observed as %+v", got)
	}
}

// Server.Observer hands apps the configured observer for their product
// calls when it can take them, and a no-op otherwise.
func TestServerObserver(t *testing.T) {
	e, _, _ := observedEnv(t)
	if _, ok := e.srv.Observer().(tenon.NopObserver); !ok {
		t.Errorf("a request-only observer gave %T, want tenon.NopObserver", e.srv.Observer())
	}
	m := metrics.New(metrics.Options{})
	e2 := newEnv(t, func(c *server.Config) { c.Observer = m })
	if got := e2.srv.Observer(); got != tenon.Observer(m) {
		t.Errorf("Observer() = %v, want the metrics", got)
	}
}
