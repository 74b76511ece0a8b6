package metrics_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/metrics"
	"github.com/tenon-dev/tenon/server"
	"github.com/tenon-dev/tenon/sqlite"
	"github.com/tenon-dev/tenon/storetest"
)

const tenantKey = "tenant-7f3a9c2e-5b1d-4e8f"

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	kr, err := keyring.New(bytes.Repeat([]byte{7}, keyring.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(filepath.Join(t.TempDir(), "tenon.db"), sqlite.Options{SecretBox: kr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func gather(t *testing.T, m *metrics.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// find returns the metric of family name whose labels include want.
func find(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no family %s", name)
	}
	for _, m := range f.GetMetric() {
		ls := labels(m)
		ok := true
		for k, v := range want {
			if ls[k] != v {
				ok = false
			}
		}
		if ok {
			return m
		}
	}
	t.Fatalf("%s has no series with %v", name, want)
	return nil
}

// feed sends one of every kind of event, all of them naming a tenant
// where the event has one.
func feed(m *metrics.Metrics) {
	m.ObserveRequest(server.RequestInfo{ID: "r1", Method: "GET", Route: "GET /issue/{key}", Status: 200, Duration: 120 * time.Millisecond, ClientKey: tenantKey})
	m.ObserveRequest(server.RequestInfo{ID: "r2", Method: "GET", Route: "GET /issue/{key}", Status: 200, Duration: 30 * time.Millisecond, ClientKey: tenantKey})
	m.ObserveRequest(server.RequestInfo{ID: "r3", Method: "BREW", Route: "", Status: 404, Duration: time.Millisecond})
	m.ObserveRequest(server.RequestInfo{ID: "r4", Method: "POST", Route: "POST /installed", Lifecycle: "installed", Status: 204, ClientKey: tenantKey})
	m.ObserveRequest(server.RequestInfo{ID: "r5", Method: "POST", Route: "POST /installed", Lifecycle: "installed", Status: 401})
	m.ObserveOutbound(tenon.OutboundCall{Product: "jira", Method: "GET", Status: 429, Attempt: 1, Duration: 80 * time.Millisecond, Outcome: "rate_limited"})
	m.ObserveOutbound(tenon.OutboundCall{Product: "jira", Method: "GET", Status: 200, Attempt: 2, Duration: 90 * time.Millisecond, Outcome: "ok"})
	m.ObserveQueue(tenon.QueueStats{Queue: "webhooks", Pending: 3, Running: 1, Dead: 2, OldestAge: 90 * time.Second})
}

func TestRequestSeries(t *testing.T) {
	m := metrics.New(metrics.Options{})
	feed(m)
	fams := gather(t, m)
	h := find(t, fams, "tenon_http_request_duration_seconds", map[string]string{"route": "GET /issue/{key}", "method": "GET", "code": "200"}).GetHistogram()
	if h.GetSampleCount() != 2 {
		t.Errorf("requests counted %d, want 2", h.GetSampleCount())
	}
	var bounds []float64
	for _, b := range h.GetBucket() {
		bounds = append(bounds, b.GetUpperBound())
		// 30 ms and 120 ms: one request under 50 ms, both under 250 ms.
		switch b.GetUpperBound() {
		case 0.05:
			if b.GetCumulativeCount() != 1 {
				t.Errorf("bucket le=0.05 has %d, want 1", b.GetCumulativeCount())
			}
		case 0.25:
			if b.GetCumulativeCount() != 2 {
				t.Errorf("bucket le=0.25 has %d, want 2", b.GetCumulativeCount())
			}
		}
	}
	if !slices.Equal(bounds, metrics.DefaultBuckets) {
		t.Errorf("buckets %v, want %v", bounds, metrics.DefaultBuckets)
	}
	for _, slo := range []float64{0.1, 0.25, 0.5, 1} {
		if !slices.Contains(bounds, slo) {
			t.Errorf("no bucket at the objective %gs", slo)
		}
	}
	// Unknown paths and invented methods collapse into one series.
	find(t, fams, "tenon_http_request_duration_seconds", map[string]string{"route": "unmatched", "method": "OTHER", "code": "404"})
	if c := find(t, fams, "tenon_lifecycle_events_total", map[string]string{"event": "installed", "outcome": "accepted"}).GetCounter().GetValue(); c != 1 {
		t.Errorf("accepted installs %g, want 1", c)
	}
	if c := find(t, fams, "tenon_lifecycle_events_total", map[string]string{"event": "installed", "outcome": "refused"}).GetCounter().GetValue(); c != 1 {
		t.Errorf("refused installs %g, want 1", c)
	}
}

func TestOutboundAndQueueSeries(t *testing.T) {
	m := metrics.New(metrics.Options{})
	feed(m)
	fams := gather(t, m)
	if n := find(t, fams, "tenon_outbound_request_duration_seconds", map[string]string{"product": "jira", "code": "429", "outcome": "rate_limited"}).GetHistogram().GetSampleCount(); n != 1 {
		t.Errorf("rate-limited calls %d, want 1", n)
	}
	if v := find(t, fams, "tenon_outbound_retries_total", map[string]string{"product": "jira"}).GetCounter().GetValue(); v != 1 {
		t.Errorf("retries %g, want 1", v)
	}
	for state, want := range map[string]float64{"pending": 3, "running": 1, "dead": 2} {
		if v := find(t, fams, "tenon_queue_jobs", map[string]string{"queue": "webhooks", "state": state}).GetGauge().GetValue(); v != want {
			t.Errorf("%s jobs %g, want %g", state, v, want)
		}
	}
	if v := find(t, fams, "tenon_queue_oldest_pending_seconds", map[string]string{"queue": "webhooks"}).GetGauge().GetValue(); v != 90 {
		t.Errorf("oldest pending %gs, want 90", v)
	}
}

// No series names a tenant, in a label name or a label value, whatever
// the observed events carried.
func TestNoTenantLabel(t *testing.T) {
	st := openStore(t)
	if err := st.SaveInstallation(context.Background(), storetest.NewInstallation(tenantKey)); err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Options{Store: st})
	feed(m)
	if err := m.WatchCertificates(func() map[string]time.Time { return map[string]time.Time{"app.example.com": time.Unix(1e9, 0)} }); err != nil {
		t.Fatal(err)
	}
	fams := gather(t, m)
	if len(fams) < 10 {
		t.Fatalf("only %d families gathered", len(fams))
	}
	for name, f := range fams {
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				n := strings.ToLower(l.GetName())
				if strings.Contains(n, "client") || strings.Contains(n, "tenant") || strings.Contains(n, "account") {
					t.Errorf("%s has a tenant label %q", name, l.GetName())
				}
				if strings.Contains(l.GetValue(), tenantKey) {
					t.Errorf("%s has a label value naming the tenant: %s=%q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
}

func TestStoreSeries(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	for _, ck := range []string{"a", "b"} {
		if err := st.SaveInstallation(ctx, storetest.NewInstallation(ck)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.SetState(ctx, "b", tenon.StateUninstalled); err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Options{Store: st})
	fams := gather(t, m)
	for state, want := range map[string]float64{"enabled": 1, "disabled": 0, "uninstalled": 1} {
		if v := find(t, fams, "tenon_tenants", map[string]string{"state": state}).GetGauge().GetValue(); v != want {
			t.Errorf("%s tenants %g, want %g", state, v, want)
		}
	}
	if v := find(t, fams, "tenon_store_connections_max", map[string]string{"pool": "writer"}).GetGauge().GetValue(); v != 1 {
		t.Errorf("writer pool limit %g, want 1", v)
	}
	find(t, fams, "tenon_store_connections", map[string]string{"pool": "reader", "state": "idle"})
	find(t, fams, "tenon_store_waits_total", map[string]string{"pool": "reader"})
}

func TestBuildInfoAndExposition(t *testing.T) {
	m := metrics.New(metrics.Options{Version: "v1.2.3", Revision: "abc123"})
	feed(m)
	if err := m.WatchCertificates(func() map[string]time.Time { return map[string]time.Time{"app.example.com": time.Unix(2e9, 0)} }); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(m.Handler())
	defer ts.Close()
	resp, err := http.Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	text := string(body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, text)
	}
	for _, want := range []string{
		`tenon_build_info{goversion="go`,
		`revision="abc123",version="v1.2.3"} 1`,
		`tenon_http_request_duration_seconds_bucket{code="200",method="GET",route="GET /issue/{key}",le="0.25"} 2`,
		`tenon_tls_certificate_expiry_timestamp_seconds{domain="app.example.com"} 2e+09`,
		`go_goroutines `,
		`process_start_time_seconds `,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}

// Each Metrics has its own registry: two in one process do not collide.
func TestRegistriesAreIndependent(t *testing.T) {
	a, b := metrics.New(metrics.Options{}), metrics.New(metrics.Options{})
	a.ObserveRequest(server.RequestInfo{Method: "GET", Route: "GET /x", Status: 200})
	fams := gather(t, b)
	if f := fams["tenon_http_request_duration_seconds"]; f != nil && len(f.GetMetric()) > 0 {
		t.Errorf("a request observed by one Metrics shows in another")
	}
}

func TestRateObserver(t *testing.T) {
	m := metrics.New(metrics.Options{})
	m.ObserveRateBudget(tenon.RateBudgetStats{Product: "jira", Policy: "global-app-quota", Limit: 100, Remaining: 17, NearLimit: true})
	m.ObserveRatePause(tenon.RatePause{Product: "jira", Scope: "product", Reason: "jira-quota-global-based", Start: true})
	m.ObserveRatePause(tenon.RatePause{Product: "jira", Scope: "product", Reason: "jira-quota-global-based"})
	m.ObserveTenantShares("jira", []tenon.TenantShare{{Tenant: "a", Used: 0.5}, {Tenant: "b", Used: 0.25}})
	m.ObserveTenantShares("jira", []tenon.TenantShare{{Tenant: "c", Used: 0.75}})
	for _, want := range []string{
		`tenon_outbound_budget_remaining_points{policy="global-app-quota",product="jira"} 17`,
		`tenon_outbound_budget_near_limit{policy="global-app-quota",product="jira"} 1`,
		`tenon_outbound_rate_limit_pauses_total{product="jira",reason="jira-quota-global-based",scope="product"} 1`,
		`tenon_outbound_budget_top_tenant_share{product="jira",tenant="c"} 0.75`,
	} {
		if body := scrape(t, m); !strings.Contains(body, want) {
			t.Errorf("no %s in\n%s", want, body)
		}
	}
	if body := scrape(t, m); strings.Contains(body, `tenant="a"`) {
		t.Errorf("a tenant that left the top still has a series")
	}
}

// scrape returns what the metrics handler serves.
func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}
