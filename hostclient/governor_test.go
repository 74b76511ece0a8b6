package hostclient_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/hostclient"
	"github.com/tenon-dev/tenon/storetest"
)

func TestMemoryBudgets(t *testing.T) {
	storetest.RunBudgetStore(t, hostclient.NewMemoryBudgets())
}

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestGlobalPauseFromHeaders: how long a global-quota 429 pauses the
// product, from well-formed, malformed, missing, past and absurd headers,
// and with the product's clock ahead of ours.
func TestGlobalPauseFromHeaders(t *testing.T) {
	minute := func(d time.Duration) string { return testNow.Add(d).UTC().Format("2006-01-02T15:04Z") }
	tests := []struct {
		name    string
		hdr     []string
		want    time.Duration
		wantLog string
	}{
		{"retry-after seconds", []string{"Retry-After", "120"}, 2 * time.Minute, ""},
		{"retry-after date", []string{"Date", testNow.Format(http.TimeFormat), "Retry-After", testNow.Add(90 * time.Second).Format(http.TimeFormat)}, 90 * time.Second, ""},
		{"retry-after in the past", []string{"Date", testNow.Format(http.TimeFormat), "Retry-After", testNow.Add(-time.Hour).Format(http.TimeFormat)}, time.Minute, "not a usable wait"},
		{"negative retry-after", []string{"Retry-After", "-5"}, time.Minute, "not a usable wait"},
		{"absurd retry-after", []string{"Retry-After", "999999999999"}, hostclient.DefaultMaxPause, "capping"},
		{"malformed retry-after, pool reset", []string{"Retry-After", "soon", "Beta-RateLimit", `"global-app-quota";r=0;t=300`}, 5 * time.Minute, "not a usable wait"},
		{"beta reset, minute precision", []string{"Date", testNow.Format(http.TimeFormat), "X-Beta-RateLimit-Reset", minute(30 * time.Minute)}, 30 * time.Minute, ""},
		{"nothing usable", []string{"Beta-RateLimit", `garbage;;r=x`}, time.Minute, "no usable wait"},
		{"product clock ten minutes ahead", []string{"Date", testNow.Add(10 * time.Minute).Format(http.TimeFormat),
			"X-Beta-RateLimit-Reset", minute(40 * time.Minute)}, 30 * time.Minute, ""},
		{"product clock behind, relative wait", []string{"Date", testNow.Add(-time.Hour).Format(http.TimeFormat), "Retry-After", "45"}, 45 * time.Second, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logBuffer{}
			h := newHarness(t, hostclient.Policy{MaxAttempts: 1, Budget: hostclient.BudgetPolicy{
				Logger: slog.New(slog.NewTextHandler(logs, nil))}})
			hdr := append([]string{"RateLimit-Reason", "jira-quota-global-based"}, tt.hdr...)
			s := newSite(t, func(n int, w http.ResponseWriter, r *http.Request) {
				if n == 1 {
					status(429, hdr...)(n, w, r)
				}
			})
			if code, err := h.do(context.Background(), "GET", s.srv.URL+"/rest/api/3/myself", nil, nil); code != 429 {
				t.Fatalf("first call: %d %v", code, err)
			}
			st := h.res.Governor().Budget("")
			if !st.PausedUntil.Equal(testNow.Add(tt.want)) || st.PauseReason != "jira-quota-global-based" {
				t.Errorf("paused until %v (%q), want %v", st.PausedUntil, st.PauseReason, testNow.Add(tt.want))
			}
			if tt.wantLog != "" && !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log %q does not say %q", logs.String(), tt.wantLog)
			}
			if !strings.Contains(logs.String(), "no calls to it for any tenant") {
				t.Errorf("no log line for the start of the pause: %q", logs.String())
			}
			// Any tenant, any endpoint: not sent.
			other := newSite(t, status(200))
			_, err := h.do(context.Background(), "GET", other.srv.URL+"/rest/api/3/project", nil, nil)
			var rl *hostclient.RateLimitedError
			if !errors.As(err, &rl) || rl.Reason != "jira-quota-global-based" || other.hits.Load() != 0 {
				t.Errorf("another tenant during the pause: %v, %d sent", err, other.hits.Load())
			}
			h.clock.Advance(tt.want)
			if code, err := h.do(context.Background(), "GET", other.srv.URL+"/rest/api/3/project", nil, nil); code != 200 {
				t.Errorf("after the pause: %d %v", code, err)
			}
			if !strings.Contains(logs.String(), "resume") {
				t.Errorf("no log line for the end of the pause: %q", logs.String())
			}
		})
	}
}

// TestMalformedBudgetHeaders: headers that do not parse teach the governor
// nothing and stop no call.
func TestMalformedBudgetHeaders(t *testing.T) {
	h := newHarness(t, hostclient.Policy{MaxAttempts: 1})
	for _, v := range []string{`garbage`, `"global-app-quota";r=-4;t=10`, `"global-app-quota";r=abc;t=`, `;;;,,,`, strings.Repeat(`"x";r=1;t=1,`, 500)} {
		s := newSite(t, status(200, "Beta-RateLimit", v, "Beta-RateLimit-Policy", v, "X-Beta-RateLimit-NearLimit", "maybe"))
		for range 3 {
			if code, err := h.do(context.Background(), "GET", s.srv.URL+"/rest/api/3/myself", nil, nil); code != 200 {
				t.Fatalf("%q: %d %v", v, code, err)
			}
		}
		if st := h.res.Governor().Budget(""); st.Known || !st.PausedUntil.IsZero() {
			t.Errorf("%q: budget %+v, want unknown", v, st)
		}
	}
}

// TestBurstLimitPausesOneEndpointOfOneTenant and per-issue writes: the
// other endpoints, tenants and issues go on.
func TestBurstAndIssueLimitsStayNarrow(t *testing.T) {
	h := newHarness(t, hostclient.Policy{MaxAttempts: 1, MaxRetryAfter: time.Second})
	a := newSite(t, func(n int, w http.ResponseWriter, r *http.Request) {
		switch {
		case n == 1:
			status(429, "RateLimit-Reason", "jira-burst-based", "Retry-After", "30")(n, w, r)
		case n == 2:
			status(429, "RateLimit-Reason", "jira-per-issue-on-write", "Retry-After", "30")(n, w, r)
		}
	})
	b := newSite(t, status(200))
	ctx := context.Background()
	do := func(method, url string) (int, error) { return h.do(ctx, method, url, nil, nil) }
	if code, _ := do("GET", a.srv.URL+"/rest/api/3/issue/PROJ-1"); code != 429 {
		t.Fatalf("burst: %d", code)
	}
	var rl *hostclient.RateLimitedError
	if _, err := do("GET", a.srv.URL+"/rest/api/3/issue/PROJ-2"); !errors.As(err, &rl) || rl.Reason != "jira-burst-based" {
		t.Errorf("the same endpoint of the same tenant: %v", err)
	}
	if code, _ := do("GET", b.srv.URL+"/rest/api/3/issue/PROJ-2"); code != 200 {
		t.Errorf("the same endpoint of another tenant: %d", code)
	}
	if code, _ := do("PUT", a.srv.URL+"/rest/api/3/issue/PROJ-1"); code != 429 {
		t.Fatalf("per-issue: %d (another method is another endpoint)", code)
	}
	if _, err := do("PUT", a.srv.URL+"/rest/api/3/issue/proj-1/properties/x"); !errors.As(err, &rl) || rl.Reason != "jira-per-issue-on-write" {
		t.Errorf("another write to the issue: %v", err)
	}
	if code, _ := do("PUT", a.srv.URL+"/rest/api/3/issue/PROJ-2/properties/x"); code != 200 {
		t.Errorf("a write to another issue: %d", code)
	}
	if n := a.hits.Load(); n != 3 {
		t.Errorf("site a saw %d requests, want 3", n)
	}
	h.clock.Advance(30 * time.Second)
	if code, _ := do("PUT", a.srv.URL+"/rest/api/3/issue/PROJ-1"); code != 200 {
		t.Errorf("the issue after its pause: %d", code)
	}
}
