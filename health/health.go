// Package health answers the two questions a supervisor or load balancer
// asks: is the process alive (/livez), and should it get traffic now
// (/readyz)?
//
// Liveness is answered without looking at anything: a process that can
// run the handler is alive, and restarting it because the database is
// down would only make things worse. Readiness runs the registered
// checks — store reachable and migrated, certificate loaded, not
// draining — and answers 503 while any fails.
//
// Checks are pluggable: whoever owns a piece of state registers a check
// for it on the Checker. Checks that ask something outside the process
// (Register) run with a timeout and their result is reused briefly, so
// frequent probes cannot overload a database; checks of in-process state
// (RegisterState) run on every probe, so a change shows at once.
package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/tenon-dev/tenon"
)

// Check reports whether one dependency is ready: nil means ready. It must
// return when ctx ends. The error's text is shown only on the admin
// listener and in logs, never to the public.
type Check func(ctx context.Context) error

// Options configure a Checker.
type Options struct {
	// Timeout bounds one run of a Register check. Default 2s.
	Timeout time.Duration
	// CacheFor is how long the result of a Register check is reused.
	// Default 1s; negative runs the check on every probe.
	CacheFor time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger hears when a check starts or stops failing. Default: discard.
	Logger *slog.Logger
}

// Checker holds the readiness checks. Its methods are safe for
// concurrent use, so checks may be registered while probes run.
type Checker struct {
	opts   Options
	flight singleflight.Group

	mu     sync.Mutex
	checks []*check
}

type check struct {
	name  string
	fn    Check
	state bool // RegisterState: no timeout, no cache

	// Guarded by Checker.mu.
	at      time.Time // when err was found; zero before the first run
	err     error
	failing bool // last run failed, for logging transitions
}

// New returns a Checker without checks: ready until one is registered.
func New(opts Options) *Checker {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.CacheFor == 0 {
		opts.CacheFor = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Checker{opts: opts}
}

// Register adds a readiness check of something outside the process (a
// database, a file). It runs with Options.Timeout and its result is
// reused for Options.CacheFor. A check registered under an existing name
// replaces it.
func (c *Checker) Register(name string, fn Check) {
	c.add(&check{name: name, fn: fn})
}

// RegisterState adds a readiness check of in-process state, such as
// "draining": ready returns nil when the process may
// take traffic. It runs on every probe, without timeout or cache, so it
// must be fast and must not block.
func (c *Checker) RegisterState(name string, ready func() error) {
	c.add(&check{name: name, fn: func(context.Context) error { return ready() }, state: true})
}

func (c *Checker) add(ck *check) {
	if ck.name == "" || ck.fn == nil {
		panic("health: a check needs a name and a function")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checks = slices.DeleteFunc(c.checks, func(o *check) bool { return o.name == ck.name })
	c.checks = append(c.checks, ck)
}

// Result is the outcome of one check.
type Result struct {
	Name string
	Err  error // nil when ready
}

// Report is the outcome of every check, in registration order.
type Report struct {
	Ready  bool
	Checks []Result
}

// Ready runs the checks (or reuses their recent results) concurrently and
// reports whether all pass.
func (c *Checker) Ready(ctx context.Context) Report {
	c.mu.Lock()
	checks := slices.Clone(c.checks)
	c.mu.Unlock()
	results := make([]Result, len(checks))
	var wg sync.WaitGroup
	for i, ck := range checks {
		wg.Go(func() { results[i] = Result{Name: ck.name, Err: c.run(ctx, ck)} })
	}
	wg.Wait()
	rep := Report{Ready: true, Checks: results}
	for _, r := range results {
		if r.Err != nil {
			rep.Ready = false
		}
	}
	return rep
}

func (c *Checker) run(ctx context.Context, ck *check) error {
	if ck.state {
		err := safeRun(ctx, ck.fn)
		c.record(ck, err)
		return err
	}
	if c.opts.CacheFor > 0 {
		c.mu.Lock()
		at, err := ck.at, ck.err
		c.mu.Unlock()
		if !at.IsZero() && c.opts.Now().Sub(at) < c.opts.CacheFor {
			return err
		}
	}
	// Probes arriving together share one run. The run is detached from
	// any one caller, so a probe that hangs up does not fail the others.
	v, _, _ := c.flight.Do(ck.name, func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.Timeout)
		defer cancel()
		err := safeRun(rctx, ck.fn)
		if err == nil && rctx.Err() != nil {
			err = rctx.Err()
		}
		c.record(ck, err)
		return err, nil
	})
	err, _ := v.(error)
	return err
}

// safeRun runs fn, turning a panic into a failure: a broken check must
// make the process unready, not crash the probe.
func safeRun(ctx context.Context, fn Check) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("check panicked: %v", v)
		}
	}()
	return fn(ctx)
}

func (c *Checker) record(ck *check, err error) {
	c.mu.Lock()
	ck.at, ck.err = c.opts.Now(), err
	was := ck.failing
	ck.failing = err != nil
	c.mu.Unlock()
	switch {
	case err != nil && !was:
		c.opts.Logger.Warn("readiness check failing", "check", ck.name, "err", err)
	case err == nil && was:
		c.opts.Logger.Info("readiness check passing again", "check", ck.name)
	}
}

// LiveHandler answers 200 "ok" to GET and HEAD: the process runs and
// serves HTTP.
func (c *Checker) LiveHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !probeMethod(w, r) {
			return
		}
		writeText(w, r, http.StatusOK, "ok\n")
	})
}

// ReadyHandler answers 200 when every check passes and 503 otherwise,
// listing each check as "[+] name ok" or "[-] name failed". A failure
// that is a tenon error adds its message, which is written for callers
// ("[-] store failed: The app's database cannot be reached right now;
// ..."). With verbose (for the admin listener), and only there, a failure
// shows its whole error, passwords in it masked.
func (c *Checker) ReadyHandler(verbose bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !probeMethod(w, r) {
			return
		}
		rep := c.Ready(r.Context())
		var b strings.Builder
		for _, res := range rep.Checks {
			switch {
			case res.Err == nil:
				fmt.Fprintf(&b, "[+] %s ok\n", res.Name)
			case verbose:
				fmt.Fprintf(&b, "[-] %s failed: %s\n", res.Name, oneLine(res.Err))
			case isTenonError(res.Err):
				fmt.Fprintf(&b, "[-] %s failed: %s\n", res.Name, oneLine(errors.New(tenon.ErrorMessage(res.Err))))
			default:
				fmt.Fprintf(&b, "[-] %s failed\n", res.Name)
			}
		}
		status := http.StatusOK
		if rep.Ready {
			b.WriteString("ready\n")
		} else {
			status = http.StatusServiceUnavailable
			b.WriteString("not ready\n")
		}
		writeText(w, r, status, b.String())
	})
}

// Mount registers /livez and /readyz on mux.
func (c *Checker) Mount(mux *http.ServeMux, verbose bool) {
	mux.Handle("/livez", c.LiveHandler())
	mux.Handle("/readyz", c.ReadyHandler(verbose))
}

func probeMethod(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	writeText(w, r, http.StatusMethodNotAllowed, "method not allowed\n")
	return false
}

func writeText(w http.ResponseWriter, r *http.Request, status int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(body))
	}
}

func isTenonError(err error) bool {
	var te *tenon.Error
	return errors.As(err, &te)
}

// Connection strings in an error's text may carry a password: in a
// URL's user info, or as a password= setting.
var (
	urlPassword = regexp.MustCompile(`(://[^:/@\s]*:)[^@\s]*@`)
	kvPassword  = regexp.MustCompile(`(?i)(password\s*=\s*)('[^']*'|[^\s&]+)`)
)

func oneLine(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	s = urlPassword.ReplaceAllString(s, "${1}xxxxx@")
	s = kvPassword.ReplaceAllString(s, "${1}xxxxx")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// ErrNotReady is a generic failure for state checks with nothing more to say.
var ErrNotReady = errors.New("not ready")

// StoreCheck checks the store: with tenon.Pinger, that the database
// answers and its schema is migrated; otherwise that a lookup answers.
func StoreCheck(store tenon.Store) Check {
	return func(ctx context.Context) error {
		if p, ok := store.(tenon.Pinger); ok {
			return p.Ping(ctx)
		}
		_, err := store.Installation(ctx, "tenon-readiness-probe")
		if err != nil && tenon.ErrorCode(err) != tenon.ENOTFOUND {
			return err
		}
		return nil
	}
}
