package fakeatlassian_test

import (
	"math"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tenon-dev/tenon/fakeatlassian"
)

// limitedFake is a fake on a clock that moves only when told, with an
// app installed on two sites.
func limitedFake(t *testing.T, rl fakeatlassian.RateLimits) (*fakeatlassian.Fake, *clock, func(site int, method, path string) response) {
	t.Helper()
	c := newClock()
	f := newFake(t, fakeatlassian.Options{Now: c.Now})
	sites := []*fakeatlassian.Site{addSite(t, f, "one", ""), addSite(t, f, "two", "")}
	ta := newTestApp(t, f, "limited")
	apps := []fakeatlassian.App{ta.install(sites[0]), ta.install(sites[1])}
	f.SetRateLimits(rl)
	call := func(i int, method, path string) response {
		t.Helper()
		u := sites[i].BaseURL + path
		tok := signREST(t, apps[i], sites[i], method, u, func(cl jwt.MapClaims) {
			cl["iat"], cl["exp"] = c.Now().Unix(), c.Now().Add(3*time.Minute).Unix()
		})
		return do(t, method, u, "JWT "+tok, nil)
	}
	return f, c, call
}

// toReset is the whole seconds from now to the top of the next hour.
func toReset(now time.Time) string {
	d := now.Truncate(time.Hour).Add(time.Hour).Sub(now)
	return strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10)
}

func TestRateLimitGlobalQuota(t *testing.T) {
	t.Parallel()
	f, c, call := limitedFake(t, fakeatlassian.RateLimits{
		GlobalPoints: 5,
		NearLimit:    0.3,
		Cost:         map[string]int64{"GET /rest/api/{v}/myself": 2},
	})
	secs := toReset(c.Now())
	r := call(0, "GET", "/rest/api/3/myself")
	if r.Status != http.StatusOK {
		t.Fatalf("first call: %d %s", r.Status, r.Body)
	}
	if got, want := r.Header.Get("Beta-RateLimit-Policy"), `"global-app-quota";q=5;w=3600`; got != want {
		t.Errorf("Beta-RateLimit-Policy = %q, want %q", got, want)
	}
	if got, want := r.Header.Get("Beta-RateLimit"), `"global-app-quota";r=3;t=`+secs; got != want {
		t.Errorf("Beta-RateLimit = %q, want %q", got, want)
	}
	if r.Header.Get("X-Beta-RateLimit-NearLimit") != "" {
		t.Errorf("near limit with 3 of 5 left")
	}
	// The other site of the same app draws on the same pool.
	r = call(1, "GET", "/rest/api/3/myself")
	if r.Status != http.StatusOK || r.Header.Get("X-Beta-RateLimit-NearLimit") != "true" {
		t.Fatalf("second call: %d near=%q", r.Status, r.Header.Get("X-Beta-RateLimit-NearLimit"))
	}
	for i := range 2 {
		r = call(i, "GET", "/rest/api/3/myself")
		if r.Status != http.StatusTooManyRequests {
			t.Fatalf("site %d after the pool ran out: %d", i, r.Status)
		}
		if got := r.Header.Get("RateLimit-Reason"); got != "jira-quota-global-based" {
			t.Errorf("RateLimit-Reason = %q", got)
		}
		if got := r.Header.Get("X-Beta-RateLimit-Reason"); got != "jira-quota-global-based" {
			t.Errorf("X-Beta-RateLimit-Reason = %q", got)
		}
		if got := r.Header.Get("Retry-After"); got != secs {
			t.Errorf("Retry-After = %q, want the %s s to the top of the hour", got, secs)
		}
		reset := c.Now().Truncate(time.Hour).Add(time.Hour).UTC().Format("2006-01-02T15:04Z")
		if got := r.Header.Get("X-Beta-RateLimit-Reset"); got != reset {
			t.Errorf("X-Beta-RateLimit-Reset = %q, want %q", got, reset)
		}
		if got := r.Header.Get("Beta-RateLimit"); got != `"global-app-quota";r=1;t=`+secs {
			t.Errorf("Beta-RateLimit on the 429 = %q", got)
		}
		if d, err := http.ParseTime(r.Header.Get("Date")); err != nil || !d.Equal(c.Now().Truncate(time.Second)) {
			t.Errorf("Date = %q, want the fake's clock", r.Header.Get("Date"))
		}
	}
	st := f.RateLimitStats()
	if st.Admitted != 2 || st.Points != 4 || st.Refused[fakeatlassian.LimitGlobalQuota] != 2 {
		t.Errorf("stats = %+v, want 2 admitted, 4 points, 2 refused (refusals cost nothing)", st)
	}
	n, _ := strconv.Atoi(secs)
	c.Advance(time.Duration(n) * time.Second)
	if r = call(0, "GET", "/rest/api/3/myself"); r.Status != http.StatusOK {
		t.Errorf("after the reset: %d", r.Status)
	}
}

func TestRateLimitTenantQuota(t *testing.T) {
	t.Parallel()
	_, c, call := limitedFake(t, fakeatlassian.RateLimits{TenantPoints: 1})
	if r := call(0, "GET", "/rest/api/3/myself"); r.Status != http.StatusOK ||
		r.Header.Get("Beta-RateLimit") != `"tenant-app-quota";r=0;t=`+toReset(c.Now()) {
		t.Fatalf("first: %d %q", r.Status, r.Header.Get("Beta-RateLimit"))
	}
	r := call(0, "GET", "/rest/api/3/myself")
	if r.Status != http.StatusTooManyRequests || r.Header.Get("RateLimit-Reason") != "jira-quota-tenant-based" {
		t.Fatalf("second on the same site: %d %q", r.Status, r.Header.Get("RateLimit-Reason"))
	}
	if r := call(1, "GET", "/rest/api/3/myself"); r.Status != http.StatusOK {
		t.Errorf("another site has a pool of its own: %d", r.Status)
	}
}

func TestRateLimitBurst(t *testing.T) {
	t.Parallel()
	_, c, call := limitedFake(t, fakeatlassian.RateLimits{BurstRate: 1, Burst: 2})
	for i := range 2 {
		if r := call(0, "GET", "/rest/api/3/myself"); r.Status != http.StatusOK {
			t.Fatalf("call %d: %d", i, r.Status)
		}
	}
	r := call(0, "GET", "/rest/api/3/myself")
	if r.Status != http.StatusTooManyRequests || r.Header.Get("RateLimit-Reason") != "jira-burst-based" ||
		r.Header.Get("Retry-After") != "1" || r.Header.Get("X-RateLimit-Remaining") != "0" ||
		r.Header.Get("X-RateLimit-NearLimit") != "true" {
		t.Fatalf("burst: %d %v", r.Status, r.Header)
	}
	if r.Header.Get("X-Beta-RateLimit-Reason") != "" {
		t.Errorf("a burst limit is not a quota: %v", r.Header)
	}
	if r := call(0, "GET", "/rest/api/3/serverInfo"); r.Status != http.StatusOK {
		t.Errorf("another endpoint of the same site: %d", r.Status)
	}
	if r := call(1, "GET", "/rest/api/3/myself"); r.Status != http.StatusOK {
		t.Errorf("the same endpoint of another site: %d", r.Status)
	}
	c.Advance(time.Second)
	if r := call(0, "GET", "/rest/api/3/myself"); r.Status != http.StatusOK {
		t.Errorf("a second later: %d", r.Status)
	}
}

func TestRateLimitPerIssueWrite(t *testing.T) {
	t.Parallel()
	_, c, call := limitedFake(t, fakeatlassian.RateLimits{IssueWriteRate: 0.5})
	if r := call(0, "PUT", "/rest/api/3/issue/PROJ-1"); r.Status == http.StatusTooManyRequests {
		t.Fatalf("first write: %d", r.Status)
	}
	r := call(0, "PUT", "/rest/api/3/issue/proj-1/properties/x")
	if r.Status != http.StatusTooManyRequests || r.Header.Get("RateLimit-Reason") != "jira-per-issue-on-write" ||
		r.Header.Get("Retry-After") != "2" {
		t.Fatalf("second write to the issue: %d %v", r.Status, r.Header)
	}
	if r := call(0, "GET", "/rest/api/3/issue/PROJ-1"); r.Status == http.StatusTooManyRequests {
		t.Errorf("a read of the issue: %d", r.Status)
	}
	if r := call(0, "PUT", "/rest/api/3/issue/PROJ-2"); r.Status == http.StatusTooManyRequests {
		t.Errorf("a write to another issue: %d", r.Status)
	}
	c.Advance(2 * time.Second)
	if r := call(0, "PUT", "/rest/api/3/issue/PROJ-1"); r.Status == http.StatusTooManyRequests {
		t.Errorf("two seconds later: %d", r.Status)
	}
}
