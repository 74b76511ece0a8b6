// Package jobs runs the work queued in a tenon.JobQueue: webhooks the
// server acknowledged, Forge events, scheduled tasks — anything that must
// happen at least once, after its sender already got an answer.
//
// A Runner has one Handler per queue and a pool of workers shared by all
// of them. It claims due jobs (the store makes sure every due job goes to
// exactly one claimer across all nodes), runs the handler with a timeout,
// and then completes the job, schedules a retry with exponential backoff
// and jitter, or, after the last attempt or a Permanent error, buries it:
// a dead job stays in the store for an operator to inspect and requeue.
//
// A claim is a lease of the handler timeout plus LeaseMargin. A worker
// that dies (crash, SIGKILL, power cut) never finishes its claims; when the
// leases end the jobs are due again and another worker, or this one after
// a restart, runs them. Delivery is therefore at least once: handlers
// must be idempotent. Exactly-once holds for jobs no worker had started.
//
// The runner polls each queue every PollInterval, which is how it sees
// jobs enqueued by other nodes and retries coming due; Enqueue through the
// runner (or Notify) wakes it at once for local work. Queue depth and age
// go to a tenon.Observer every StatsInterval.
//
// Usage:
//
//	r := jobs.New(store, jobs.Options{Logger: logger})
//	r.Handle("report:daily", func(ctx context.Context, j tenon.Job) error { ... })
//	go r.Run(ctx)
//	r.Enqueue(ctx, "report:daily", tenon.NewJob{Payload: payload})
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/tenon-dev/tenon"
)

// Handler does the work of one job. Returning nil completes the job; an
// error schedules a retry, unless it is Permanent or the job has used
// its attempts, in which case the job is buried. ctx ends at the queue's
// timeout or when the runner stops; a handler should return then. A
// panic counts as an error. Handlers run concurrently.
type Handler func(ctx context.Context, job tenon.Job) error

// Defaults of Options.
const (
	DefaultWorkers       = 4
	DefaultPollInterval  = time.Second
	DefaultMaxAttempts   = 10
	DefaultTimeout       = time.Minute
	DefaultMinBackoff    = 2 * time.Second
	DefaultMaxBackoff    = 15 * time.Minute
	DefaultStatsInterval = 15 * time.Second
	DefaultRetention     = 7 * 24 * time.Hour
	DefaultStopGrace     = 10 * time.Second
	// LeaseMargin is added to a queue's timeout to make its lease, so a
	// handler that respects its context always finishes inside its lease.
	LeaseMargin = 30 * time.Second
	// purgeInterval is how often finished jobs older than Retention go.
	purgeInterval = time.Hour
	// finishTimeout bounds the store call that records an outcome.
	finishTimeout = 10 * time.Second
)

// Options configure a Runner. The zero value gives the defaults.
type Options struct {
	// Workers is how many handlers run at once, over all queues.
	// 0 means DefaultWorkers; negative means none: the runner then only
	// reports statistics and purges, and the node just enqueues (a web
	// node next to separate worker nodes).
	Workers int
	// PollInterval is how often each queue is asked for due jobs when
	// nothing woke the runner. Default DefaultPollInterval.
	PollInterval time.Duration
	// MaxAttempts is how many attempts a job gets before it is buried,
	// unless its queue sets its own. Default DefaultMaxAttempts.
	MaxAttempts int
	// Timeout bounds one attempt, unless its queue sets its own.
	// Default DefaultTimeout.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the delay before a retry; it
	// doubles with each attempt (see Backoff). Defaults DefaultMinBackoff
	// and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// StatsInterval is how often the queues' statistics go to Observer.
	// Default DefaultStatsInterval.
	StatsInterval time.Duration
	// Retention is how long done and dead jobs are kept (a done job's
	// dedupe key keeps refusing duplicates that long). Default
	// DefaultRetention; negative keeps them for good.
	Retention time.Duration
	// StopGrace is how long running handlers may finish after Run's
	// context ends before their contexts are cancelled. Default
	// DefaultStopGrace.
	StopGrace time.Duration
	// Observer receives queue statistics. Default tenon.NopObserver.
	Observer tenon.Observer
	// Logger receives failures and dead letters. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock for retry times and purge cut-offs. It should be
	// the store's clock. Default time.Now.
	Now func() time.Time
	// Rand returns a number in [0, 1) for backoff jitter. Default
	// math/rand/v2's Float64.
	Rand func() float64
	// Singleton runs the purge of old jobs on one node of the
	// deployment at a time. Default nil: this runner purges, as a
	// deployment of one node wants.
	Singleton Singleton
}

// Singleton runs work on one node of a deployment at a time: it calls
// work while this node leads, with a context that ends when it stops
// leading, and returns when ctx ends. leader.Leader is one.
type Singleton interface {
	Run(ctx context.Context, work func(ctx context.Context))
}

func (o *Options) defaults() {
	if o.Workers == 0 {
		o.Workers = DefaultWorkers
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	if o.StatsInterval <= 0 {
		o.StatsInterval = DefaultStatsInterval
	}
	if o.Retention == 0 {
		o.Retention = DefaultRetention
	}
	if o.StopGrace <= 0 {
		o.StopGrace = DefaultStopGrace
	}
	if o.Observer == nil {
		o.Observer = tenon.NopObserver{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
}

// QueueOption adjusts how one queue is run.
type QueueOption func(*queue)

// MaxAttempts sets how many attempts the queue's jobs get.
func MaxAttempts(n int) QueueOption {
	return func(q *queue) {
		if n > 0 {
			q.maxAttempts = n
		}
	}
}

// Timeout sets how long one attempt of the queue's jobs may take. The
// lease of a claim is this plus LeaseMargin.
func Timeout(d time.Duration) QueueOption {
	return func(q *queue) {
		if d > 0 {
			q.timeout = d
		}
	}
}

// Concurrency caps how many of the queue's jobs run at once on this
// node, so one busy or slow queue cannot take every worker.
func Concurrency(n int) QueueOption {
	return func(q *queue) {
		if n > 0 {
			q.concurrency = n
		}
	}
}

type queue struct {
	name        string
	handler     Handler
	maxAttempts int
	timeout     time.Duration
	concurrency int
	running     int // owned by the dispatch loop
}

func (q *queue) lease() time.Duration { return q.timeout + LeaseMargin }

// Runner runs the handlers of a JobQueue's queues. Create it with New,
// register handlers with Handle, then call Run once.
type Runner struct {
	q    tenon.JobQueue
	opts Options
	log  *slog.Logger
	wake chan struct{}

	mu      sync.Mutex
	queues  map[string]*queue
	order   []string
	started bool
}

// New returns a Runner over q.
func New(q tenon.JobQueue, opts Options) *Runner {
	opts.defaults()
	return &Runner{
		q:      q,
		opts:   opts,
		log:    opts.Logger,
		wake:   make(chan struct{}, 1),
		queues: make(map[string]*queue),
	}
}

// Handle registers h for queue. Like http.ServeMux, it panics on an empty
// queue name, a nil handler, a second handler for one queue, or a call
// after Run started: those are programming errors found at start-up.
func (r *Runner) Handle(name string, h Handler, opts ...QueueOption) {
	if name == "" || h == nil {
		panic("jobs: Handle needs a queue name and a handler")
	}
	q := &queue{name: name, handler: h, maxAttempts: r.opts.MaxAttempts, timeout: r.opts.Timeout, concurrency: r.opts.Workers}
	for _, o := range opts {
		o(q)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.started:
		panic(fmt.Sprintf("jobs: Handle(%q) after Run started", name))
	case r.queues[name] != nil:
		panic(fmt.Sprintf("jobs: a handler for queue %q is already registered", name))
	}
	r.queues[name] = q
	r.order = append(r.order, name)
}

// Queues returns the names of the queues with a handler, in registration
// order.
func (r *Runner) Queues() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.order)
}

// Enqueue stores job in queue and, when it is due now, wakes this
// runner so a free worker picks it up without waiting for the next poll.
// It returns once the job is durable; see tenon.JobQueue.Enqueue.
func (r *Runner) Enqueue(ctx context.Context, queue string, job tenon.NewJob) (id int64, created bool, err error) {
	id, created, err = r.q.Enqueue(ctx, queue, job)
	if err == nil && created && !job.RunAt.After(r.opts.Now()) {
		r.Notify()
	}
	return id, created, err
}

// Notify makes the runner look for due jobs now. It never blocks.
func (r *Runner) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run claims and runs jobs until ctx ends, reports statistics and purges
// old jobs. Then it stops claiming, gives running handlers StopGrace to
// finish, cancels the rest and returns; a handler that still does not
// return keeps its job, which comes back when the lease ends. Run may be
// called once; it returns nil when ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.started {
		r.mu.Unlock()
		return errors.New("jobs: Run called twice")
	}
	r.started = true
	queues := make([]*queue, 0, len(r.order))
	for _, name := range r.order {
		queues = append(queues, r.queues[name])
	}
	r.mu.Unlock()

	var wg sync.WaitGroup
	wg.Go(func() { r.report(ctx, queues) })
	if r.opts.Retention > 0 {
		if r.opts.Singleton != nil {
			wg.Go(func() { r.opts.Singleton.Run(ctx, r.purge) })
		} else {
			wg.Go(func() { r.purge(ctx) })
		}
	}
	if r.opts.Workers > 0 && len(queues) > 0 {
		r.dispatch(ctx, queues)
	} else {
		<-ctx.Done()
	}
	wg.Wait()
	return nil
}

// dispatch is the loop that claims jobs and hands them to workers. It
// alone touches the running counts, so they need no lock.
func (r *Runner) dispatch(ctx context.Context, queues []*queue) {
	// Handlers outlive ctx by up to StopGrace: a handler half-way through
	// a job should finish it rather than leave it to a lease.
	handlerCtx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()
	var inflight sync.WaitGroup
	finished := make(chan *queue, r.opts.Workers)
	free := r.opts.Workers
	start := 0 // rotates, so no queue always claims first
	errWait := time.Duration(0)
	timer := time.NewTimer(r.opts.PollInterval)
	timer.Stop()

	for ctx.Err() == nil {
		more, failed := false, false
		for i := range queues {
			if free == 0 {
				break
			}
			q := queues[(start+i)%len(queues)]
			n := min(free, q.concurrency-q.running)
			if n <= 0 {
				continue
			}
			jobs, err := r.q.Claim(ctx, q.name, n, q.lease())
			if err != nil {
				if ctx.Err() == nil {
					r.log.Warn("jobs: claim failed", "queue", q.name, "err", err)
				}
				failed = true
				continue
			}
			for _, j := range jobs {
				free--
				q.running++
				inflight.Add(1)
				go func() {
					defer inflight.Done()
					r.run(handlerCtx, q, j)
					finished <- q
				}()
			}
			more = more || len(jobs) == n
		}
		start++

		// Wait for a reason to claim again: a worker freed up, a local
		// enqueue, the poll interval, or — right away — a queue that
		// may have more due jobs than it was given.
		wait := r.opts.PollInterval
		switch {
		case failed:
			errWait = min(max(2*errWait, r.opts.PollInterval), 30*time.Second)
			wait = errWait
		case more && free > 0:
			wait = 0
			errWait = 0
		default:
			errWait = 0
		}
		if free == 0 {
			wait = -1 // only a finished worker helps
		}
		r.waitTurn(ctx, timer, wait, finished, &free)
	}

	// Stop: give running handlers their grace, then cancel them.
	stopped := make(chan struct{})
	go func() { inflight.Wait(); close(stopped) }()
	grace := time.NewTimer(r.opts.StopGrace)
	defer grace.Stop()
	select {
	case <-stopped:
		return
	case <-grace.C:
	}
	cancelHandlers()
	late := time.NewTimer(time.Second)
	defer late.Stop()
	select {
	case <-stopped:
	case <-late.C:
		r.log.Warn("jobs: handlers did not return after cancellation; their jobs run again when their leases end")
	}
}

// waitTurn blocks until ctx ends, a worker finishes, a wake-up, or wait
// elapses (wait 0: just collect finished workers; wait < 0: no timer).
func (r *Runner) waitTurn(ctx context.Context, timer *time.Timer, wait time.Duration, finished chan *queue, free *int) {
	release := func(q *queue) {
		q.running--
		*free++
	}
	// Collect workers that already finished, without blocking. A freed
	// slot is itself a reason to claim again at once.
	freed := false
	for {
		select {
		case q := <-finished:
			release(q)
			freed = true
			continue
		default:
		}
		break
	}
	if wait == 0 || freed {
		return
	}
	var tc <-chan time.Time
	if wait > 0 {
		timer.Reset(wait)
		defer timer.Stop()
		tc = timer.C
	}
	select {
	case <-ctx.Done():
	case q := <-finished:
		release(q)
	case <-r.wake:
	case <-tc:
	}
}

// run executes one job and records its outcome.
func (r *Runner) run(ctx context.Context, q *queue, j tenon.Job) {
	log := r.log.With("queue", q.name, "job", j.ID, "attempt", j.Attempts)
	if j.Attempts > q.maxAttempts {
		// Every earlier attempt ended with its lease: the job kills or
		// hangs its worker. Running it again would do the same.
		r.bury(ctx, log, j, fmt.Sprintf("gave up: %d attempts started and none finished within its lease", j.Attempts-1))
		return
	}
	hctx, cancel := context.WithTimeout(ctx, q.timeout)
	// Calls to products from a job yield to interactive ones when the
	// rate-limit budget runs low.
	err := call(tenon.WithBackgroundWork(hctx), q.handler, j)
	cancel()
	switch {
	case err == nil:
		if ferr := r.finish(ctx, func(c context.Context) error { return r.q.Complete(c, j.ID) }); ferr != nil {
			if code := tenon.ErrorCode(ferr); code == tenon.ECONFLICT || code == tenon.ENOTFOUND {
				// The lease ran out and another worker took the job, or an
				// operator changed it: its outcome is theirs now.
				log.Info("jobs: job done, but it was no longer this worker's", "err", ferr)
				return
			}
			log.Warn("jobs: job done but not recorded; it will run again when its lease ends", "err", ferr)
			return
		}
		log.Debug("jobs: job done")
	case IsPermanent(err):
		r.bury(ctx, log, j, "permanent failure: "+err.Error())
	case j.Attempts >= q.maxAttempts:
		r.bury(ctx, log, j, fmt.Sprintf("attempt %d of %d failed: %v", j.Attempts, q.maxAttempts, err))
	default:
		delay := Backoff(j.Attempts, r.opts.MinBackoff, r.opts.MaxBackoff, r.opts.Rand())
		msg := err.Error()
		if ctx.Err() != nil {
			// Cut short by shutdown, not by its own fault: due again at
			// once for whichever node runs next.
			delay, msg = 0, "interrupted by shutdown: "+msg
		}
		runAt := r.opts.Now().Add(delay)
		if ferr := r.finish(ctx, func(c context.Context) error { return r.q.Retry(c, j.ID, runAt, msg) }); ferr != nil {
			log.Warn("jobs: retry not recorded; the job runs again when its lease ends", "err", ferr)
			return
		}
		log.Warn("jobs: attempt failed; will retry", "err", err, "retry_in", delay.String())
	}
}

func (r *Runner) bury(ctx context.Context, log *slog.Logger, j tenon.Job, reason string) {
	if err := r.finish(ctx, func(c context.Context) error { return r.q.Bury(c, j.ID, reason) }); err != nil {
		log.Warn("jobs: dead letter not recorded; the job runs again when its lease ends", "err", err)
		return
	}
	log.Error("jobs: job is dead; inspect and requeue it with `tenon jobs`", "reason", reason)
}

// finish records an outcome with a context of its own: a handler that
// ran out of time must still get its result stored.
func (r *Runner) finish(ctx context.Context, f func(context.Context) error) error {
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	return f(c)
}

// call runs h, turning a panic into an error.
func call(ctx context.Context, h Handler, j tenon.Job) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("handler panicked: %v\n%s", v, debug.Stack())
		}
	}()
	return h(ctx, j)
}

// report sends every queue's statistics to the observer, at once and
// then every StatsInterval.
func (r *Runner) report(ctx context.Context, queues []*queue) {
	t := time.NewTicker(r.opts.StatsInterval)
	defer t.Stop()
	for {
		for _, q := range queues {
			st, err := r.q.Stats(ctx, q.name)
			if err != nil {
				if ctx.Err() == nil {
					r.log.Warn("jobs: queue statistics failed", "queue", q.name, "err", err)
				}
				continue
			}
			r.opts.Observer.ObserveQueue(st)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// purge removes done and dead jobs older than Retention, at once and
// then every purgeInterval. The deletes commute, so two nodes purging at
// once do no harm; with Options.Singleton only one does the work.
func (r *Runner) purge(ctx context.Context) {
	t := time.NewTicker(purgeInterval)
	defer t.Stop()
	for {
		n, err := r.q.PurgeJobs(ctx, r.opts.Now().Add(-r.opts.Retention))
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.Warn("jobs: purging old jobs failed", "err", err)
		case n > 0:
			r.log.Info("jobs: purged old jobs", "count", n, "older_than", r.opts.Retention.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Backoff is the delay before retrying after attempt (1 for the first):
// lo doubled for each earlier attempt, capped at hi, then with "equal
// jitter": a uniformly random point in its upper half, chosen by rnd in
// [0, 1). The floor of half keeps retries from piling up at once; the
// jitter spreads a burst of failures (a product outage) over time.
func Backoff(attempt int, lo, hi time.Duration, rnd float64) time.Duration {
	d := lo
	for i := 1; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	half := d / 2
	return half + time.Duration(rnd*float64(d-half))
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as a failure that no retry can fix (a malformed
// payload, a tenant that is gone): the job is buried at once. It returns
// nil for nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, came from
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}
