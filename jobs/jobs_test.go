package jobs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/jobs"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/sqlite"
	"github.com/tenon-dev/tenon/storetest"
)

// waitLimit bounds every wait for something the runner does in the
// background; it is a safety net, not a measured duration.
const waitLimit = 15 * time.Second

type harness struct {
	t      *testing.T
	store  *sqlite.Store
	clock  *storetest.Clock
	runner *jobs.Runner
	obs    *observer
	logs   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// observer keeps the latest statistics of each queue.
type observer struct {
	mu    sync.Mutex
	stats map[string]tenon.QueueStats
}

func (o *observer) ObserveOutbound(tenon.OutboundCall) {}

func (o *observer) ObserveQueue(st tenon.QueueStats) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stats == nil {
		o.stats = map[string]tenon.QueueStats{}
	}
	o.stats[st.Queue] = st
}

func (o *observer) get(queue string) (tenon.QueueStats, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	st, ok := o.stats[queue]
	return st, ok
}

func openStore(t *testing.T, clock func() time.Time) *sqlite.Store {
	t.Helper()
	kr, err := keyring.New(bytes.Repeat([]byte{7}, keyring.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(filepath.Join(t.TempDir(), "tenon.db"), sqlite.Options{SecretBox: kr, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newHarness builds a runner on a fresh SQLite store with a manual clock
// shared by both. Polling is effectively off, so only Notify and
// Enqueue make the runner look: the tests decide when it works.
func newHarness(t *testing.T, opts jobs.Options) *harness {
	t.Helper()
	h := &harness{t: t, clock: storetest.NewClock(storetest.Start), obs: &observer{}, logs: &syncBuffer{}}
	h.store = openStore(t, h.clock.Now)
	if opts.PollInterval == 0 {
		opts.PollInterval = time.Hour
	}
	if opts.StatsInterval == 0 {
		opts.StatsInterval = 5 * time.Millisecond
	}
	if opts.Rand == nil {
		opts.Rand = func() float64 { return 0 }
	}
	opts.Now = h.clock.Now
	opts.Observer = h.obs
	opts.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.runner = jobs.New(h.store, opts)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("runner logs:\n%s", h.logs.String())
		}
	})
	return h
}

// start runs the runner until the returned stop is called (or the test
// ends); stop waits for Run to return.
func (h *harness) start() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.runner.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					h.t.Errorf("Run: %v", err)
				}
			case <-time.After(waitLimit):
				h.t.Errorf("Run did not return after its context ended")
			}
		})
	}
	h.t.Cleanup(stop)
	return stop
}

func (h *harness) enqueue(queue string, payload string) int64 {
	h.t.Helper()
	id, created, err := h.runner.Enqueue(context.Background(), queue, tenon.NewJob{Payload: json.RawMessage(payload)})
	if err != nil || !created {
		h.t.Fatalf("Enqueue: %d, %v, %v", id, created, err)
	}
	return id
}

func (h *harness) job(id int64) tenon.Job {
	h.t.Helper()
	list, err := h.store.Jobs(context.Background(), tenon.JobFilter{AfterID: id - 1, Limit: 1})
	if err != nil {
		h.t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != id {
		h.t.Fatalf("job %d is gone", id)
	}
	return list[0]
}

// waitJob waits until job id satisfies cond.
func (h *harness) waitJob(id int64, what string, cond func(tenon.Job) bool) tenon.Job {
	h.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		j := h.job(id)
		if cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("job %d never became %s; last: %+v", id, what, j)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestEnqueuedJobRuns(t *testing.T) {
	h := newHarness(t, jobs.Options{})
	got := make(chan tenon.Job, 1)
	h.runner.Handle("greet", func(ctx context.Context, j tenon.Job) error {
		got <- j
		return nil
	})
	h.start()
	id := h.enqueue("greet", `{"name":"Ada"}`)
	select {
	case j := <-got:
		if j.ID != id || string(j.Payload) != `{"name":"Ada"}` || j.Attempts != 1 || j.Queue != "greet" {
			t.Errorf("handler got %+v", j)
		}
	case <-time.After(waitLimit):
		t.Fatal("the enqueued job did not run")
	}
	h.waitJob(id, "done", func(j tenon.Job) bool { return j.State == tenon.JobDone })
}

func TestRetryWithBackoff(t *testing.T) {
	h := newHarness(t, jobs.Options{MinBackoff: 2 * time.Second, MaxBackoff: time.Minute})
	var calls atomic.Int32
	h.runner.Handle("flaky", func(ctx context.Context, j tenon.Job) error {
		if n := calls.Add(1); n < 3 {
			return fmt.Errorf("product answered 503 (call %d)", n)
		}
		return nil
	})
	h.start()
	id := h.enqueue("flaky", `{}`)

	// Rand is 0, so each delay is the lower half of its window: 1s, 2s.
	steps := []struct {
		attempt int
		delay   time.Duration
	}{{1, time.Second}, {2, 2 * time.Second}}
	for _, s := range steps {
		j := h.waitJob(id, fmt.Sprintf("pending after attempt %d", s.attempt), func(j tenon.Job) bool {
			return j.State == tenon.JobPending && j.Attempts == s.attempt
		})
		if want := h.clock.Now().Add(s.delay); !j.RunAt.Equal(want) {
			t.Errorf("after attempt %d: due at %v, want %v (backoff %v)", s.attempt, j.RunAt, want, s.delay)
		}
		if !strings.Contains(j.LastError, fmt.Sprintf("call %d", s.attempt)) {
			t.Errorf("after attempt %d: LastError %q", s.attempt, j.LastError)
		}
		h.clock.Advance(s.delay)
		h.runner.Notify()
	}
	j := h.waitJob(id, "done", func(j tenon.Job) bool { return j.State == tenon.JobDone })
	if j.Attempts != 3 || calls.Load() != 3 {
		t.Errorf("done after %d attempts and %d calls, want 3 and 3", j.Attempts, calls.Load())
	}
}

func TestDeadLetterAfterMaxAttempts(t *testing.T) {
	h := newHarness(t, jobs.Options{MinBackoff: time.Second})
	h.runner.Handle("doomed", func(ctx context.Context, j tenon.Job) error {
		return errors.New("the product refuses this")
	}, jobs.MaxAttempts(2))
	h.start()
	id := h.enqueue("doomed", `{}`)
	h.waitJob(id, "retried", func(j tenon.Job) bool { return j.State == tenon.JobPending && j.Attempts == 1 })
	h.clock.Advance(time.Minute)
	h.runner.Notify()
	j := h.waitJob(id, "dead", func(j tenon.Job) bool { return j.State == tenon.JobDead })
	if j.Attempts != 2 || !strings.Contains(j.LastError, "attempt 2 of 2 failed: the product refuses this") {
		t.Errorf("dead job: attempts %d, LastError %q", j.Attempts, j.LastError)
	}
	if len(j.Payload) == 0 {
		t.Error("a dead job lost its payload; it could not be requeued")
	}
	waitUntil(t, "the observer to count the dead job", func() bool {
		st, ok := h.obs.get("doomed")
		return ok && st.Dead == 1 && st.Pending == 0
	})
}

func TestPermanentFailureIsBuriedAtOnce(t *testing.T) {
	h := newHarness(t, jobs.Options{})
	h.runner.Handle("strict", func(ctx context.Context, j tenon.Job) error {
		return fmt.Errorf("decode: %w", jobs.Permanent(errors.New("the payload names no issue")))
	})
	h.start()
	id := h.enqueue("strict", `{}`)
	j := h.waitJob(id, "dead", func(j tenon.Job) bool { return j.State == tenon.JobDead })
	if j.Attempts != 1 || !strings.Contains(j.LastError, "permanent failure") || !strings.Contains(j.LastError, "names no issue") {
		t.Errorf("attempts %d, LastError %q", j.Attempts, j.LastError)
	}
}

func TestPanicCountsAsFailure(t *testing.T) {
	h := newHarness(t, jobs.Options{})
	h.runner.Handle("buggy", func(ctx context.Context, j tenon.Job) error {
		panic("nil map")
	}, jobs.MaxAttempts(1))
	ok := make(chan struct{}, 1)
	h.runner.Handle("fine", func(ctx context.Context, j tenon.Job) error {
		ok <- struct{}{}
		return nil
	})
	h.start()
	id := h.enqueue("buggy", `{}`)
	j := h.waitJob(id, "dead", func(j tenon.Job) bool { return j.State == tenon.JobDead })
	if !strings.Contains(j.LastError, "handler panicked: nil map") {
		t.Errorf("LastError %q", j.LastError)
	}
	// The runner survived the panic.
	h.enqueue("fine", `{}`)
	select {
	case <-ok:
	case <-time.After(waitLimit):
		t.Fatal("the runner stopped working after a handler panicked")
	}
}

func TestConcurrencyIsBounded(t *testing.T) {
	h := newHarness(t, jobs.Options{Workers: 3})
	var mu sync.Mutex
	running := map[string]int{}
	peak := map[string]int{}
	release := make(chan struct{})
	var done atomic.Int32
	handler := func(queue string) jobs.Handler {
		return func(ctx context.Context, j tenon.Job) error {
			mu.Lock()
			running[queue]++
			running["all"]++
			peak[queue] = max(peak[queue], running[queue])
			peak["all"] = max(peak["all"], running["all"])
			mu.Unlock()
			<-release
			mu.Lock()
			running[queue]--
			running["all"]--
			mu.Unlock()
			done.Add(1)
			return nil
		}
	}
	h.runner.Handle("narrow", handler("narrow"), jobs.Concurrency(1))
	h.runner.Handle("wide", handler("wide"))
	for range 4 {
		h.enqueue("narrow", `{}`)
		h.enqueue("wide", `{}`)
	}
	h.start()
	waitUntil(t, "three jobs running", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return running["all"] == 3
	})
	close(release)
	waitUntil(t, "all jobs done", func() bool { return done.Load() == 8 })
	mu.Lock()
	defer mu.Unlock()
	if peak["all"] != 3 || peak["narrow"] != 1 {
		t.Errorf("peak concurrency: %d in all (want 3), %d in the narrow queue (want 1)", peak["all"], peak["narrow"])
	}
}

func TestStopLetsRunningJobsFinish(t *testing.T) {
	h := newHarness(t, jobs.Options{})
	started := make(chan struct{})
	release := make(chan struct{})
	var ctxErr atomic.Value
	h.runner.Handle("slow", func(ctx context.Context, j tenon.Job) error {
		close(started)
		<-release
		ctxErr.Store(fmt.Sprint(ctx.Err()))
		return nil
	})
	stop := h.start()
	id := h.enqueue("slow", `{}`)
	<-started
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Run returned while a job was still running within its grace")
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	<-stopped
	if got := ctxErr.Load(); got != "<nil>" {
		t.Errorf("the handler's context was %v during the grace period, want alive", got)
	}
	if j := h.job(id); j.State != tenon.JobDone {
		t.Errorf("state %q after a graceful stop, want done", j.State)
	}
}

func TestStopCancelsAfterGrace(t *testing.T) {
	h := newHarness(t, jobs.Options{StopGrace: time.Millisecond})
	started := make(chan struct{})
	h.runner.Handle("stuck", func(ctx context.Context, j tenon.Job) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	})
	stop := h.start()
	id := h.enqueue("stuck", `{}`)
	<-started
	stop()
	j := h.job(id)
	if j.State != tenon.JobPending || !strings.HasPrefix(j.LastError, "interrupted by shutdown") || !j.RunAt.Equal(h.clock.Now()) {
		t.Errorf("after a stop that cut the handler short: %+v; want pending, due now, marked interrupted", j)
	}
}

// TestJobThatKillsItsWorkerIsBuried: a job whose earlier attempts all
// ended with their lease (the worker crashed each time) is buried, not
// run again, once it has used its attempts.
func TestJobThatKillsItsWorkerIsBuried(t *testing.T) {
	h := newHarness(t, jobs.Options{})
	var calls atomic.Int32
	h.runner.Handle("poison", func(ctx context.Context, j tenon.Job) error {
		calls.Add(1)
		return nil
	}, jobs.MaxAttempts(2))
	id, _, err := h.store.Enqueue(context.Background(), "poison", tenon.NewJob{Payload: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // two workers claimed it and died
		if got, err := h.store.Claim(context.Background(), "poison", 1, time.Minute); err != nil || len(got) != 1 {
			t.Fatalf("claim: %v, %v", got, err)
		}
		h.clock.Advance(2 * time.Minute)
	}
	h.start()
	h.runner.Notify()
	j := h.waitJob(id, "dead", func(j tenon.Job) bool { return j.State == tenon.JobDead })
	if calls.Load() != 0 || !strings.Contains(j.LastError, "none finished") {
		t.Errorf("handler ran %d times; LastError %q", calls.Load(), j.LastError)
	}
}

func TestNoWorkersOnlyEnqueues(t *testing.T) {
	h := newHarness(t, jobs.Options{Workers: -1})
	var calls atomic.Int32
	h.runner.Handle("q", func(ctx context.Context, j tenon.Job) error {
		calls.Add(1)
		return nil
	})
	h.start()
	id := h.enqueue("q", `{}`)
	h.clock.Advance(3 * time.Second)
	waitUntil(t, "a statistics report of the waiting job", func() bool {
		st, ok := h.obs.get("q")
		return ok && st.Pending == 1 && st.OldestAge == 3*time.Second
	})
	if calls.Load() != 0 || h.job(id).State != tenon.JobPending {
		t.Errorf("a runner without workers ran the job (%d calls, state %q)", calls.Load(), h.job(id).State)
	}
}

func TestPurgesOldJobs(t *testing.T) {
	h := newHarness(t, jobs.Options{Retention: time.Hour})
	h.runner.Handle("q", func(ctx context.Context, j tenon.Job) error { return nil })
	ctx := context.Background()
	old, _, err := h.store.Enqueue(ctx, "q", tenon.NewJob{Payload: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.Claim(ctx, "q", 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := h.store.Complete(ctx, old); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(2 * time.Hour)
	recent := h.enqueue("q", `{}`)
	h.start()
	h.waitJob(recent, "done", func(j tenon.Job) bool { return j.State == tenon.JobDone })
	waitUntil(t, "the old job to be purged", func() bool {
		list, err := h.store.Jobs(ctx, tenon.JobFilter{})
		return err == nil && len(list) == 1 && list[0].ID == recent
	})
}

// follower is a jobs.Singleton whose node leads only once lead is
// closed.
type follower struct{ lead chan struct{} }

func (f follower) Run(ctx context.Context, work func(ctx context.Context)) {
	select {
	case <-ctx.Done():
		return
	case <-f.lead:
	}
	work(ctx)
}

// TestPurgesOnlyOnTheLeader keeps old jobs while the node does not lead,
// and purges them once it does.
func TestPurgesOnlyOnTheLeader(t *testing.T) {
	f := follower{lead: make(chan struct{})}
	h := newHarness(t, jobs.Options{Retention: time.Hour, Singleton: f})
	h.runner.Handle("q", func(ctx context.Context, j tenon.Job) error { return nil })
	ctx := context.Background()
	old, _, err := h.store.Enqueue(ctx, "q", tenon.NewJob{Payload: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.Claim(ctx, "q", 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := h.store.Complete(ctx, old); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(2 * time.Hour)
	recent := h.enqueue("q", `{}`)
	h.start()
	h.waitJob(recent, "done", func(j tenon.Job) bool { return j.State == tenon.JobDone })
	// Purging would have been the runner's first act.
	if list, err := h.store.Jobs(ctx, tenon.JobFilter{}); err != nil || len(list) != 2 {
		t.Fatalf("a node that does not lead purged: %d jobs left (%v), want 2", len(list), err)
	}
	close(f.lead)
	waitUntil(t, "the old job to be purged by the leader", func() bool {
		list, err := h.store.Jobs(ctx, tenon.JobFilter{})
		return err == nil && len(list) == 1 && list[0].ID == recent
	})
}

// TestTwoRunnersShareAQueue runs two runners, as two nodes would, on one
// store: every job runs exactly once.
func TestTwoRunnersShareAQueue(t *testing.T) {
	h := newHarness(t, jobs.Options{Workers: 3})
	other := jobs.New(h.store, jobs.Options{Workers: 3, PollInterval: time.Millisecond, Now: h.clock.Now, Logger: slog.New(slog.NewTextHandler(h.logs, nil))})
	var mu sync.Mutex
	seen := map[int64]int{}
	handler := func(ctx context.Context, j tenon.Job) error {
		mu.Lock()
		seen[j.ID]++
		mu.Unlock()
		return nil
	}
	h.runner.Handle("shared", handler)
	other.Handle("shared", handler)
	const n = 60
	for range n {
		h.enqueue("shared", `{}`)
	}
	h.start()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- other.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitUntil(t, "every job done", func() bool {
		st, err := h.store.Stats(context.Background(), "shared")
		return err == nil && st.Pending == 0 && st.Running == 0
	})
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != n {
		t.Errorf("%d jobs ran, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("job %d ran %d times", id, c)
		}
	}
}

func TestRegistrationMistakesPanic(t *testing.T) {
	h := newHarness(t, jobs.Options{})
	nop := func(context.Context, tenon.Job) error { return nil }
	h.runner.Handle("q", nop)
	mustPanic := func(what string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", what)
			}
		}()
		f()
	}
	mustPanic("a second handler for one queue", func() { h.runner.Handle("q", nop) })
	mustPanic("an empty queue name", func() { h.runner.Handle("", nop) })
	mustPanic("a nil handler", func() { h.runner.Handle("r", nil) })
	h.start()
	waitUntil(t, "the runner to report", func() bool { _, ok := h.obs.get("q"); return ok })
	mustPanic("Handle after Run", func() { h.runner.Handle("late", nop) })
	if err := h.runner.Run(context.Background()); err == nil {
		t.Error("a second Run succeeded")
	}
	if got := h.runner.Queues(); len(got) != 1 || got[0] != "q" {
		t.Errorf("Queues() = %v", got)
	}
}

func TestBackoff(t *testing.T) {
	const lo, hi = 2 * time.Second, time.Minute
	tests := []struct {
		attempt int
		rnd     float64
		want    time.Duration
	}{
		{1, 0, time.Second},
		{1, 0.5, 1500 * time.Millisecond},
		{2, 0, 2 * time.Second},
		{3, 0, 4 * time.Second},
		{5, 0.999999999, 32 * time.Second},
		{6, 0, 30 * time.Second}, // capped at a minute, half of it
		{60, 0, 30 * time.Second},
		{0, 0, time.Second},
	}
	for _, tt := range tests {
		got := jobs.Backoff(tt.attempt, lo, hi, tt.rnd)
		if got.Round(time.Millisecond) != tt.want {
			t.Errorf("Backoff(%d, rnd %v) = %v, want %v", tt.attempt, tt.rnd, got, tt.want)
		}
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("bad")
	wrapped := fmt.Errorf("context: %w", jobs.Permanent(base))
	if !jobs.IsPermanent(wrapped) || !errors.Is(wrapped, base) {
		t.Errorf("a wrapped Permanent error lost its mark or its cause: %v", wrapped)
	}
	if jobs.IsPermanent(base) || jobs.Permanent(nil) != nil {
		t.Error("Permanent marks what it should not")
	}
}
