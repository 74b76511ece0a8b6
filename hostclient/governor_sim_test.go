package hostclient_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/fakeatlassian"
	"github.com/tenon-dev/tenon/hostclient"
)

// simHour is the start of the simulated hour: the top of an hour, so the
// fake's quota window is the whole simulation.
var simHour = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// simClock is the one clock of a simulation, shared by the fake and the
// clients; the simulation sets it event by event.
type simClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *simClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// sent is one request that reached the product.
type sent struct {
	at     time.Time
	status int
	reason string
}

// simRecorder is the base transport of a simulated client: it records every
// request that left the client.
type simRecorder struct {
	clock *simClock
	next  http.RoundTripper
	mu    sync.Mutex
	log   []sent
}

func (r *simRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err == nil {
		r.mu.Lock()
		r.log = append(r.log, sent{at: r.clock.Now(), status: resp.StatusCode, reason: resp.Header.Get("RateLimit-Reason")})
		r.mu.Unlock()
	}
	return resp, err
}

func (r *simRecorder) sent() []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sent(nil), r.log...)
}

// simFake is a fake Atlassian on clock with the app installed on n Jira
// sites.
func simFake(t *testing.T, clock *simClock, n int) (*fakeatlassian.Fake, []*tenon.Installation) {
	t.Helper()
	clock.Set(simHour.Add(-time.Minute)) // installs happen before the hour
	f := fakeatlassian.New(fakeatlassian.Options{Now: clock.Now, WebhookRetryDelays: []time.Duration{},
		Logger: slog.New(slog.DiscardHandler), MaxCalls: 10})
	if err := f.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	app := newDescriptorServer([]string{"READ"})
	t.Cleanup(func() { app.Close(); f.Close() })
	ctx := context.Background()
	var ins []*tenon.Installation
	for i := range n {
		site, err := f.AddSite(fakeatlassian.SiteOptions{Name: "tenant" + string(rune('a'+i/26)) + string(rune('a'+i%26)), Product: "jira"})
		if err != nil {
			t.Fatal(err)
		}
		a, err := f.Install(ctx, site, app.URL+"/atlassian-connect.json")
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, &tenon.Installation{ClientKey: a.ClientKey, AppKey: a.Key, SharedSecret: a.SharedSecret,
			BaseURL: site.BaseURL, ProductType: "jira", State: tenon.StateEnabled})
	}
	return f, ins
}

// simClient is a hostclient.Client on clock whose requests rec records.
func simClient(clock *simClock, rec *simRecorder, budget hostclient.BudgetPolicy) *hostclient.Client {
	rec.clock, rec.next = clock, &http.Transport{}
	return hostclient.New(appKey, hostclient.Options{
		Now:        clock.Now,
		HTTPClient: &http.Client{Transport: rec},
		Policy: hostclient.Policy{
			MaxAttempts: 1,
			Budget:      budget,
			Sleep: func(context.Context, time.Duration) error {
				return errors.New("the simulation does not sleep")
			},
			Rand: func() float64 { return 0 },
		},
	})
}

// simResult is what a simulated hour gave.
type simResult struct {
	othersOK, othersAll int
	burstOK, burstAll   int
	sent                []sent
}

func (r simResult) othersRatio() float64 { return float64(r.othersOK) / float64(r.othersAll) }

// simulate runs the hour: tenants 1..n-1 call every 120 s (each at its own
// offset), tenant 0 bursts at 20 times their rate (every 6 s). Call i goes
// through clients[i % len(clients)], as a load balancer would spread it.
func simulate(t *testing.T, clock *simClock, ins []*tenon.Installation, clients []*hostclient.Client) simResult {
	t.Helper()
	type event struct {
		at     time.Duration
		tenant int
	}
	var events []event
	for at := time.Duration(0); at < time.Hour; at += 6 * time.Second {
		events = append(events, event{at, 0})
	}
	for i := 1; i < len(ins); i++ {
		offset := time.Duration(i) * 120 * time.Second / time.Duration(len(ins))
		for at := offset; at < time.Hour; at += 120 * time.Second {
			events = append(events, event{at, i})
		}
	}
	sort.SliceStable(events, func(a, b int) bool { return events[a].at < events[b].at })
	var res simResult
	ctx := context.Background()
	for n, ev := range events {
		clock.Set(simHour.Add(ev.at))
		err := clients[n%len(clients)].AsApp(ins[ev.tenant]).GetJSON(ctx, "/rest/api/3/myself", nil)
		// A call that would have to wait fails: the simulation does not sleep.
		if err != nil && tenon.ErrorCode(err) != tenon.EUNAVAILABLE {
			t.Fatalf("call at %v: %v", ev.at, err)
		}
		if ev.tenant == 0 {
			res.burstAll++
			if err == nil {
				res.burstOK++
			}
		} else {
			res.othersAll++
			if err == nil {
				res.othersOK++
			}
		}
	}
	return res
}

// simLimits: 2 700 points an hour for 100 tenants. The 99 quiet tenants
// want 2 970 calls, the busy one 600: 3 570 in all, so the pool cannot
// serve everyone, and a first-come pool runs dry at about three quarters
// of the hour.
var simLimits = fakeatlassian.RateLimits{GlobalPoints: 2700}

// TestSimulationFairShare: against the fake with 100 tenants, one bursting
// at 20 times the others, the governor keeps at least 80 % of the other
// tenants' calls succeeding over the hour, where a client without it
// serves them first come, first served until the pool runs dry and then
// not at all.
func TestSimulationFairShare(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates an hour of 3 570 calls")
	}
	run := func(budget hostclient.BudgetPolicy) simResult {
		clock := &simClock{}
		f, ins := simFake(t, clock, 100)
		f.SetRateLimits(simLimits)
		rec := &simRecorder{}
		res := simulate(t, clock, ins, []*hostclient.Client{simClient(clock, rec, budget)})
		res.sent = rec.sent()
		return res
	}

	without := run(hostclient.BudgetPolicy{Off: true})
	with := run(hostclient.BudgetPolicy{})
	t.Logf("without the governor: others %d/%d (%.1f %%), busy tenant %d/%d, requests sent %d",
		without.othersOK, without.othersAll, 100*without.othersRatio(), without.burstOK, without.burstAll, len(without.sent))
	t.Logf("with the governor:    others %d/%d (%.1f %%), busy tenant %d/%d, requests sent %d",
		with.othersOK, with.othersAll, 100*with.othersRatio(), with.burstOK, with.burstAll, len(with.sent))

	if r := with.othersRatio(); r < 0.8 {
		t.Errorf("with the governor %.1f %% of the other tenants' calls succeeded, want at least 80 %%", 100*r)
	}
	if r := without.othersRatio(); r >= 0.8 {
		t.Errorf("without the governor %.1f %% succeeded: the simulation does not stress the pool", 100*r)
	}
	if with.burstOK >= with.burstAll/2 {
		t.Errorf("the busy tenant got %d of %d calls through: it took more than a fair share", with.burstOK, with.burstAll)
	}
	checkSilentAfterGlobal429(t, with.sent, simHour.Add(time.Hour))
}

// checkSilentAfterGlobal429 fails t when a request was sent after the
// first global-quota 429 and before reset.
func checkSilentAfterGlobal429(t *testing.T, log []sent, reset time.Time) {
	t.Helper()
	var first time.Time
	for _, s := range log {
		switch {
		case first.IsZero() && s.reason == "jira-quota-global-based":
			first = s.at
		case !first.IsZero() && s.at.Before(reset):
			t.Errorf("a request was sent at %v, after the global-quota 429 at %v and before the reset at %v", s.at, first, reset)
			return
		}
	}
}

// TestGlobalQuotaPausesEveryTenant: once the pool is spent, not one more
// request goes to the product, for any tenant, until the reset; after it,
// calls flow again. The fake hides its quota headers, so the first sign
// of the limit is the 429.
func TestGlobalQuotaPausesEveryTenant(t *testing.T) {
	clock := &simClock{}
	f, ins := simFake(t, clock, 5)
	f.SetRateLimits(fakeatlassian.RateLimits{GlobalPoints: 20, HideQuotaHeaders: true})
	rec := &simRecorder{}
	c := simClient(clock, rec, hostclient.BudgetPolicy{})
	ctx := context.Background()
	var refused []*hostclient.RateLimitedError
	for n := range 200 {
		clock.Set(simHour.Add(time.Duration(n) * 10 * time.Second))
		err := c.AsApp(ins[n%len(ins)]).GetJSON(ctx, "/rest/api/3/myself", nil)
		var rl *hostclient.RateLimitedError
		if errors.As(err, &rl) {
			refused = append(refused, rl)
		}
	}
	log := rec.sent()
	if len(log) != 21 {
		t.Errorf("%d requests reached the product, want the 20 of the pool and the one 429", len(log))
	}
	checkSilentAfterGlobal429(t, log, simHour.Add(time.Hour))
	if len(refused) != 180 {
		t.Fatalf("%d calls failed as rate limited, want 180", len(refused))
	}
	for _, rl := range refused {
		if !rl.Until.Equal(simHour.Add(time.Hour)) || rl.Reason != "jira-quota-global-based" {
			t.Fatalf("refusal %v: want until the top of the hour, reason jira-quota-global-based", rl)
		}
	}
	if st := c.Resilience().Governor().Budget("jira"); !st.PausedUntil.Equal(simHour.Add(time.Hour)) {
		t.Errorf("Budget: %+v", st)
	}
	clock.Set(simHour.Add(time.Hour))
	if err := c.AsApp(ins[0]).GetJSON(ctx, "/rest/api/3/myself", nil); err != nil {
		t.Errorf("after the reset: %v", err)
	}
}
