package server_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/forge"
)

// BenchmarkForgeRemoteRequest measures the whole path of a Forge UI
// invocation for a known installation: FIT verification with the key
// cached, the cached installation record and tenant, the token cache
// memo, Principal, dispatch.
func BenchmarkForgeRemoteRequest(b *testing.B) {
	fe := newForgeEnv(b)
	fe.srv.ForgeRemote("GET /forge/bench", func(w http.ResponseWriter, r *http.Request) error { return nil })
	req := httptest.NewRequest(http.MethodGet, appBaseURL+"/forge/bench?issue=DEMO-1", nil)
	req.Header.Set("Authorization", "Bearer "+fe.fit())
	req.Header.Set(forge.SystemTokenHeader, oauthToken("app", fe.clock.Now().Add(2*time.Hour)))
	rec := httptest.NewRecorder()
	fe.srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		fe.srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}
