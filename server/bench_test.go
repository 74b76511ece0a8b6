package server_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
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
