package hostclient_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/fakeatlassian"
	"github.com/tenon-dev/tenon/hostclient"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/sqlite"
)

// These tests run the client against the fake Atlassian: real HTTP, real
// signatures checked by an independent implementation, and the fake's
// knobs for rate limits, outages and slowness. Knobs act on every site of
// one fake, so per-site behaviour uses two fakes.

type myself struct {
	AccountID string `json:"accountId"`
}

// resilientClient is a client on the real clock for signing, whose
// Resilience runs on clock and waits through sl.
func resilientClient(p hostclient.Policy, clock *testClock, sl *sleeper, opts hostclient.Options) *hostclient.Client {
	if p.Now == nil && clock != nil {
		p.Now = clock.Now
	}
	if p.Sleep == nil && sl != nil {
		p.Sleep = sl.Sleep
	}
	if p.Rand == nil {
		p.Rand = func() float64 { return 0 }
	}
	opts.Policy = p
	return hostclient.New(appKey, opts)
}

// TestFakeRateLimitHonoursRetryAfter: the fake answers 429 with
// Retry-After twice; the GET waits exactly that long each time and then
// succeeds.
func TestFakeRateLimitHonoursRetryAfter(t *testing.T) {
	fs := newFakeSite(t, "acme", fakeatlassian.ProductJira, nil, "READ")
	clock := &testClock{t: testNow}
	sl := &sleeper{clock: clock}
	c := resilientClient(hostclient.Policy{}, clock, sl, hostclient.Options{})

	fs.fake.RateLimitNext(2, 3*time.Second)
	var me myself
	if err := c.AsApp(fs.in).GetJSON(context.Background(), "/rest/api/3/myself", &me); err != nil {
		t.Fatalf("GetJSON: %v", err)
	}
	if got := sl.Waits(); !waitsEqual(got, []time.Duration{3 * time.Second, 3 * time.Second}) {
		t.Errorf("waits %v, want [3s 3s]", got)
	}
	if n := len(fs.calls(fakeatlassian.KindREST)); n != 3 {
		t.Errorf("the fake saw %d REST calls, want 3", n)
	}

	// Not retried (a POST), the 429 reaches the caller typed, with the
	// time to come back.
	fs.fake.RateLimitNext(1, 40*time.Second)
	err := c.AsApp(fs.in).SendJSON(context.Background(), http.MethodPost, "/rest/api/3/issue",
		map[string]any{"fields": map[string]any{"summary": "x"}}, nil)
	var rl *hostclient.RateLimitedError
	if !errors.As(err, &rl) || tenon.ErrorCode(err) != tenon.EUNAVAILABLE || !rl.Until.Equal(testNow.Add(46*time.Second)) {
		t.Fatalf("POST: %v; want a *RateLimitedError until %v", err, testNow.Add(46*time.Second))
	}
	if rl.Reason == "" {
		t.Error("the RateLimit-Reason of the fake was not kept")
	}
}

// TestFakeOutageOpensBreakerAndRecovers: during an outage the breaker
// opens and calls stop reaching the site; once the site is back and the
// cooldown has passed, one probe closes the breaker again.
func TestFakeOutageOpensBreakerAndRecovers(t *testing.T) {
	fs := newFakeSite(t, "acme", fakeatlassian.ProductJira, nil, "READ")
	clock := &testClock{t: testNow}
	sl := &sleeper{clock: clock}
	c := resilientClient(hostclient.Policy{BreakerThreshold: 3, BreakerCooldown: 30 * time.Second}, clock, sl, hostclient.Options{})
	tenant := c.AsApp(fs.in)
	ctx := context.Background()

	fs.fake.SetOutage(true)
	// One GET, three attempts (503 with Retry-After 1), three failures.
	err := tenant.GetJSON(ctx, "/rest/api/3/myself", nil)
	var ae *hostclient.APIError
	if !errors.As(err, &ae) || ae.Status != 503 || !errors.Is(err, hostclient.ErrUnavailable) {
		t.Fatalf("during the outage: %v; want the 503", err)
	}
	if got := sl.Waits(); !waitsEqual(got, []time.Duration{time.Second, time.Second}) {
		t.Errorf("waits %v, want the fake's Retry-After of 1s twice", got)
	}
	sent := len(fs.calls(fakeatlassian.KindREST))
	for range 5 {
		err := tenant.GetJSON(ctx, "/rest/api/3/myself", nil)
		var un *hostclient.UnavailableError
		if !errors.Is(err, hostclient.ErrBreakerOpen) || !errors.As(err, &un) || un.Until.IsZero() ||
			tenon.ErrorCode(err) != tenon.EUNAVAILABLE {
			t.Fatalf("breaker open: %v", err)
		}
	}
	if n := len(fs.calls(fakeatlassian.KindREST)); n != sent {
		t.Errorf("the fake saw %d more calls while the breaker was open", n-sent)
	}

	fs.fake.SetOutage(false)
	clock.Advance(30 * time.Second)
	var me myself
	if err := tenant.GetJSON(ctx, "/rest/api/3/myself", &me); err != nil || me.AccountID == "" {
		t.Fatalf("after recovery: %v", err)
	}
	if st := c.Resilience().State(fs.in.BaseURL); st.Breaker != "closed" {
		t.Errorf("after recovery: %+v", st)
	}
}

// TestFakeSlowSiteDeadlineHolds: a site that does not answer cannot hold
// a call past its caller's deadline.
func TestFakeSlowSiteDeadlineHolds(t *testing.T) {
	fs := newFakeSite(t, "acme", fakeatlassian.ProductJira, nil, "READ")
	fs.fake.SetLatency(time.Minute)
	c := hostclient.New(appKey, hostclient.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := c.AsApp(fs.in).GetJSON(ctx, "/rest/api/3/myself", nil)
	var un *hostclient.UnavailableError
	if !errors.As(err, &un) || un.Reason != hostclient.ReasonTimeout || !errors.Is(err, context.DeadlineExceeded) ||
		tenon.ErrorCode(err) != tenon.EUNAVAILABLE {
		t.Fatalf("slow site: %v; want a timeout", err)
	}
}

// TestFakeOtherTenantsStayFast: one site hangs; its calls fill its own
// slots, time out and open its breaker, while calls to another site keep
// succeeding within short deadlines.
func TestFakeOtherTenantsStayFast(t *testing.T) {
	slow := newFakeSite(t, "slow", fakeatlassian.ProductJira, nil, "READ")
	fine := newFakeSite(t, "fine", fakeatlassian.ProductConfluence, nil, "READ")
	slow.fake.SetLatency(time.Minute)
	c := hostclient.New(appKey, hostclient.Options{Policy: hostclient.Policy{MaxConcurrent: 4, BreakerThreshold: 3, BreakerCooldown: time.Minute}})
	slowTenant, fineTenant := c.AsApp(slow.in), c.AsApp(fine.in)

	// Fill the slow site's slots with calls that hang.
	hangCtx, stopHanging := context.WithCancel(context.Background())
	var hanging sync.WaitGroup
	for range 4 {
		hanging.Go(func() { slowTenant.GetJSON(hangCtx, "/rest/api/3/myself", nil) })
	}
	defer func() { stopHanging(); hanging.Wait() }()
	waitFor(t, "the slow site's slots to fill", func() bool { return c.Resilience().State(slow.in.BaseURL).InFlight == 4 })

	// The other site answers every call within a deadline of 2 s.
	var wg sync.WaitGroup
	var fineOK atomic.Int32
	for range 20 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := fineTenant.GetJSON(ctx, "/rest/api/user/current", nil); err != nil {
				t.Errorf("the healthy site: %v", err)
				return
			}
			fineOK.Add(1)
		})
	}
	wg.Wait()
	if n := fineOK.Load(); n != 20 {
		t.Fatalf("%d of 20 calls to the healthy site succeeded", n)
	}

	// Calls to the slow site cannot get a slot in time; once the hanging
	// calls time out, the breaker opens and later calls fail at once.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var un *hostclient.UnavailableError
	if err := slowTenant.GetJSON(ctx, "/rest/api/3/myself", nil); !errors.As(err, &un) || un.Reason != hostclient.ReasonBusy {
		t.Errorf("a call to the full site: %v, want reason busy", err)
	}
	stopHanging()
	hanging.Wait()
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		slowTenant.GetJSON(ctx, "/rest/api/3/myself", nil)
		cancel()
	}
	if st := c.Resilience().State(slow.in.BaseURL); st.Breaker != "open" {
		t.Fatalf("after timeouts: %+v, want open", st)
	}
	if err := slowTenant.GetJSON(context.Background(), "/rest/api/3/myself", nil); !errors.Is(err, hostclient.ErrBreakerOpen) {
		t.Errorf("with the breaker open: %v", err)
	}
	if st := c.Resilience().State(fine.in.BaseURL); st.Breaker != "closed" {
		t.Errorf("the healthy site: %+v", st)
	}
}

// slowTokens delays requests to the token endpoint, so that concurrent
// callers certainly overlap with the one fetch.
type slowTokens struct {
	next  http.RoundTripper
	delay time.Duration
}

func (s slowTokens) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/oauth2/token") {
		select {
		case <-time.After(s.delay):
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	return s.next.RoundTrip(r)
}

func openTokenStore(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	kr, err := keyring.New([]byte(strings.Repeat("k", keyring.KeySize)))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(path, sqlite.Options{SecretBox: kr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestFakeUserTokenFetchedOnce: N concurrent calls as one user cause one
// token request; the token is in the store, so another client on the same
// store (another node, or this one after a restart) asks for none.
func TestFakeUserTokenFetchedOnce(t *testing.T) {
	fs := newFakeSite(t, "acme", fakeatlassian.ProductJira, nil, "READ", "WRITE", "ACT_AS_USER")
	store := openTokenStore(t, filepath.Join(t.TempDir(), "tenon.db"))
	opts := hostclient.Options{
		Tokens:        store,
		AuthServerURL: fs.fake.AuthServerURL(),
		HTTPClient:    &http.Client{Transport: slowTokens{next: http.DefaultTransport, delay: 50 * time.Millisecond}},
	}
	c := hostclient.New(appKey, opts)
	user := fs.site.DefaultAccountID

	const n = 20
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			var me myself
			if err := c.AsUser(fs.in, user, "READ").GetJSON(context.Background(), "/rest/api/3/myself", &me); err != nil {
				t.Errorf("GetJSON as the user: %v", err)
				return
			}
			if me.AccountID != user {
				t.Errorf("acted as %q, want %q", me.AccountID, user)
			}
		})
	}
	close(start)
	wg.Wait()
	if got := len(fs.calls(fakeatlassian.KindOAuth)); got != 1 {
		t.Fatalf("%d token requests for %d concurrent calls as one user, want 1", got, n)
	}
	rest := fs.calls(fakeatlassian.KindREST)
	if len(rest) != n {
		t.Fatalf("%d REST calls, want %d", len(rest), n)
	}
	for _, call := range rest {
		if call.Auth != "bearer" || call.AccountID != user || call.Status != 200 {
			t.Errorf("REST call %+v: want a bearer call as %s", call, user)
		}
	}

	// A second node on the same store, or this node after a restart.
	other := hostclient.New(appKey, opts)
	if err := other.AsUser(fs.in, user, "read").GetJSON(context.Background(), "/rest/api/3/myself", nil); err != nil {
		t.Fatal(err)
	}
	if got := len(fs.calls(fakeatlassian.KindOAuth)); got != 1 {
		t.Errorf("the other client made %d token requests; the stored token should serve it", got-1)
	}

	// Another scope set, or the app itself, is another matter.
	if err := c.AsUser(fs.in, user, "READ", "WRITE").GetJSON(context.Background(), "/rest/api/3/myself", nil); err != nil {
		t.Fatal(err)
	}
	if got := len(fs.calls(fakeatlassian.KindOAuth)); got != 2 {
		t.Errorf("%d token requests after a call with other scopes, want 2", got)
	}
	if err := c.AsApp(fs.in).GetJSON(context.Background(), "/rest/api/3/myself", nil); err != nil {
		t.Fatal(err)
	}
	if last := fs.calls(fakeatlassian.KindREST); last[len(last)-1].Auth != "jwt" {
		t.Errorf("AsApp after AsUser: %+v, want a JWT call", last[len(last)-1])
	}
}

// TestFakeUserTokenRefreshedBeforeExpiry: a token is replaced shortly
// before it expires, never used up to the last second.
func TestFakeUserTokenRefreshedBeforeExpiry(t *testing.T) {
	clock := &testClock{t: time.Now()}
	fs := newFakeSite(t, "acme", fakeatlassian.ProductJira, clock.Now, "READ", "ACT_AS_USER")
	store := openTokenStore(t, filepath.Join(t.TempDir(), "tenon.db"))
	c := hostclient.New(appKey, hostclient.Options{Now: clock.Now, Tokens: store, AuthServerURL: fs.fake.AuthServerURL(),
		TokenRefreshBefore: time.Minute})
	tenant := c.AsUser(fs.in, fs.site.DefaultAccountID)
	get := func() {
		t.Helper()
		if err := tenant.GetJSON(context.Background(), "/rest/api/3/myself", nil); err != nil {
			t.Fatal(err)
		}
	}
	tokens := func() int { return len(fs.calls(fakeatlassian.KindOAuth)) }

	get() // the fake's tokens live 15 minutes
	clock.Advance(13 * time.Minute)
	get()
	if tokens() != 1 {
		t.Errorf("%d token requests 13 minutes in, want 1", tokens())
	}
	clock.Advance(time.Minute + time.Second) // 46 s before expiry
	get()
	if tokens() != 2 {
		t.Errorf("%d token requests 46 s before expiry, want 2 (refreshed)", tokens())
	}
}

// TestFakeRefusedTokenIsDropped: when the product stops taking a cached
// token (here: the app was uninstalled and installed again), the call
// fails as unauthorized, the token is dropped, and the next call gets a
// new one.
func TestFakeRefusedTokenIsDropped(t *testing.T) {
	fs := newFakeSite(t, "acme", fakeatlassian.ProductJira, nil, "READ", "ACT_AS_USER")
	store := openTokenStore(t, filepath.Join(t.TempDir(), "tenon.db"))
	c := hostclient.New(appKey, hostclient.Options{Tokens: store, AuthServerURL: fs.fake.AuthServerURL()})
	user := fs.site.DefaultAccountID
	ctx := context.Background()
	if err := c.AsUser(fs.in, user).GetJSON(ctx, "/rest/api/3/myself", nil); err != nil {
		t.Fatal(err)
	}
	if err := fs.fake.Uninstall(ctx, fs.site, appKey); err != nil {
		t.Fatal(err)
	}
	app, err := fs.fake.Reinstall(ctx, fs.site, appKey)
	if err != nil {
		t.Fatal(err)
	}
	if app.State != fakeatlassian.AppEnabled {
		t.Fatalf("after reinstalling: %+v", app)
	}
	in := *fs.in
	in.SharedSecret = app.SharedSecret

	err = c.AsUser(&in, user).GetJSON(ctx, "/rest/api/3/myself", nil)
	if !errors.Is(err, hostclient.ErrUnauthorized) || tenon.ErrorCode(err) != tenon.EUNAUTHORIZED {
		t.Fatalf("with the revoked token: %v, want unauthorized", err)
	}
	if err := c.AsUser(&in, user).GetJSON(ctx, "/rest/api/3/myself", nil); err != nil {
		t.Fatalf("the call after: %v", err)
	}
	if got := len(fs.calls(fakeatlassian.KindOAuth)); got != 2 {
		t.Errorf("%d token requests, want 2", got)
	}
}

// TestFakeUserRefused: the authorization server's refusals reach the
// handler as unauthorized, with the reason for the logs.
func TestFakeUserRefused(t *testing.T) {
	noScope := newFakeSite(t, "plain", fakeatlassian.ProductJira, nil, "READ")
	withScope := newFakeSite(t, "acme", fakeatlassian.ProductJira, nil, "READ", "ACT_AS_USER")
	tests := []struct {
		name     string
		fs       *fakeSite
		user     string
		scopes   []string
		wantCode string // of the *TokenError
	}{
		{"app without ACT_AS_USER", noScope, noScope.site.DefaultAccountID, nil, "unauthorized_client"},
		{"unknown user", withScope, "557058:00000000-0000-0000-0000-000000000000", nil, "invalid_grant"},
		{"scope the app lacks", withScope, withScope.site.DefaultAccountID, []string{"ADMIN"}, "invalid_scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := hostclient.New(appKey, hostclient.Options{AuthServerURL: tt.fs.fake.AuthServerURL()})
			err := c.AsUser(tt.fs.in, tt.user, tt.scopes...).GetJSON(context.Background(), "/rest/api/3/myself", nil)
			var te *hostclient.TokenError
			if !errors.As(err, &te) || te.Code != tt.wantCode || !errors.Is(err, hostclient.ErrUnauthorized) ||
				tenon.ErrorCode(err) != tenon.EUNAUTHORIZED {
				t.Fatalf("got %v; want a *TokenError %s, unauthorized", err, tt.wantCode)
			}
			if strings.Contains(err.Error(), "eyJ") {
				t.Errorf("the error shows a token or assertion: %v", err)
			}
		})
	}
}

// TestAsUserRefusesWithoutSending: what cannot work is refused before a
// request exists.
func TestAsUserRefusesWithoutSending(t *testing.T) {
	var hits atomic.Int32
	p := newProduct(t, "", func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })
	in := p.installation()
	in.OAuthClientID = "oauth-client"
	tests := []struct {
		name    string
		opts    hostclient.Options
		in      func() *tenon.Installation
		account string
		scopes  []string
	}{
		{"no oauthClientId", hostclient.Options{}, func() *tenon.Installation { c := *in; c.OAuthClientID = ""; return &c }, "u1", nil},
		{"empty accountId", hostclient.Options{}, func() *tenon.Installation { return in }, "", nil},
		{"accountId with a newline", hostclient.Options{}, func() *tenon.Installation { return in }, "u1\nX-Injected: 1", nil},
		{"malformed scope", hostclient.Options{}, func() *tenon.Installation { return in }, "u1", []string{"READ&admin=1"}},
		{"plain http auth server", hostclient.Options{AuthServerURL: "http://auth.example"}, func() *tenon.Installation { return in }, "u1", nil},
		{"auth server with query", hostclient.Options{AuthServerURL: "https://auth.example/?x=1"}, func() *tenon.Installation { return in }, "u1", nil},
		{"uninstalled", hostclient.Options{}, func() *tenon.Installation { c := *in; c.State = tenon.StateUninstalled; return &c }, "u1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := newClient(tt.opts).AsUser(tt.in(), tt.account, tt.scopes...).GetJSON(context.Background(), "/x", nil); err == nil {
				t.Error("the call succeeded; want it refused")
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the product saw %d requests", n)
	}
}

// TestNoGoroutineLeaks runs every path — success, retries, breaker,
// timeouts, busy sites, user tokens with callers giving up — and checks
// that the goroutines they started are gone afterwards.
func TestNoGoroutineLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		a, err := startFakeSite("leak-a", fakeatlassian.ProductJira, nil, "READ", "ACT_AS_USER")
		if err != nil {
			t.Fatal(err)
		}
		defer a.stop()
		b, err := startFakeSite("leak-b", fakeatlassian.ProductJira, nil, "READ")
		if err != nil {
			t.Fatal(err)
		}
		defer b.stop()
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		c := hostclient.New(appKey, hostclient.Options{
			HTTPClient:    &http.Client{Transport: slowTokens{next: tr, delay: 20 * time.Millisecond}},
			AuthServerURL: a.fake.AuthServerURL(),
			Policy: hostclient.Policy{MaxConcurrent: 2, BreakerThreshold: 2, BaseDelay: time.Millisecond,
				Sleep: func(ctx context.Context, d time.Duration) error { return ctx.Err() }},
		})
		ctx := context.Background()
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Go(func() { c.AsApp(a.in).GetJSON(ctx, "/rest/api/3/myself", nil) })
			wg.Go(func() {
				// Callers that give up while the token is being fetched.
				short, cancel := context.WithTimeout(ctx, time.Duration(i)*3*time.Millisecond)
				defer cancel()
				c.AsUser(a.in, a.site.DefaultAccountID).GetJSON(short, "/rest/api/3/myself", nil)
			})
		}
		wg.Wait()
		a.fake.RateLimitNext(3, time.Second)
		c.AsApp(a.in).GetJSON(ctx, "/rest/api/3/myself", nil)
		b.fake.SetOutage(true)
		for range 4 {
			c.AsApp(b.in).GetJSON(ctx, "/rest/api/3/myself", nil)
		}
		b.fake.SetOutage(false)
		b.fake.SetLatency(time.Minute)
		for range 6 {
			wg.Go(func() {
				short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
				defer cancel()
				c.AsApp(a.in).GetJSON(short, "/rest/api/3/myself", nil)
				c.AsApp(b.in).GetJSON(short, "/rest/api/3/myself", nil)
			})
		}
		wg.Wait()
	}()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
