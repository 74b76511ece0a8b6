package server_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkModuleRequest measures the whole path of a verified iframe
// request for a cached tenant: token extraction, parse, cache lookup,
// HS256, qsh, Principal, dispatch.
func BenchmarkModuleRequest(b *testing.B) {
	e := newEnv(b)
	e.install("client-a", "secret-a-0123456789abcdef0123456789abcdef")
	e.srv.Module("GET /bench", func(w http.ResponseWriter, r *http.Request) error { return nil })
	pq := "/bench?cp=%2Fjira&cv=1001.0.0&lic=active&loc=en-US&tz=Europe%2FBerlin&xdm_c=channel-1&xdm_e=https%3A%2F%2Facme.atlassian.net"
	target := appBaseURL + pq[:0] + "/bench" + pq[len("/bench"):] + "&jwt=" +
		e.tenantToken("client-a", "secret-a-0123456789abcdef0123456789abcdef", "GET", pq)
	benchRequest(b, e, target, "")
}

// BenchmarkAPIRequest measures a browser-API request with a context token.
func BenchmarkAPIRequest(b *testing.B) {
	e := newEnv(b)
	e.install("client-a", "secret-a-0123456789abcdef0123456789abcdef")
	e.srv.API("GET /bench-api", func(w http.ResponseWriter, r *http.Request) error { return nil })
	tok := e.contextToken("client-a", "secret-a-0123456789abcdef0123456789abcdef", `{"jira":{"issue":{"key":"ABC-1"}}}`)
	benchRequest(b, e, appBaseURL+"/bench-api?issue=ABC-1", tok)
}

func benchRequest(b *testing.B, e *env, target, headerToken string) {
	req := httptest.NewRequest(http.MethodGet, target, nil)
	if headerToken != "" {
		req.Header.Set("Authorization", "JWT "+headerToken)
	}
	// One warm-up request fills the tenant cache and proves the setup.
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

// BenchmarkSignedInstall measures the installed callback end to end on
// SQLite: RS256 verification against the key server, the payload checks,
// sealing the secret and the durable write, from 8 sites at once as a
// burst of installs arrives. Tokens are signed beforehand (signing is the
// product's cost, not the app's); the first tenants are fresh installs,
// later rounds reinstall them, which writes the same way.
func BenchmarkSignedInstall(b *testing.B) {
	e := newEnv(b)
	const tenants = 256
	type install struct {
		body  []byte
		token string
	}
	installs := make([]install, tenants)
	for i := range installs {
		ck := fmt.Sprintf("bench-client-%04d", i)
		installs[i] = install{lifecycleBody(ck, fmt.Sprintf("secret-%04d-0123456789abcdef0123456789abcdef", i)), e.installToken(ck, "installed")}
	}
	// One install up front fetches the key server's key and proves the setup.
	if r := e.lifecycle("installed", installs[0].body, installs[0].token); r.status != http.StatusNoContent {
		b.Fatalf("install: status %d: %s", r.status, r.body)
	}
	var seq atomic.Int64
	b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			in := installs[int(seq.Add(1))%tenants]
			req := httptest.NewRequest(http.MethodPost, appBaseURL+"/installed", bytes.NewReader(in.body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "JWT "+in.token)
			rec := httptest.NewRecorder()
			e.srv.ServeHTTP(rec, req)
			if rec.Code != http.StatusNoContent {
				b.Errorf("status %d: %s", rec.Code, rec.Body)
				return
			}
		}
	})
	b.ReportMetric(float64(seq.Load())/time.Since(start).Seconds(), "installs/s")
}
