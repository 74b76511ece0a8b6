package loadtest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/examples/reference"
	"github.com/tenon-dev/tenon/loadtest"
	"github.com/tenon-dev/tenon/tenontest"
)

// referenceMix is the checked-in reference mix, scaled down.
func referenceMix(t *testing.T, tenants, issues int) *loadtest.Mix {
	t.Helper()
	m, err := loadtest.ReadMix("mixes/reference.json")
	if err != nil {
		t.Fatal(err)
	}
	m.Tenants, m.IssuesPerTenant = tenants, issues
	return m
}

// tokenTimes reads iat and exp of the jwt parameter of a signed URL
// (unverified: the app verifies; this checks what was asked for).
func tokenTimes(t *testing.T, raw string) (iat, exp int64) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(u.Query().Get("jwt"), ".")
	if len(parts) != 3 {
		t.Fatalf("no token in %s", raw)
	}
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ Iat, Exp int64 }
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatal(err)
	}
	return c.Iat, c.Exp
}

func get(t *testing.T, raw string) (int, string) {
	t.Helper()
	res, err := http.Get(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// The reference mix against the reference app: tenants installed a few
// at a time, each tenant's value stored by the setup route, page URLs
// signed ahead with the life asked for and still verified by the app.
func TestReferenceWorkloadPresigned(t *testing.T) {
	env := tenontest.Start(t, reference.New(), tenontest.Options{})
	mix := referenceMix(t, 3, 2)
	sched, err := loadtest.NewSchedule(loadtest.ProfileLoad, loadtest.ProfileOptions{Rate: 1, Duration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	sched.Max = 60
	o := loadtest.Options{Target: env.BaseURL, Mix: mix, Schedule: sched, Model: loadtest.ModelClosed, Workers: 2,
		Window: 500 * time.Millisecond, Fake: env.Fake, Seed: 1, SitePrefix: "ref", InstallWorkers: 2}
	e, err := loadtest.Prepare(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if e.InstallRate <= 0 {
		t.Errorf("install rate %g", e.InstallRate)
	}

	const life = 10 * time.Minute
	urls, err := e.PageURLs(life)
	if err != nil {
		t.Fatal(err)
	}
	if len(urls) != 3*2 {
		t.Fatalf("%d URLs, want one per tenant and issue (6)", len(urls))
	}
	distinct := map[string]bool{}
	for _, u := range urls {
		distinct[u] = true
		if iat, exp := tokenTimes(t, u); exp-iat != int64(life/time.Second) {
			t.Errorf("token lives %d s, want %v", exp-iat, life)
		}
		for _, p := range []string{"xdm_e", "cp", "lic", "loc", "tz"} {
			if !strings.Contains(u, p+"=") {
				t.Errorf("URL lacks %s: %s", p, u)
			}
		}
		// The setup route stored each tenant's value; the page reads it.
		if status, body := get(t, u); status != http.StatusOK || !strings.Contains(body, "Hello from the reference workload") {
			t.Errorf("page: %d %s", status, body)
		}
	}
	if len(distinct) != len(urls) {
		t.Errorf("%d distinct URLs of %d", len(distinct), len(urls))
	}
	// Signing ahead changes nothing the app checks: a URL whose query
	// was changed after signing is refused.
	if status, _ := get(t, strings.Replace(urls[0], "tz=UTC", "tz=Europe%2FBerlin", 1)); status != http.StatusUnauthorized {
		t.Errorf("altered URL answered %d, want 401", status)
	}

	rep, err := e.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Presigned || rep.Total.Count == 0 || rep.Total.OK != rep.Total.Count || rep.InstallsPerSecond <= 0 {
		t.Errorf("presigned run: presigned %v, %d requests, %d OK, %g installs/s", rep.Presigned, rep.Total.Count, rep.Total.OK, rep.InstallsPerSecond)
	}

	o.SignAtSend, o.SitePrefix = true, "ref-send"
	e2, err := loadtest.Prepare(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	rep2, err := e2.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep2.Presigned || rep2.Total.Count == 0 || rep2.Total.OK != rep2.Total.Count {
		t.Errorf("signed at send: presigned %v, %d requests, %d OK", rep2.Presigned, rep2.Total.Count, rep2.Total.OK)
	}
}

// A setup route the app refuses stops the run before any load.
func TestSetupRouteMustSucceed(t *testing.T) {
	env := tenontest.Start(t, reference.New(), tenontest.Options{})
	for name, setup := range map[string]loadtest.Route{
		"unknown route": {Kind: loadtest.KindAPI, Method: http.MethodPut, Path: "/api/no-such-route", Body: json.RawMessage(`{}`)},
		"invalid value": {Kind: loadtest.KindAPI, Method: http.MethodPut, Path: "/api/reference-value", Body: json.RawMessage(`{"greeting":""}`)},
	} {
		mix := referenceMix(t, 2, 1)
		mix.Setup = []loadtest.Route{setup}
		sched, err := loadtest.NewSchedule(loadtest.ProfileLoad, loadtest.ProfileOptions{Rate: 1, Duration: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		_, err = loadtest.Prepare(context.Background(), loadtest.Options{Target: env.BaseURL, Mix: mix, Schedule: sched,
			Model: loadtest.ModelClosed, Workers: 1, Fake: env.Fake, SitePrefix: strings.ReplaceAll(name, " ", "-")})
		if err == nil || !strings.Contains(err.Error(), "setup") || !strings.Contains(err.Error(), "not 2xx") {
			t.Errorf("%s: Prepare = %v, want a setup error", name, err)
		}
	}
}
