package fakeatlassian_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/fakeatlassian"
)

func TestKnobs(t *testing.T) {
	t.Parallel()
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", "")
	ta := newTestApp(t, f, "knobs")
	app := ta.install(site)
	get := func() response { return asApp(t, app, site, "GET", "/rest/api/3/myself", nil) }

	f.SetOutage(true)
	if r := get(); r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Errorf("outage: %d %v", r.Status, r.Header)
	}
	// Knobs act on REST only: installs keep working during an outage.
	if _, err := f.Reinstall(context.Background(), site, "knobs"); err != nil {
		t.Errorf("reinstall during outage: %v", err)
	}
	app, _ = f.App(site, "knobs")
	f.SetOutage(false)
	if r := get(); r.Status != http.StatusOK {
		t.Errorf("after outage: %d %s", r.Status, r.Body)
	}

	f.FailNext(2, http.StatusBadGateway)
	for i := range 2 {
		if r := get(); r.Status != http.StatusBadGateway {
			t.Errorf("failure %d: %d", i, r.Status)
		}
	}
	if r := get(); r.Status != http.StatusOK {
		t.Errorf("after failures: %d", r.Status)
	}

	f.RateLimitNext(1, 1500*time.Millisecond)
	r := get()
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") != "2" || r.Header.Get("RateLimit-Reason") == "" {
		t.Errorf("rate limit: %d Retry-After=%q", r.Status, r.Header.Get("Retry-After"))
	}
	if r := get(); r.Status != http.StatusOK {
		t.Errorf("after rate limit: %d", r.Status)
	}

	f.SetLatency(60 * time.Millisecond)
	start := time.Now()
	get()
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Errorf("latency: request took %v", d)
	}
	f.SetLatency(0)

	if k := f.Knobs(); k.Outage || k.FailNext != 0 || k.RateLimitNext != 0 || k.Latency != 0 {
		t.Errorf("knobs left set: %+v", k)
	}
}

func TestCallRecord(t *testing.T) {
	t.Parallel()
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", "")
	app := newTestApp(t, f, "rec").install(site)
	f.ResetCalls()
	asApp(t, app, site, "GET", "/rest/api/3/issue/DEMO-1", nil)
	do(t, "GET", site.BaseURL+"/rest/api/3/myself", "JWT nope", nil)

	var rest []fakeatlassian.Call
	for _, c := range f.Calls() {
		if c.Kind == fakeatlassian.KindREST {
			rest = append(rest, c)
		}
	}
	if len(rest) != 2 {
		t.Fatalf("REST calls = %+v", rest)
	}
	ok, bad := rest[0], rest[1]
	if ok.Direction != "in" || ok.Site != "acme" || ok.App != "rec" || ok.Auth != "jwt" || ok.Status != 200 || ok.URL != "/s/acme/rest/api/3/issue/DEMO-1" {
		t.Errorf("good call = %+v", ok)
	}
	if bad.Status != 401 || bad.Error == "" {
		t.Errorf("bad call = %+v", bad)
	}
	if ok.Seq >= bad.Seq {
		t.Errorf("sequence numbers not increasing: %d, %d", ok.Seq, bad.Seq)
	}
}
