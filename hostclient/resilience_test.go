package hostclient_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/hostclient"
)

// testClock is a manual clock for Policy.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// sleeper is a Policy.Sleep that records each wait and moves the clock
// instead of sleeping.
type sleeper struct {
	clock *testClock
	mu    sync.Mutex
	waits []time.Duration
}

func (s *sleeper) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	s.clock.Advance(d)
	return ctx.Err()
}

func (s *sleeper) Waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.waits...)
}

// observer records what a Resilience reports.
type observer struct {
	mu    sync.Mutex
	calls []tenon.OutboundCall
}

func (o *observer) ObserveOutbound(c tenon.OutboundCall) {
	o.mu.Lock()
	o.calls = append(o.calls, c)
	o.mu.Unlock()
}

func (o *observer) ObserveQueue(tenon.QueueStats) {}

func (o *observer) Calls() []tenon.OutboundCall {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]tenon.OutboundCall(nil), o.calls...)
}

// harness is a Resilience on a manual clock, with its transport.
type harness struct {
	res   *hostclient.Resilience
	rt    http.RoundTripper
	clock *testClock
	sleep *sleeper
	obs   *observer
}

// newHarness fills in a test clock, sleeper, observer and zero jitter
// unless p sets them.
func newHarness(t *testing.T, p hostclient.Policy) *harness {
	t.Helper()
	h := &harness{clock: &testClock{t: testNow}, obs: &observer{}}
	h.sleep = &sleeper{clock: h.clock}
	if p.Now == nil {
		p.Now = h.clock.Now
	}
	if p.Sleep == nil {
		p.Sleep = h.sleep.Sleep
	}
	if p.Rand == nil {
		p.Rand = func() float64 { return 0 }
	}
	if p.Observer == nil {
		p.Observer = h.obs
	}
	h.res = hostclient.NewResilience(p)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	h.rt = h.res.Wrap(tr)
	return h
}

// do sends method url through the harness and returns the status, or the
// error. The body of a response is read and closed.
func (h *harness) do(ctx context.Context, method, url string, body io.Reader, hdr http.Header) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := h.rt.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}

// site is a product site whose answers a test scripts: answer(n) serves
// the n-th request (1-based).
type site struct {
	srv  *httptest.Server
	hits atomic.Int32
}

func newSite(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *site {
	t.Helper()
	s := &site{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answer(int(s.hits.Add(1)), w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// name is the site as a Resilience keys it without a Target.
func (s *site) name() string { return s.srv.URL }

func status(code int, hdr ...string) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		w.WriteHeader(code)
	}
}

// sequence answers with codes in turn, then 200.
func sequence(codes ...int) func(int, http.ResponseWriter, *http.Request) {
	return func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= len(codes) {
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(codes[n-1])
			return
		}
		io.WriteString(w, "ok")
	}
}

func waitsEqual(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestWaitHonoursRetryAfter: the wait before a retry is what the product
// asked for (plus at most BaseDelay of jitter), in either header form, and
// a wait longer than MaxRetryAfter is not sat out.
func TestWaitHonoursRetryAfter(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		header    func(now time.Time) (string, string)
		rand      float64
		wantWaits []time.Duration
		wantHits  int
		wantFinal int
	}{
		{"429 Retry-After seconds", 429, func(time.Time) (string, string) { return "Retry-After", "7" }, 0,
			[]time.Duration{7 * time.Second, 7 * time.Second}, 3, 429},
		{"429 Retry-After with jitter", 429, func(time.Time) (string, string) { return "Retry-After", "7" }, 0.5,
			[]time.Duration{7*time.Second + 100*time.Millisecond, 7*time.Second + 100*time.Millisecond}, 3, 429},
		{"503 Retry-After date", 503, func(now time.Time) (string, string) {
			return "Retry-After", now.Add(20 * time.Second).Format(http.TimeFormat)
		}, 0, []time.Duration{20 * time.Second, 20 * time.Second}, 3, 503},
		{"429 X-RateLimit-Reset", 429, func(now time.Time) (string, string) {
			return "X-RateLimit-Reset", now.Add(15 * time.Second).Format(time.RFC3339)
		}, 0, []time.Duration{15 * time.Second, 15 * time.Second}, 3, 429},
		{"Retry-After beyond MaxRetryAfter", 429, func(time.Time) (string, string) { return "Retry-After", "61" }, 0,
			nil, 1, 429},
		{"429 without a time backs off", 429, func(time.Time) (string, string) { return "X-Other", "1" }, 0,
			[]time.Duration{100 * time.Millisecond, 200 * time.Millisecond}, 3, 429},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, hostclient.Policy{Rand: func() float64 { return tt.rand }, BreakerThreshold: -1})
			s := newSite(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				k, v := tt.header(h.clock.Now())
				w.Header().Set(k, v)
				w.WriteHeader(tt.status)
			})
			code, err := h.do(context.Background(), "GET", s.srv.URL+"/rest/api/3/myself", nil, nil)
			if err != nil || code != tt.wantFinal {
				t.Fatalf("got %d, %v; want the final %d returned", code, err, tt.wantFinal)
			}
			if got := h.sleep.Waits(); !waitsEqual(got, tt.wantWaits) {
				t.Errorf("waits %v, want %v", got, tt.wantWaits)
			}
			if n := int(s.hits.Load()); n != tt.wantHits {
				t.Errorf("the site saw %d requests, want %d", n, tt.wantHits)
			}
		})
	}
}

// TestBackoffGrowsWithJitter: without a Retry-After the n-th retry waits
// between half and all of BaseDelay·2ⁿ⁻¹, capped at MaxDelay.
func TestBackoffGrowsWithJitter(t *testing.T) {
	for _, tt := range []struct {
		rand float64
		want []time.Duration
	}{
		{0, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 500 * time.Millisecond}},
		{0.5, []time.Duration{150 * time.Millisecond, 300 * time.Millisecond, 600 * time.Millisecond, 750 * time.Millisecond}},
	} {
		t.Run(fmt.Sprint(tt.rand), func(t *testing.T) {
			h := newHarness(t, hostclient.Policy{MaxAttempts: 5, MaxDelay: time.Second, BreakerThreshold: -1,
				Rand: func() float64 { return tt.rand }})
			s := newSite(t, status(http.StatusBadGateway))
			if code, err := h.do(context.Background(), "GET", s.srv.URL, nil, nil); code != 502 || err != nil {
				t.Fatalf("got %d, %v", code, err)
			}
			if got := h.sleep.Waits(); !waitsEqual(got, tt.want) {
				t.Errorf("waits %v, want %v", got, tt.want)
			}
		})
	}
}

// TestOnlyIdempotentCallsRetried: a POST that failed may have had its
// effect, so it is sent once, unless it says it is safe to repeat. A
// retried PUT sends its whole body again.
func TestOnlyIdempotentCallsRetried(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		ctx      func(context.Context) context.Context
		hdr      http.Header
		wantHits int
	}{
		{"GET", "GET", nil, nil, 2},
		{"DELETE", "DELETE", nil, nil, 2},
		{"PUT with body", "PUT", nil, nil, 2},
		{"POST", "POST", nil, nil, 1},
		{"PATCH", "PATCH", nil, nil, 1},
		{"POST with Idempotency-Key", "POST", nil, http.Header{"Idempotency-Key": {"k1"}}, 2},
		{"POST marked idempotent", "POST", hostclient.MarkIdempotent, nil, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, hostclient.Policy{})
			var bodies []string
			var mu sync.Mutex
			s := newSite(t, func(n int, w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				bodies = append(bodies, string(b))
				mu.Unlock()
				if n == 1 {
					w.WriteHeader(http.StatusServiceUnavailable)
				}
			})
			ctx := context.Background()
			if tt.ctx != nil {
				ctx = tt.ctx(ctx)
			}
			var body io.Reader
			if tt.method != "GET" && tt.method != "DELETE" {
				body = bytes.NewReader([]byte(`{"value":"whole body"}`))
			}
			code, err := h.do(ctx, tt.method, s.srv.URL+"/x", body, tt.hdr)
			if err != nil {
				t.Fatal(err)
			}
			if n := int(s.hits.Load()); n != tt.wantHits {
				t.Errorf("the site saw %d requests, want %d", n, tt.wantHits)
			}
			if want := map[int]int{1: 503, 2: 200}[tt.wantHits]; code != want {
				t.Errorf("status %d, want %d", code, want)
			}
			if body != nil {
				for i, b := range bodies {
					if b != `{"value":"whole body"}` {
						t.Errorf("attempt %d carried body %q", i+1, b)
					}
				}
			}
		})
	}
}

// TestBodyThatCannotBeReplayedIsNotRetried: a streamed body cannot be
// sent twice, so even a PUT carrying one gets one attempt.
func TestBodyThatCannotBeReplayedIsNotRetried(t *testing.T) {
	h := newHarness(t, hostclient.Policy{})
	s := newSite(t, status(http.StatusServiceUnavailable))
	req, _ := http.NewRequest("PUT", s.srv.URL, io.NopCloser(strings.NewReader("stream")))
	resp, err := h.rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := s.hits.Load(); n != 1 {
		t.Errorf("the site saw %d requests, want 1", n)
	}
}

// TestStatusesNotRetried: answers that will not change by asking again.
func TestStatusesNotRetried(t *testing.T) {
	for _, code := range []int{400, 401, 403, 404, 409, 500, 501} {
		h := newHarness(t, hostclient.Policy{})
		s := newSite(t, status(code))
		if got, err := h.do(context.Background(), "GET", s.srv.URL, nil, nil); got != code || err != nil {
			t.Errorf("%d: got %d, %v", code, got, err)
		}
		if n := s.hits.Load(); n != 1 {
			t.Errorf("%d was sent %d times, want once", code, n)
		}
	}
}

// TestRateLimitedSiteIsLeftAlone: after a 429 naming a time, calls to the
// site wait for it when that fits their deadline, and otherwise fail at
// once without adding to the load.
func TestRateLimitedSiteIsLeftAlone(t *testing.T) {
	h := newHarness(t, hostclient.Policy{MaxAttempts: 1})
	s := newSite(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "30")
			w.Header().Set("RateLimit-Reason", "jira-quota-tenant-based")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	if code, _ := h.do(context.Background(), "GET", s.srv.URL, nil, nil); code != 429 {
		t.Fatalf("first call: %d, want 429", code)
	}
	until := testNow.Add(30 * time.Second)
	if st := h.res.State(s.name()); !st.LimitedUntil.Equal(until) {
		t.Errorf("State: limited until %v, want %v", st.LimitedUntil, until)
	}

	// A deadline 10 s away cannot hold a 30 s wait: refused, not sent.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := h.do(ctx, "POST", s.srv.URL, nil, nil)
	var rl *hostclient.RateLimitedError
	if !errors.As(err, &rl) || !errors.Is(err, hostclient.ErrRateLimited) || !rl.Until.Equal(until) || rl.Err != nil ||
		rl.Reason != "jira-quota-tenant-based" {
		t.Fatalf("second call: %v; want a *RateLimitedError until %v, not sent", err, until)
	}
	if n := s.hits.Load(); n != 1 {
		t.Errorf("the site saw %d requests; the rate-limited call must not be sent", n)
	}
	if len(h.sleep.Waits()) != 0 {
		t.Errorf("waited %v for a wait that could not fit", h.sleep.Waits())
	}

	// 25 s later the remaining 5 s fit: the call waits, then goes out.
	h.clock.Advance(25 * time.Second)
	if code, err := h.do(ctx, "GET", s.srv.URL, nil, nil); code != 200 || err != nil {
		t.Fatalf("third call: %d, %v", code, err)
	}
	if got := h.sleep.Waits(); !waitsEqual(got, []time.Duration{5 * time.Second}) {
		t.Errorf("waits %v, want [5s]", got)
	}
	want := []string{"rate_limited", "rate_limited", "ok"}
	calls := h.obs.Calls()
	for i, c := range calls {
		if i < len(want) && c.Outcome != want[i] {
			t.Errorf("observed call %d: %+v, want outcome %s", i, c, want[i])
		}
	}
	if len(calls) != len(want) || calls[1].Status != 0 {
		t.Errorf("observed %+v", calls)
	}
}

// TestRetryBudget: against a site that always fails, retries add at most
// RetryRatio of the calls (plus the budget's initial burst), far below the
// MaxAttempts-fold load plain retries would send.
func TestRetryBudget(t *testing.T) {
	const calls = 200
	h := newHarness(t, hostclient.Policy{MaxAttempts: 3, RetryRatio: 0.1, MinRetriesPerSecond: -1, BreakerThreshold: -1})
	s := newSite(t, status(http.StatusServiceUnavailable))
	for range calls {
		if code, err := h.do(context.Background(), "GET", s.srv.URL, nil, nil); code != 503 || err != nil {
			t.Fatalf("got %d, %v", code, err)
		}
	}
	hits := int(s.hits.Load())
	maxHits := calls + calls/10 + 10
	if hits > maxHits || hits < calls {
		t.Errorf("the site saw %d requests for %d calls; the budget allows at most %d (plain retries: %d)", hits, calls, maxHits, 3*calls)
	}
	// The floor of MinRetriesPerSecond lets a retry through now and then
	// even with the budget spent.
	h2 := newHarness(t, hostclient.Policy{MaxAttempts: 2, RetryRatio: -1, MinRetriesPerSecond: 1, BreakerThreshold: -1})
	s2 := newSite(t, status(http.StatusServiceUnavailable))
	for range 20 { // spends the initial burst
		h2.do(context.Background(), "GET", s2.srv.URL, nil, nil)
	}
	before := s2.hits.Load()
	h2.clock.Advance(10 * time.Second)
	h2.do(context.Background(), "GET", s2.srv.URL, nil, nil)
	h2.do(context.Background(), "GET", s2.srv.URL, nil, nil)
	if got := s2.hits.Load() - before; got != 3 {
		t.Errorf("after the floor refilled: %d requests for 2 calls, want 3 (one retry)", got)
	}
}

// TestBreakerOpensAndRecovers walks the breaker through its states on the
// manual clock.
func TestBreakerOpensAndRecovers(t *testing.T) {
	h := newHarness(t, hostclient.Policy{MaxAttempts: 1, BreakerThreshold: 3, BreakerCooldown: 10 * time.Second})
	var down atomic.Bool
	down.Store(true)
	s := newSite(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	get := func() (int, error) { return h.do(context.Background(), "GET", s.srv.URL, nil, nil) }

	for i := range 3 {
		if code, err := get(); code != 503 || err != nil {
			t.Fatalf("call %d: %d, %v", i+1, code, err)
		}
	}
	openUntil := testNow.Add(10 * time.Second)
	if st := h.res.State(s.name()); st.Breaker != "open" || !st.OpenUntil.Equal(openUntil) {
		t.Fatalf("after 3 failures: %+v, want open until %v", st, openUntil)
	}
	_, err := get()
	var un *hostclient.UnavailableError
	if !errors.As(err, &un) || !errors.Is(err, hostclient.ErrBreakerOpen) || !errors.Is(err, hostclient.ErrUnavailable) ||
		!un.Until.Equal(openUntil) || un.Reason != hostclient.ReasonBreakerOpen {
		t.Fatalf("call while open: %v; want ErrBreakerOpen until %v", err, openUntil)
	}
	if n := s.hits.Load(); n != 3 {
		t.Errorf("the site saw %d requests; an open breaker must not send", n)
	}

	// After the cooldown one probe goes out; it fails, the breaker opens
	// again for another cooldown.
	h.clock.Advance(10 * time.Second)
	if code, _ := get(); code != 503 {
		t.Fatalf("probe: %d, want the site's 503", code)
	}
	if st := h.res.State(s.name()); st.Breaker != "open" || !st.OpenUntil.Equal(testNow.Add(20*time.Second)) {
		t.Fatalf("after a failed probe: %+v", st)
	}
	if _, err := get(); !errors.Is(err, hostclient.ErrBreakerOpen) {
		t.Fatalf("after a failed probe: %v, want ErrBreakerOpen", err)
	}

	// The site is back: the next probe succeeds and closes the breaker.
	down.Store(false)
	h.clock.Advance(10 * time.Second)
	for i := range 3 {
		if code, err := get(); code != 200 || err != nil {
			t.Fatalf("after recovery, call %d: %d, %v", i+1, code, err)
		}
	}
	if st := h.res.State(s.name()); st.Breaker != "closed" {
		t.Errorf("after a good probe: %+v, want closed", st)
	}
	if n := s.hits.Load(); n != 3+1+3 {
		t.Errorf("the site saw %d requests, want 7", n)
	}
	var outcomes []string
	for _, c := range h.obs.Calls() {
		outcomes = append(outcomes, c.Outcome)
	}
	want := "unavailable unavailable unavailable breaker_open unavailable breaker_open ok ok ok"
	if got := strings.Join(outcomes, " "); got != want {
		t.Errorf("observed outcomes %q, want %q", got, want)
	}
}

// TestHalfOpenLetsOneProbeThrough: while the probe is out, other calls are
// refused instead of piling onto a site that may still be down.
func TestHalfOpenLetsOneProbeThrough(t *testing.T) {
	h := newHarness(t, hostclient.Policy{MaxAttempts: 1, BreakerThreshold: 1, BreakerCooldown: time.Second})
	release := make(chan struct{})
	s := newSite(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		select { // the probe hangs until the test releases it
		case <-release:
		case <-r.Context().Done():
		}
	})
	h.do(context.Background(), "GET", s.srv.URL, nil, nil)
	h.clock.Advance(time.Second)
	probeDone := make(chan error, 1)
	go func() {
		_, err := h.do(context.Background(), "GET", s.srv.URL, nil, nil)
		probeDone <- err
	}()
	waitFor(t, "the probe to reach the site", func() bool { return s.hits.Load() == 2 })
	if _, err := h.do(context.Background(), "GET", s.srv.URL, nil, nil); !errors.Is(err, hostclient.ErrBreakerOpen) {
		t.Errorf("a call during the probe: %v, want ErrBreakerOpen", err)
	}
	close(release)
	if err := <-probeDone; err != nil {
		t.Fatalf("probe: %v", err)
	}
	if st := h.res.State(s.name()); st.Breaker != "closed" {
		t.Errorf("after the probe: %+v", st)
	}
}

// TestCallerGivingUpDoesNotTripTheBreaker: a cancelled call says nothing
// about the site.
func TestCallerGivingUpDoesNotTripTheBreaker(t *testing.T) {
	h := newHarness(t, hostclient.Policy{BreakerThreshold: 1})
	arrived := make(chan struct{}, 1)
	s := newSite(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
	})
	for range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		res := make(chan error, 1)
		go func() {
			_, err := h.do(ctx, "GET", s.srv.URL, nil, nil)
			res <- err
		}()
		<-arrived
		cancel()
		if err := <-res; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled call: %v", err)
		}
	}
	if st := h.res.State(s.name()); st.Breaker != "closed" {
		t.Errorf("after cancelled calls: %+v, want closed", st)
	}
	if n := s.hits.Load(); n != 3 {
		t.Errorf("%d requests, want 3 (a cancelled call is not retried)", n)
	}
}

// TestBreakerPerSite: one site's open breaker leaves another alone.
func TestBreakerPerSite(t *testing.T) {
	h := newHarness(t, hostclient.Policy{MaxAttempts: 1, BreakerThreshold: 2})
	broken := newSite(t, status(http.StatusServiceUnavailable))
	healthy := newSite(t, status(http.StatusOK))
	for range 3 {
		h.do(context.Background(), "GET", broken.srv.URL, nil, nil)
	}
	if _, err := h.do(context.Background(), "GET", broken.srv.URL, nil, nil); !errors.Is(err, hostclient.ErrBreakerOpen) {
		t.Fatalf("broken site: %v, want ErrBreakerOpen", err)
	}
	for range 5 {
		if code, err := h.do(context.Background(), "GET", healthy.srv.URL, nil, nil); code != 200 || err != nil {
			t.Fatalf("healthy site: %d, %v", code, err)
		}
	}
	// Two tenants on one host are two sites when their Target says so.
	ctxA := hostclient.WithTarget(context.Background(), hostclient.Target{Site: "cloud-a", Product: "forge"})
	ctxB := hostclient.WithTarget(context.Background(), hostclient.Target{Site: "cloud-b", Product: "forge"})
	for range 3 {
		h.do(ctxA, "GET", broken.srv.URL, nil, nil) // still open under its host name, but cloud-a is new
	}
	if st := h.res.State("cloud-a"); st.Breaker != "open" {
		t.Errorf("cloud-a: %+v, want open", st)
	}
	if st := h.res.State("cloud-b"); st.Breaker != "closed" {
		t.Errorf("cloud-b: %+v, want closed", st)
	}
	if code, err := h.do(ctxB, "GET", healthy.srv.URL, nil, nil); code != 200 || err != nil {
		t.Errorf("cloud-b: %d, %v", code, err)
	}
}

// TestConcurrencyLimitPerSite: no more than MaxConcurrent calls are in
// flight to a site, and waiting for a slot ends with the caller's
// deadline, as an *UnavailableError of reason busy.
func TestConcurrencyLimitPerSite(t *testing.T) {
	const limit, calls = 2, 6
	h := newHarness(t, hostclient.Policy{MaxConcurrent: limit})
	release := make(chan struct{})
	var inFlight, maxInFlight atomic.Int32
	s := newSite(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		<-release
		inFlight.Add(-1)
	})
	var wg sync.WaitGroup
	for range calls {
		wg.Go(func() {
			if code, err := h.do(context.Background(), "GET", s.srv.URL, nil, nil); code != 200 || err != nil {
				t.Errorf("got %d, %v", code, err)
			}
		})
	}
	waitFor(t, "the first calls to arrive", func() bool { return inFlight.Load() == limit })

	// A call that cannot get a slot before its deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := h.do(ctx, "GET", s.srv.URL, nil, nil)
	var un *hostclient.UnavailableError
	if !errors.As(err, &un) || un.Reason != hostclient.ReasonBusy || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a call past its deadline waiting for a slot: %v, want reason busy", err)
	}
	// Another site is not held up by this one's full slots.
	other := newSite(t, status(http.StatusOK))
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if code, err := h.do(ctx2, "GET", other.srv.URL, nil, nil); code != 200 || err != nil {
		t.Errorf("another site: %d, %v", code, err)
	}

	close(release)
	wg.Wait()
	if m := maxInFlight.Load(); m != limit {
		t.Errorf("at most %d calls were in flight, want %d", m, limit)
	}
	if n := s.hits.Load(); n != calls {
		t.Errorf("the site saw %d requests, want %d", n, calls)
	}
}

// TestDeadlinesHold: a call never outlives its deadline — the caller's,
// or Policy.Timeout when the caller has none — and a retry that could not
// finish before it is not started.
func TestDeadlinesHold(t *testing.T) {
	hung := newSite(t, func(_ int, w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })

	t.Run("caller's deadline", func(t *testing.T) {
		h := newHarness(t, hostclient.Policy{})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := h.do(ctx, "GET", hung.srv.URL, nil, nil)
		var un *hostclient.UnavailableError
		if !errors.As(err, &un) || un.Reason != hostclient.ReasonTimeout || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v, want a timeout", err)
		}
		if c := h.obs.Calls(); len(c) != 1 || c[0].Outcome != "timeout" {
			t.Errorf("observed %+v, want one timeout", c)
		}
	})
	t.Run("policy timeout", func(t *testing.T) {
		h := newHarness(t, hostclient.Policy{Timeout: 50 * time.Millisecond})
		_, err := h.do(context.Background(), "GET", hung.srv.URL, nil, nil)
		if !errors.Is(err, hostclient.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v, want a timeout", err)
		}
	})
	t.Run("retry that does not fit", func(t *testing.T) {
		h := newHarness(t, hostclient.Policy{})
		s := newSite(t, status(http.StatusServiceUnavailable, "Retry-After", "2"))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if code, err := h.do(ctx, "GET", s.srv.URL, nil, nil); code != 503 || err != nil {
			t.Errorf("got %d, %v; want the 503 at once", code, err)
		}
		if w := h.sleep.Waits(); len(w) != 0 || s.hits.Load() != 1 {
			t.Errorf("waited %v and sent %d requests; a 2 s wait does not fit a 1 s deadline", w, s.hits.Load())
		}
	})
	t.Run("body read after the call", func(t *testing.T) {
		// The deadline the transport adds lives until the body is closed,
		// not only until the headers arrive.
		h := newHarness(t, hostclient.Policy{Timeout: 10 * time.Second})
		s := newSite(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
			w.(http.Flusher).Flush()
			io.WriteString(w, strings.Repeat("x", 1<<16))
		})
		req, _ := http.NewRequest("GET", s.srv.URL, nil)
		resp, err := h.rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if b, err := io.ReadAll(resp.Body); err != nil || len(b) != 1<<16 {
			t.Errorf("read %d bytes, %v", len(b), err)
		}
	})
}

// TestRequestBodyClosed: the transport owns the request body, also when
// it refuses to send it.
func TestRequestBodyClosed(t *testing.T) {
	h := newHarness(t, hostclient.Policy{MaxAttempts: 1, BreakerThreshold: 1})
	s := newSite(t, status(http.StatusServiceUnavailable))
	h.do(context.Background(), "GET", s.srv.URL, nil, nil) // opens the breaker
	body := &closeTracker{Reader: strings.NewReader("x")}
	req, _ := http.NewRequest("POST", s.srv.URL, body)
	if _, err := h.rt.RoundTrip(req); !errors.Is(err, hostclient.ErrBreakerOpen) {
		t.Fatalf("got %v", err)
	}
	if !body.closed.Load() {
		t.Error("the body of a refused request was not closed")
	}
}

type closeTracker struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeTracker) Close() error { c.closed.Store(true); return nil }

// TestObserverSeesEveryAttempt: one report per attempt with the product,
// method, status, attempt number and outcome; no tenant.
func TestObserverSeesEveryAttempt(t *testing.T) {
	h := newHarness(t, hostclient.Policy{})
	s := newSite(t, sequence(503, 429))
	ctx := hostclient.WithTarget(context.Background(), hostclient.Target{Site: "acme", Product: "jira"})
	if code, err := h.do(ctx, "GET", s.srv.URL, nil, nil); code != 200 || err != nil {
		t.Fatalf("got %d, %v", code, err)
	}
	got := h.obs.Calls()
	want := []tenon.OutboundCall{
		{Product: "jira", Method: "GET", Status: 503, Attempt: 1, Outcome: "unavailable"},
		{Product: "jira", Method: "GET", Status: 429, Attempt: 2, Outcome: "rate_limited"},
		{Product: "jira", Method: "GET", Status: 200, Attempt: 3, Outcome: "ok"},
	}
	if len(got) != len(want) {
		t.Fatalf("observed %+v", got)
	}
	for i := range want {
		got[i].Duration = 0 // the manual clock does not move during an attempt
		if got[i] != want[i] {
			t.Errorf("call %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// TestSitesAreForgotten: the per-site state stays bounded; idle healthy
// sites are dropped, an open breaker is kept.
func TestSitesAreForgotten(t *testing.T) {
	h := newHarness(t, hostclient.Policy{MaxSites: 8, MaxAttempts: 1, BreakerThreshold: 1})
	broken := newSite(t, status(http.StatusServiceUnavailable))
	ctx := func(site string) context.Context {
		return hostclient.WithTarget(context.Background(), hostclient.Target{Site: site})
	}
	h.do(ctx("broken"), "GET", broken.srv.URL, nil, nil)
	h.clock.Advance(time.Second) // still within the default cooldown
	ok := newSite(t, status(http.StatusOK))
	for i := range 40 {
		h.do(ctx(fmt.Sprint("site-", i)), "GET", ok.srv.URL, nil, nil)
		h.clock.Advance(time.Hour / 40)
	}
	if st := h.res.State("broken"); st.Breaker == "closed" {
		t.Errorf("the open breaker was forgotten: %+v", st)
	}
	if n := h.res.Sites(); n > 2*8 {
		t.Errorf("%d sites kept for a limit of 8", n)
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
