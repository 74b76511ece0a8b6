package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/tenon-dev/tenon/fakeatlassian"
)

// Models of load generation.
const (
	// ModelOpen sends at the schedule's rate whether or not earlier
	// requests have been answered, as independent users do; latency is
	// measured from when each request was due, so a stalled target
	// cannot hide its stall (no coordinated omission).
	ModelOpen = "open"
	// ModelClosed keeps Workers requests in flight, each sending the
	// next when its answer arrives: for comparison with benchmarks and
	// other tools, not for setting SLAs.
	ModelClosed = "closed"
)

// Fake is what a run needs of the fake Atlassian.
type Fake interface {
	AddSite(fakeatlassian.SiteOptions) (*fakeatlassian.Site, error)
	Install(ctx context.Context, site *fakeatlassian.Site, descriptorURL string) (fakeatlassian.App, error)
	InstallForge(site *fakeatlassian.Site, opts fakeatlassian.ForgeInstallOptions) (fakeatlassian.ForgeInstallation, error)
	CreateIssue(site *fakeatlassian.Site, in fakeatlassian.IssueInput) (fakeatlassian.Issue, error)
	SignedModuleURL(site *fakeatlassian.Site, appKey, moduleKey string, opts fakeatlassian.FrameOptions) (string, error)
	ContextToken(site *fakeatlassian.Site, appKey string, opts fakeatlassian.FrameOptions) (string, error)
	WebhookRequest(site *fakeatlassian.Site, appKey, event, issueKey string) (fakeatlassian.PreparedRequest, error)
	ForgeInvocationRequest(site *fakeatlassian.Site, inv fakeatlassian.ForgeInvocation) (fakeatlassian.PreparedRequest, error)
	ForgeEventRequest(site *fakeatlassian.Site, ev fakeatlassian.ForgeEventOptions) (fakeatlassian.PreparedRequest, error)
	ForgeTriggerRequest(site *fakeatlassian.Site, tr fakeatlassian.ForgeTriggerOptions) (fakeatlassian.PreparedRequest, error)
	SetLatency(time.Duration)
	SetFailEvery(n, status int)
	SetRateLimitEvery(n int, retryAfter time.Duration)
}

// Options configure a run.
type Options struct {
	// Target is the app's base URL; DescriptorURL defaults to
	// Target + "/atlassian-connect.json".
	Target, DescriptorURL string
	// ForgeRemote is the base URL of the Forge remote (default Target).
	ForgeRemote string
	Manifest    *Manifest
	Mix         *Mix
	Schedule    *Schedule
	Model       string
	Workers     int // closed model: requests in flight
	// MaxInFlight bounds the open model's concurrent requests (default
	// 1000); past it requests wait, and their wait counts as latency.
	MaxInFlight int
	Timeout     time.Duration // per request, default 10 s
	Window      time.Duration // default 1 s
	SLO         SLO
	// StopOnBreak ends the run once saturation has lasted three windows
	// (stress).
	StopOnBreak bool
	Fake        Fake
	Seed        int64
	Sampler     *Sampler
	// Progress is called about every Window with the last window.
	Progress func(Progress)
	// SitePrefix names the sites, default "load".
	SitePrefix string
	// InstallWorkers is how many tenants Prepare installs at a time
	// (default DefaultInstallWorkers).
	InstallWorkers int
	// SignAtSend signs every page URL when its request is sent, instead
	// of signing every URL the run can send before it starts.
	SignAtSend bool
	Log        func(format string, args ...any)
}

// Progress is what a terminal shows while the run goes on.
type Progress struct {
	Elapsed, Remaining time.Duration
	Sent, Failed       int
	Last               Window
}

type tenant struct {
	site   *fakeatlassian.Site
	issues []fakeatlassian.Issue
}

// Env is a target with its tenants installed, ready to run.
type Env struct {
	opts    Options
	desc    *Descriptor
	appKey  string
	tenants []tenant
	cum     []float64
	// InstallRate is how many tenants Prepare installed per second.
	InstallRate float64
}

// Prepare installs the mix's tenants into the fake (real signed
// installs), creates their issues and, when the mix has Forge routes,
// installs the Forge app with the target as its remote; it sets the
// product API's knobs.
func Prepare(ctx context.Context, o Options) (*Env, error) {
	if o.DescriptorURL == "" {
		o.DescriptorURL = strings.TrimRight(o.Target, "/") + "/atlassian-connect.json"
	}
	if o.ForgeRemote == "" {
		o.ForgeRemote = strings.TrimRight(o.Target, "/")
	}
	if o.SitePrefix == "" {
		o.SitePrefix = "load"
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	desc, err := FetchDescriptor(ctx, &http.Client{Timeout: 10 * time.Second}, o.DescriptorURL)
	if err != nil {
		return nil, err
	}
	if err := o.Mix.CheckAgainst(desc, o.Manifest); err != nil {
		return nil, err
	}
	e := &Env{opts: o, desc: desc, appKey: desc.Key}
	forge := false
	total := 0.0
	for _, r := range o.Mix.Routes {
		forge = forge || r.NeedsForge()
		total += r.Share
		e.cum = append(e.cum, total)
	}
	m := o.Mix
	workers := o.InstallWorkers
	if workers <= 0 {
		workers = DefaultInstallWorkers
	}
	e.tenants = make([]tenant, m.Tenants)
	start := time.Now()
	var done atomic.Int64
	err = e.eachTenant(ctx, workers, func(i int) error {
		site, err := o.Fake.AddSite(fakeatlassian.SiteOptions{Name: fmt.Sprintf("%s-%d", o.SitePrefix, i)})
		if err != nil {
			return fmt.Errorf("add site %d: %w", i, err)
		}
		if _, err := o.Fake.Install(ctx, site, o.DescriptorURL); err != nil {
			return fmt.Errorf("install the app into site %s: %w", site.Name, err)
		}
		if forge {
			if _, err := o.Fake.InstallForge(site, fakeatlassian.ForgeInstallOptions{RemoteBaseURL: o.ForgeRemote, Environment: fakeatlassian.ForgeDevelopment}); err != nil {
				return fmt.Errorf("install the Forge app into site %s: %w", site.Name, err)
			}
		}
		t := tenant{site: site}
		for j := range m.IssuesPerTenant {
			is, err := o.Fake.CreateIssue(site, fakeatlassian.IssueInput{ProjectKey: "DEMO", Summary: fmt.Sprintf("Load issue %d", j+1)})
			if err != nil {
				return fmt.Errorf("create an issue on site %s: %w", site.Name, err)
			}
			t.issues = append(t.issues, is)
		}
		e.tenants[i] = t
		if n := done.Add(1); n%1000 == 0 {
			o.Log("installed %d of %d tenants (%.0f/s)", n, m.Tenants, float64(n)/time.Since(start).Seconds())
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("installing tenants: %w", err)
	}
	took := time.Since(start)
	e.InstallRate = float64(m.Tenants) / took.Seconds()
	o.Log("installed %d tenants in %v (%.0f installs/s, %d at a time)", m.Tenants, took.Round(time.Millisecond), e.InstallRate, workers)
	if len(m.Setup) > 0 {
		start := time.Now()
		if err := e.eachTenant(ctx, workers, func(i int) error { return e.setup(ctx, i) }); err != nil {
			return nil, err
		}
		o.Log("sent %d setup requests to each tenant in %v", len(m.Setup), time.Since(start).Round(time.Millisecond))
	}
	if err := e.preflight(ctx); err != nil {
		return nil, err
	}
	p := m.Product
	o.Fake.SetLatency(time.Duration(p.LatencyMs) * time.Millisecond)
	o.Fake.SetFailEvery(p.FailEvery, p.FailStatus)
	o.Fake.SetRateLimitEvery(p.RateLimitEvery, time.Duration(p.RetryAfterSeconds)*time.Second)
	return e, nil
}

// DefaultInstallWorkers is how many tenants Prepare installs at a time.
const DefaultInstallWorkers = 8

// eachTenant calls f for every tenant index with workers at a time and
// returns the first error; after one, no further tenant is started.
func (e *Env) eachTenant(ctx context.Context, workers int, f func(i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, e.opts.Mix.Tenants) {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := range e.opts.Mix.Tenants {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return context.Cause(ctx)
}

// setup sends the mix's setup routes to tenant i; each must answer 2xx.
func (e *Env) setup(ctx context.Context, i int) error {
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t := e.tenants[i]
	for _, r := range e.opts.Mix.Setup {
		var tgt vegeta.Target
		if err := e.build(r, t, t.issues[0], &tgt); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
		req, err := tgt.Request()
		if err != nil {
			return fmt.Errorf("setup %s: %w", r.Label(), err)
		}
		res, err := client.Do(req.WithContext(ctx))
		if err != nil {
			return fmt.Errorf("setup %s of site %s: %w", r.Label(), t.site.Name, err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
		res.Body.Close()
		if res.StatusCode/100 != 2 {
			return fmt.Errorf("setup %s of site %s answered %d, not 2xx", r.Label(), t.site.Name, res.StatusCode)
		}
	}
	return nil
}

// preflight sends each route once to the first tenant, before the
// product's failure knobs are set, and waits up to 15 s for every one to
// answer 2xx: a route that cannot succeed would only measure its error
// path, and a target that has just started may still be fetching keys.
func (e *Env) preflight(ctx context.Context) error {
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	deadline := time.Now().Add(15 * time.Second)
	t := e.tenants[0]
	for _, r := range e.opts.Mix.Routes {
		for attempt := 0; ; attempt++ {
			var tgt vegeta.Target
			if err := e.build(r, t, t.issues[0], &tgt); err != nil {
				return err
			}
			req, err := tgt.Request()
			if err != nil {
				return fmt.Errorf("route %s: %w", r.Label(), err)
			}
			res, err := client.Do(req.WithContext(ctx))
			status := 0
			if err == nil {
				status = res.StatusCode
				res.Body.Close()
				if status/100 == 2 {
					break
				}
			}
			if ctx.Err() != nil {
				return fmt.Errorf("checking the routes: %w", ctx.Err())
			}
			if time.Now().After(deadline) {
				if err != nil {
					return fmt.Errorf("route %s does not answer: %w", r.Label(), err)
				}
				return fmt.Errorf("route %s answers %d, not 2xx: check the mix and the target's configuration (does it trust the fake's keys? see 'tenon loadtest env')", r.Label(), status)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

// Descriptor is the target's descriptor as read by Prepare.
func (e *Env) Descriptor() *Descriptor { return e.desc }

// build fills tgt with request r for tenant t, issue is.
func (e *Env) build(r Route, t tenant, is fakeatlassian.Issue, tgt *vegeta.Target) error {
	site := t.site
	frame := fakeatlassian.FrameOptions{IssueKey: is.Key}
	path := strings.NewReplacer("{issue.key}", is.Key, "{issue.id}", is.ID, "{project.key}", is.ProjectKey).Replace(r.Path)
	var prep fakeatlassian.PreparedRequest
	var err error
	switch r.Kind {
	case KindPage:
		var u string
		u, err = e.opts.Fake.SignedModuleURL(site, e.appKey, r.Module, frame)
		prep = fakeatlassian.PreparedRequest{Method: http.MethodGet, URL: u, Header: http.Header{}}
	case KindAPI:
		var tok string
		tok, err = e.opts.Fake.ContextToken(site, e.appKey, frame)
		prep = fakeatlassian.PreparedRequest{Method: r.Method, URL: strings.TrimRight(e.opts.Target, "/") + path,
			Header: http.Header{"Authorization": {"JWT " + tok}, "Accept": {"application/json"}}, Body: r.Body}
		if r.Body != nil {
			prep.Header.Set("Content-Type", "application/json")
		}
	case KindWebhook:
		prep, err = e.opts.Fake.WebhookRequest(site, e.appKey, r.Event, is.Key)
	case KindForgeInvoke:
		prep, err = e.opts.Fake.ForgeInvocationRequest(site, fakeatlassian.ForgeInvocation{Method: r.Method, Path: path, Body: r.Body, IssueKey: is.Key})
	case KindForgeEvent:
		prep, err = e.opts.Fake.ForgeEventRequest(site, fakeatlassian.ForgeEventOptions{Path: path, EventType: r.Event,
			Payload: map[string]any{"issue": map[string]any{"id": is.ID, "key": is.Key}}})
	case KindForgeTrigger:
		prep, err = e.opts.Fake.ForgeTriggerRequest(site, fakeatlassian.ForgeTriggerOptions{Path: path})
	}
	if err != nil {
		return fmt.Errorf("build a %s request: %w", r.Label(), err)
	}
	tgt.Method, tgt.URL, tgt.Header, tgt.Body = prep.Method, prep.URL, prep.Header, prep.Body
	return nil
}

// pending pairs answers with the routes of their requests: vegeta's
// results carry the method and URL, not the route.
type pending struct {
	mu sync.Mutex
	m  map[string][]string
}

func (p *pending) put(key, route string) {
	p.mu.Lock()
	p.m[key] = append(p.m[key], route)
	p.mu.Unlock()
}

func (p *pending) take(key string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.m[key]
	if len(q) == 0 {
		return "unknown"
	}
	r := q[0]
	if len(q) == 1 {
		delete(p.m, key)
	} else {
		p.m[key] = q[1:]
	}
	return r
}

// Run drives the load and returns the report; a cancelled ctx ends the
// run early and the report has what was measured until then.
func (e *Env) Run(ctx context.Context) (*Report, error) {
	o := e.opts
	window := o.Window
	if window <= 0 {
		window = time.Second
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	rep := &Report{Version: ReportVersion, Started: time.Now().UTC(), Target: o.Target, Profile: o.Schedule.Profile,
		Model: o.Model, Schedule: o.Schedule, Mix: o.Mix, Machine: ThisMachine(), InstallsPerSecond: e.InstallRate}
	rep.Title = fmt.Sprintf("%s test of %s", o.Schedule.Profile, e.appKey)
	picker := NewPicker(o.Mix, rand.NewSource(o.Seed))
	rec := NewRecorder(window)
	pools, err := e.pagePools(o.Schedule.Duration() + timeout + PresignMargin)
	if err != nil {
		return nil, err
	}
	for _, p := range pools {
		rep.Presigned = rep.Presigned || p != nil
	}
	// With one route every answer is of that route; with several, the
	// URL of each answer finds its route.
	onlyRoute := ""
	if len(o.Mix.Routes) == 1 {
		onlyRoute = o.Mix.Routes[0].Label()
	}
	pend := &pending{m: map[string][]string{}}
	var buildErr error
	var buildOnce sync.Once
	issues := o.Mix.IssuesPerTenant
	targeter := func(tgt *vegeta.Target) error {
		ti, ii, u := picker.Pick()
		ri := routeIndex(e.cum, u)
		r := o.Mix.Routes[ri]
		if pools[ri] != nil {
			tgt.Method, tgt.URL, tgt.Header, tgt.Body = http.MethodGet, pools[ri][ti*issues+ii], nil, nil
		} else {
			t := e.tenants[ti]
			if err := e.build(r, t, t.issues[ii%len(t.issues)], tgt); err != nil {
				buildOnce.Do(func() { buildErr = err })
				return err
			}
		}
		if onlyRoute == "" {
			pend.put(tgt.Method+" "+tgt.URL, r.Label())
		}
		return nil
	}
	maxInFlight := o.MaxInFlight
	if maxInFlight <= 0 {
		maxInFlight = 1000
	}
	opts := []func(*vegeta.Attacker){vegeta.Timeout(timeout), vegeta.MaxBody(0), vegeta.Redirects(vegeta.NoFollow), vegeta.KeepAlive(true)}
	var pacer vegeta.Pacer = o.Schedule
	switch o.Model {
	case ModelClosed:
		if o.Workers < 1 {
			return nil, fmt.Errorf("the closed model needs at least one worker")
		}
		opts = append(opts, vegeta.Workers(uint64(o.Workers)), vegeta.MaxWorkers(uint64(o.Workers)), vegeta.Connections(o.Workers))
		pacer = closedPacer{o.Schedule}
		rep.Workers = o.Workers
	case ModelOpen:
		opts = append(opts, vegeta.Workers(uint64(min(64, maxInFlight))), vegeta.MaxWorkers(uint64(maxInFlight)), vegeta.Connections(maxInFlight))
	default:
		return nil, fmt.Errorf("unknown model %q: open or closed", o.Model)
	}
	atk := vegeta.NewAttacker(opts...)
	sampleCtx, stopSampling := context.WithCancel(context.Background())
	var sampled sync.WaitGroup
	began := time.Now()
	since := func() time.Duration { return time.Since(began) }
	if o.Sampler != nil {
		sampled.Go(func() { o.Sampler.Run(sampleCtx, since) })
	}
	results := atk.Attack(vegeta.Targeter(targeter), pacer, o.Schedule.Duration(), "tenon-loadtest")
	var stopped string
	var stopMu sync.Mutex
	stop := func(why string) {
		stopMu.Lock()
		if stopped == "" {
			stopped = why
		}
		stopMu.Unlock()
		atk.Stop()
	}
	watchDone := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(watchDone)
		e.watch(ctx, rec, window, since, stop, finished)
	}()
	for res := range results {
		due := res.Timestamp.Sub(began)
		if o.Model == ModelOpen {
			if when, ok := o.Schedule.When(res.Seq); ok && when < due {
				due = when
			}
		}
		end := res.Timestamp.Add(res.Latency).Sub(began)
		var err error
		if res.Error != "" && res.Code == 0 {
			err = errors.New(res.Error)
		}
		if res.Method == "" && res.Error != "" {
			continue // the targeter failed: nothing was sent
		}
		route := onlyRoute
		if route == "" {
			route = pend.take(res.Method + " " + res.URL)
		}
		rec.Record(Result{Route: route, Due: due, Latency: end - due, Service: res.Latency,
			Class: Classify(int(res.Code), err)})
	}
	elapsed := since()
	close(finished)
	<-watchDone
	stopSampling()
	sampled.Wait()
	if buildErr != nil {
		stop("a request could not be built: " + buildErr.Error())
	}
	if o.Sampler != nil {
		var problems []string
		rep.Samples, problems = o.Sampler.Samples()
		for _, p := range problems {
			rep.Analysis.Notes = append(rep.Analysis.Notes, "sampling: "+p)
		}
	}
	if ctx.Err() != nil {
		stop("interrupted")
	}
	if o.Schedule.Max > 0 {
		if total, _ := rec.Count(); uint64(total) >= o.Schedule.Max && elapsed < o.Schedule.Duration()-window {
			stop(fmt.Sprintf("the bound of %d requests was reached", o.Schedule.Max))
		}
	}
	notes := rep.Analysis.Notes
	rep.Stopped = stopped
	rep.Finish(rec, o.SLO, elapsed)
	rep.Analysis.Notes = append(notes, rep.Analysis.Notes...)
	if len(rep.SLO) == 0 {
		rep.Passed = rep.Total.Count > 0 && stopped != "interrupted" && buildErr == nil
	}
	if buildErr != nil {
		return rep, buildErr
	}
	return rep, nil
}

// Bounds of the page URLs signed before a run.
const (
	// PresignMargin is added to the length of a run (and one request's
	// timeout) for the life of the tokens signed before it.
	PresignMargin = 2 * time.Minute
	// MaxPresignLifetime is the longest token life a run signs ahead;
	// a longer run signs each page URL when it sends it.
	MaxPresignLifetime = 6 * time.Hour
	// MaxPresigned bounds the URLs signed ahead (tenants × issues per
	// page route); past it, URLs are signed when sent.
	MaxPresigned = 200_000
)

// pagePools signs, before the run, every URL the run's page routes can
// send, valid for lifetime: the product signs an iframe URL when it
// renders the page, not when the browser loads it, so signing belongs
// outside the measured request, and a generator that signed while
// sending would measure its own signing. Each route's pool holds one URL
// per tenant and issue, at tenant*IssuesPerTenant+issue; routes that
// are not pages (and every route with SignAtSend, or past the bounds)
// get nil and are built when sent.
func (e *Env) pagePools(lifetime time.Duration) ([][]string, error) {
	o := e.opts
	pools := make([][]string, len(o.Mix.Routes))
	pages := 0
	for _, r := range o.Mix.Routes {
		if r.Kind == KindPage {
			pages++
		}
	}
	if pages == 0 {
		return pools, nil
	}
	size := pages * o.Mix.Tenants * o.Mix.IssuesPerTenant
	switch {
	case o.SignAtSend:
		o.Log("page URLs are signed when sent")
		return pools, nil
	case lifetime > MaxPresignLifetime || size > MaxPresigned:
		o.Log("page URLs are signed when sent: the run is longer than %v or needs more than %d URLs", MaxPresignLifetime-PresignMargin, MaxPresigned)
		return pools, nil
	}
	start := time.Now()
	for ri, r := range o.Mix.Routes {
		if r.Kind != KindPage {
			continue
		}
		urls, err := e.signPages(r, lifetime)
		if err != nil {
			return nil, err
		}
		pools[ri] = urls
	}
	o.Log("signed %d page URLs before the run in %v, valid for %v", size, time.Since(start).Round(time.Millisecond), lifetime)
	return pools, nil
}

// signPages signs page route r for every tenant and issue, valid for
// lifetime.
func (e *Env) signPages(r Route, lifetime time.Duration) ([]string, error) {
	urls := make([]string, 0, len(e.tenants)*e.opts.Mix.IssuesPerTenant)
	for _, t := range e.tenants {
		for _, is := range t.issues {
			u, err := e.opts.Fake.SignedModuleURL(t.site, e.appKey, r.Module, fakeatlassian.FrameOptions{IssueKey: is.Key, TokenLifetime: lifetime})
			if err != nil {
				return nil, fmt.Errorf("sign a %s URL: %w", r.Label(), err)
			}
			urls = append(urls, u)
		}
	}
	return urls, nil
}

// PageURLs signs every URL of the mix's page routes, valid for
// lifetime, for another load generator to send: one per tenant and
// issue, route by route.
func (e *Env) PageURLs(lifetime time.Duration) ([]string, error) {
	var all []string
	for _, r := range e.opts.Mix.Routes {
		if r.Kind != KindPage {
			continue
		}
		urls, err := e.signPages(r, lifetime)
		if err != nil {
			return nil, err
		}
		all = append(all, urls...)
	}
	if len(all) == 0 {
		return nil, errors.New("the mix has no page route")
	}
	return all, nil
}

// watch reports progress, stops the attack on ctx's end and, for a
// stress run, once saturation has lasted three windows.
func (e *Env) watch(ctx context.Context, rec *Recorder, window time.Duration, since func() time.Duration, stop func(string), finished <-chan struct{}) {
	o := e.opts
	tick := time.NewTicker(window)
	defer tick.Stop()
	var ref float64
	var seen []float64
	broken := 0
	total := o.Schedule.Duration()
	for {
		select {
		case <-ctx.Done():
			stop("interrupted")
			return
		case <-finished:
			return
		case <-tick.C:
		}
		el := since()
		if el > total+window {
			return
		}
		w, ok := rec.Recent(el)
		if !ok {
			continue
		}
		start := time.Duration(w.Start * float64(time.Second))
		end := start + window
		if o.Model == ModelOpen {
			w.Offered = (o.Schedule.Due(end) - o.Schedule.Due(start)) / window.Seconds()
		}
		if len(seen) < 4 {
			seen = append(seen, w.P99)
			if len(seen) >= 2 {
				ref = seen[1]
			}
		}
		if o.StopOnBreak && len(seen) >= 2 {
			if behind(w, o.SLO, ref, o.Model == ModelOpen) != "" {
				broken++
			} else {
				broken = 0
			}
			if broken >= 3 {
				stop("saturated: the target fell behind for three windows")
			}
		}
		if o.Progress != nil {
			sent, failed := rec.Count()
			o.Progress(Progress{Elapsed: el, Remaining: max(total-el, 0), Sent: sent, Failed: failed, Last: w})
		}
	}
}

// closedPacer sends as fast as the workers allow, within the schedule's
// time and request bounds.
type closedPacer struct{ s *Schedule }

func (c closedPacer) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	if (c.s.Max > 0 && hits >= c.s.Max) || elapsed >= c.s.Duration() {
		return 0, true
	}
	return 0, false
}

func (c closedPacer) Rate(time.Duration) float64 { return 0 }

// ThisMachine describes the machine a run is made on.
func ThisMachine() Machine {
	m := Machine{OS: runtime.GOOS + "/" + runtime.GOARCH, CPUs: runtime.NumCPU(), Go: runtime.Version()}
	m.Host, _ = os.Hostname()
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.Atoi(f[1])
				m.MemoryMB = kb / 1024
			}
		}
	}
	if raw, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(raw)); len(f) > 0 {
			m.Load1, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	return m
}
