package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
)

// testJobs checks tenon.JobQueue and tenon.JobAdmin, which every store
// implements: the queue of webhooks, events and scheduled work.
func (s *suite) testJobs(t *testing.T) {
	tests := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"EnqueueClaimComplete", s.testJobLifecycle},
		{"Dedupe", s.testJobDedupe},
		{"DedupeConcurrent", s.testJobDedupeConcurrent},
		{"ClaimOrderAndLimit", s.testJobClaimOrder},
		{"LeaseExpiry", s.testJobLeaseExpiry},
		{"ClaimExclusive", s.testJobClaimExclusive},
		{"RetryAndBury", s.testJobRetryBury},
		{"FinishWrongState", s.testJobFinishWrongState},
		{"Requeue", s.testJobRequeue},
		{"Stats", s.testJobStats},
		{"Purge", s.testJobPurge},
		{"List", s.testJobList},
		{"Validation", s.testJobValidation},
		{"ErrorSanitized", s.testJobErrorSanitized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t)
		})
	}
}

// jobQueue is a store that must implement the queue.
type jobQueue interface {
	tenon.JobQueue
	tenon.JobAdmin
}

func (s *suite) queue(t *testing.T) (jobQueue, *Clock) {
	t.Helper()
	st, c := s.store(t)
	q, ok := st.(jobQueue)
	if !ok {
		t.Fatalf("storetest: %T does not implement tenon.JobQueue and tenon.JobAdmin", st)
	}
	return q, c
}

func mustEnqueue(t *testing.T, q tenon.JobQueue, queue string, job tenon.NewJob) int64 {
	t.Helper()
	if job.Payload == nil {
		job.Payload = json.RawMessage(`{}`)
	}
	id, created, err := q.Enqueue(context.Background(), queue, job)
	if err != nil {
		t.Fatalf("Enqueue(%q): %v", queue, err)
	}
	if !created {
		t.Fatalf("Enqueue(%q): created = false for a new job", queue)
	}
	if id <= 0 {
		t.Fatalf("Enqueue(%q): id %d, want > 0", queue, id)
	}
	return id
}

func mustClaim(t *testing.T, q tenon.JobQueue, queue string, max int, lease time.Duration) []tenon.Job {
	t.Helper()
	jobs, err := q.Claim(context.Background(), queue, max, lease)
	if err != nil {
		t.Fatalf("Claim(%q, %d): %v", queue, max, err)
	}
	return jobs
}

func jobIDs(jobs []tenon.Job) []int64 {
	ids := make([]int64, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	return ids
}

func mustJob(t *testing.T, q tenon.JobAdmin, id int64) tenon.Job {
	t.Helper()
	jobs, err := q.Jobs(context.Background(), tenon.JobFilter{AfterID: id - 1, Limit: 1})
	if err != nil {
		t.Fatalf("Jobs: %v", err)
	}
	if len(jobs) != 1 || jobs[0].ID != id {
		t.Fatalf("job %d not found (got %v)", id, jobIDs(jobs))
	}
	return jobs[0]
}

func mustStats(t *testing.T, q tenon.JobQueue, queue string) tenon.QueueStats {
	t.Helper()
	st, err := q.Stats(context.Background(), queue)
	if err != nil {
		t.Fatalf("Stats(%q): %v", queue, err)
	}
	return st
}

func (s *suite) testJobLifecycle(t *testing.T) {
	q, c := s.queue(t)
	ctx := context.Background()
	payload := json.RawMessage(`{"event": "jira:issue_deleted", "n": [1, 2.50, "ü"]}`)
	id := mustEnqueue(t, q, "webhook:test", tenon.NewJob{ClientKey: "tenant-a", DedupeKey: "hook-1", Payload: payload})

	if other := mustClaim(t, q, "webhook:other", 10, time.Minute); len(other) != 0 {
		t.Fatalf("Claim of another queue returned %v", jobIDs(other))
	}
	jobs := mustClaim(t, q, "webhook:test", 10, time.Minute)
	if len(jobs) != 1 {
		t.Fatalf("Claim returned %d jobs, want 1", len(jobs))
	}
	j := jobs[0]
	switch {
	case j.ID != id:
		t.Errorf("ID = %d, want %d", j.ID, id)
	case j.Queue != "webhook:test" || j.ClientKey != "tenant-a" || j.DedupeKey != "hook-1":
		t.Errorf("Queue, ClientKey, DedupeKey = %q, %q, %q", j.Queue, j.ClientKey, j.DedupeKey)
	case !bytes.Equal(j.Payload, payload):
		t.Errorf("Payload = %s, want %s byte for byte", j.Payload, payload)
	case j.State != tenon.JobRunning:
		t.Errorf("State = %q, want running", j.State)
	case j.Attempts != 1:
		t.Errorf("Attempts = %d, want 1", j.Attempts)
	case j.LastError != "":
		t.Errorf("LastError = %q", j.LastError)
	}
	checkTime(t, "RunAt of a claimed job (its lease end)", j.RunAt, Start.Add(time.Minute))
	checkTime(t, "CreatedAt", j.CreatedAt, Start)
	checkTime(t, "UpdatedAt", j.UpdatedAt, Start)

	if again := mustClaim(t, q, "webhook:test", 10, time.Minute); len(again) != 0 {
		t.Fatalf("a claimed job was claimed again: %v", jobIDs(again))
	}
	c.Advance(time.Second)
	if err := q.Complete(ctx, id); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	done := mustJob(t, q, id)
	if done.State != tenon.JobDone || len(done.Payload) != 0 {
		t.Errorf("after Complete: state %q, payload %q; want done without payload", done.State, done.Payload)
	}
	checkTime(t, "UpdatedAt after Complete", done.UpdatedAt, Start.Add(time.Second))
	c.Advance(time.Hour)
	if again := mustClaim(t, q, "webhook:test", 10, time.Minute); len(again) != 0 {
		t.Fatalf("a done job was claimed: %v", jobIDs(again))
	}
}

func (s *suite) testJobDedupe(t *testing.T) {
	q, c := s.queue(t)
	ctx := context.Background()
	first := mustEnqueue(t, q, "q1", tenon.NewJob{DedupeKey: "k", Payload: json.RawMessage(`{"n":1}`)})
	id, created, err := q.Enqueue(ctx, "q1", tenon.NewJob{DedupeKey: "k", Payload: json.RawMessage(`{"n":2}`)})
	if err != nil || created || id != first {
		t.Fatalf("duplicate Enqueue = %d, %v, %v; want %d, false, nil", id, created, err, first)
	}
	// The key is scoped by queue; jobs without a key never collide.
	mustEnqueue(t, q, "q2", tenon.NewJob{DedupeKey: "k"})
	a := mustEnqueue(t, q, "q1", tenon.NewJob{})
	b := mustEnqueue(t, q, "q1", tenon.NewJob{})
	if a == b {
		t.Fatal("two jobs without a dedupe key got the same id")
	}
	jobs := mustClaim(t, q, "q1", 10, time.Minute)
	if len(jobs) != 3 || !bytes.Equal(jobs[0].Payload, []byte(`{"n":1}`)) {
		t.Fatalf("claimed %v; want 3 jobs, the first with the first payload", jobIDs(jobs))
	}
	// A finished job keeps refusing its key until it is purged.
	if err := q.Complete(ctx, first); err != nil {
		t.Fatal(err)
	}
	if id, created, err := q.Enqueue(ctx, "q1", tenon.NewJob{DedupeKey: "k", Payload: json.RawMessage(`{}`)}); err != nil || created || id != first {
		t.Fatalf("Enqueue after Complete = %d, %v, %v; want %d, false, nil", id, created, err, first)
	}
	c.Advance(time.Hour)
	if _, err := q.PurgeJobs(ctx, c.Now()); err != nil {
		t.Fatal(err)
	}
	if id, created, err := q.Enqueue(ctx, "q1", tenon.NewJob{DedupeKey: "k", Payload: json.RawMessage(`{}`)}); err != nil || !created || id == first {
		t.Fatalf("Enqueue after purge = %d, %v, %v; want a new job", id, created, err)
	}
}

func (s *suite) testJobDedupeConcurrent(t *testing.T) {
	q, _ := s.queue(t)
	const n = 16
	ids := make([]int64, n)
	created := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ids[i], created[i], errs[i] = q.Enqueue(context.Background(), "q", tenon.NewJob{DedupeKey: "same", Payload: json.RawMessage(`{}`)})
		})
	}
	wg.Wait()
	nCreated := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Enqueue %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Errorf("Enqueue %d returned id %d, others %d", i, ids[i], ids[0])
		}
		if created[i] {
			nCreated++
		}
	}
	if nCreated != 1 {
		t.Errorf("%d concurrent Enqueues of one key reported created, want exactly 1", nCreated)
	}
	if st := mustStats(t, q, "q"); st.Pending != 1 {
		t.Errorf("Pending = %d, want 1", st.Pending)
	}
}

func (s *suite) testJobClaimOrder(t *testing.T) {
	q, c := s.queue(t)
	// Enqueued out of order; the oldest RunAt comes first.
	late := mustEnqueue(t, q, "q", tenon.NewJob{RunAt: Start.Add(-1 * time.Minute)})
	early := mustEnqueue(t, q, "q", tenon.NewJob{RunAt: Start.Add(-3 * time.Minute)})
	middle := mustEnqueue(t, q, "q", tenon.NewJob{RunAt: Start.Add(-2 * time.Minute)})
	future := mustEnqueue(t, q, "q", tenon.NewJob{RunAt: Start.Add(time.Hour)})

	got := mustClaim(t, q, "q", 2, 2*time.Hour)
	if fmt.Sprint(jobIDs(got)) != fmt.Sprint([]int64{early, middle}) && fmt.Sprint(jobIDs(got)) != fmt.Sprint([]int64{middle, early}) {
		t.Fatalf("Claim(max 2) = %v, want the two oldest %v", jobIDs(got), []int64{early, middle})
	}
	got = mustClaim(t, q, "q", 10, 2*time.Hour)
	if fmt.Sprint(jobIDs(got)) != fmt.Sprint([]int64{late}) {
		t.Fatalf("second Claim = %v, want %v (the future job is not due)", jobIDs(got), []int64{late})
	}
	c.Advance(time.Hour)
	got = mustClaim(t, q, "q", 10, 5*time.Hour)
	if fmt.Sprint(jobIDs(got)) != fmt.Sprint([]int64{future}) {
		t.Fatalf("Claim at its time = %v, want %v", jobIDs(got), []int64{future})
	}
}

func (s *suite) testJobLeaseExpiry(t *testing.T) {
	q, c := s.queue(t)
	ctx := context.Background()
	id := mustEnqueue(t, q, "q", tenon.NewJob{})
	if got := mustClaim(t, q, "q", 1, time.Minute); len(got) != 1 {
		t.Fatal("nothing claimed")
	}
	c.Advance(59 * time.Second)
	if got := mustClaim(t, q, "q", 1, time.Minute); len(got) != 0 {
		t.Fatalf("claimed %v while the lease runs", jobIDs(got))
	}
	// The worker died: when its lease ends the job comes back, and the
	// attempt it used counts.
	c.Advance(time.Second)
	got := mustClaim(t, q, "q", 1, time.Minute)
	if len(got) != 1 || got[0].ID != id || got[0].Attempts != 2 {
		t.Fatalf("after the lease: %+v; want job %d at attempt 2", got, id)
	}
	if err := q.Complete(ctx, id); err != nil {
		t.Fatal(err)
	}
}

// testJobClaimExclusive has several workers claim one backlog at once:
// every job must be handed out exactly once.
func (s *suite) testJobClaimExclusive(t *testing.T) {
	q, _ := s.queue(t)
	const jobs, workers = 120, 6
	for i := range jobs {
		mustEnqueue(t, q, "q", tenon.NewJob{Payload: json.RawMessage(fmt.Sprint(i))})
	}
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				got, err := q.Claim(context.Background(), "q", 7, time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, j := range got {
					seen[j.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != jobs {
		t.Errorf("%d distinct jobs claimed, want %d", len(seen), jobs)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("job %d claimed %d times", id, n)
		}
	}
}

func (s *suite) testJobRetryBury(t *testing.T) {
	q, c := s.queue(t)
	ctx := context.Background()
	id := mustEnqueue(t, q, "q", tenon.NewJob{})
	mustClaim(t, q, "q", 1, time.Minute)
	if err := q.Retry(ctx, id, Start.Add(10*time.Second), "Jira answered 503"); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	j := mustJob(t, q, id)
	if j.State != tenon.JobPending || j.LastError != "Jira answered 503" || j.Attempts != 1 {
		t.Errorf("after Retry: %+v", j)
	}
	checkTime(t, "RunAt after Retry", j.RunAt, Start.Add(10*time.Second))
	if got := mustClaim(t, q, "q", 1, time.Minute); len(got) != 0 {
		t.Fatal("a retried job was claimed before its time")
	}
	c.Advance(10 * time.Second)
	got := mustClaim(t, q, "q", 1, time.Minute)
	if len(got) != 1 || got[0].Attempts != 2 || got[0].LastError != "Jira answered 503" {
		t.Fatalf("claim after the delay: %+v", got)
	}
	if err := q.Bury(ctx, id, "gave up after 2 attempts"); err != nil {
		t.Fatalf("Bury: %v", err)
	}
	j = mustJob(t, q, id)
	if j.State != tenon.JobDead || j.LastError != "gave up after 2 attempts" || len(j.Payload) == 0 {
		t.Errorf("after Bury: %+v; want dead with the reason and the payload kept", j)
	}
	c.Advance(24 * time.Hour)
	if got := mustClaim(t, q, "q", 1, time.Minute); len(got) != 0 {
		t.Fatal("a dead job was claimed")
	}
	if st := mustStats(t, q, "q"); st.Dead != 1 || st.Pending != 0 || st.Running != 0 {
		t.Errorf("Stats = %+v, want one dead", st)
	}
}

func (s *suite) testJobFinishWrongState(t *testing.T) {
	q, _ := s.queue(t)
	ctx := context.Background()
	pending := mustEnqueue(t, q, "q", tenon.NewJob{})
	wantCode(t, "Complete of a pending job", q.Complete(ctx, pending), tenon.ECONFLICT)
	wantCode(t, "Retry of a pending job", q.Retry(ctx, pending, Start, "x"), tenon.ECONFLICT)
	wantCode(t, "Bury of a pending job", q.Bury(ctx, pending, "x"), tenon.ECONFLICT)
	wantCode(t, "Complete of an unknown job", q.Complete(ctx, pending+1000), tenon.ENOTFOUND)
	wantCode(t, "Retry of an unknown job", q.Retry(ctx, pending+1000, Start, "x"), tenon.ENOTFOUND)
	wantCode(t, "Bury of an unknown job", q.Bury(ctx, pending+1000, "x"), tenon.ENOTFOUND)

	mustClaim(t, q, "q", 1, time.Minute)
	if err := q.Complete(ctx, pending); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "second Complete", q.Complete(ctx, pending), tenon.ECONFLICT)
	wantCode(t, "Retry of a done job", q.Retry(ctx, pending, Start, "x"), tenon.ECONFLICT)
	if j := mustJob(t, q, pending); j.State != tenon.JobDone {
		t.Errorf("state %q after refused changes, want done", j.State)
	}
}

func (s *suite) testJobRequeue(t *testing.T) {
	q, c := s.queue(t)
	ctx := context.Background()
	id := mustEnqueue(t, q, "q", tenon.NewJob{Payload: json.RawMessage(`{"keep":true}`)})
	wantCode(t, "Requeue of a pending job", q.Requeue(ctx, id), tenon.ECONFLICT)
	wantCode(t, "Requeue of an unknown job", q.Requeue(ctx, id+1000), tenon.ENOTFOUND)
	mustClaim(t, q, "q", 1, time.Minute)
	if err := q.Bury(ctx, id, "broken"); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Hour)
	if err := q.Requeue(ctx, id); err != nil {
		t.Fatalf("Requeue: %v", err)
	}
	got := mustClaim(t, q, "q", 1, time.Minute)
	if len(got) != 1 || got[0].ID != id || got[0].Attempts != 1 || !bytes.Equal(got[0].Payload, []byte(`{"keep":true}`)) {
		t.Fatalf("after Requeue: %+v; want the job again at attempt 1 with its payload", got)
	}
}

func (s *suite) testJobStats(t *testing.T) {
	q, c := s.queue(t)
	ctx := context.Background()
	if st := mustStats(t, q, "q"); st != (tenon.QueueStats{Queue: "q"}) {
		t.Errorf("Stats of an empty queue = %+v", st)
	}
	// One of each: done, dead, running with a live lease, running with
	// an expired lease, pending due (two), pending in the future.
	done := mustEnqueue(t, q, "q", tenon.NewJob{RunAt: Start.Add(-time.Hour)})
	dead := mustEnqueue(t, q, "q", tenon.NewJob{RunAt: Start.Add(-time.Hour)})
	expired := mustEnqueue(t, q, "q", tenon.NewJob{RunAt: Start.Add(-time.Hour)})
	mustClaim(t, q, "q", 3, 10*time.Second)
	if err := q.Complete(ctx, done); err != nil {
		t.Fatal(err)
	}
	if err := q.Bury(ctx, dead, "x"); err != nil {
		t.Fatal(err)
	}
	_ = expired
	live := mustEnqueue(t, q, "q", tenon.NewJob{RunAt: Start.Add(-time.Minute)})
	if got := mustClaim(t, q, "q", 1, time.Hour); len(got) != 1 || got[0].ID != live {
		t.Fatalf("claimed %+v, want job %d", got, live)
	}
	mustEnqueue(t, q, "q", tenon.NewJob{RunAt: Start.Add(-5 * time.Second)})
	mustEnqueue(t, q, "q", tenon.NewJob{RunAt: Start.Add(20 * time.Second)}) // due at +20s
	mustEnqueue(t, q, "q", tenon.NewJob{RunAt: Start.Add(time.Hour)})
	mustEnqueue(t, q, "other", tenon.NewJob{RunAt: Start.Add(-24 * time.Hour)})

	c.Advance(30 * time.Second)
	// Due now: expired (since +10s), the -5s job, the +20s job.
	st := mustStats(t, q, "q")
	want := tenon.QueueStats{Queue: "q", Pending: 4, Running: 1, Dead: 1, OldestAge: 35 * time.Second}
	if st != want {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
}

func (s *suite) testJobPurge(t *testing.T) {
	q, c := s.queue(t)
	ctx := context.Background()
	oldDone := mustEnqueue(t, q, "q", tenon.NewJob{})
	oldDead := mustEnqueue(t, q, "q", tenon.NewJob{})
	running := mustEnqueue(t, q, "q", tenon.NewJob{})
	mustClaim(t, q, "q", 3, 23*time.Hour)
	if err := q.Complete(ctx, oldDone); err != nil {
		t.Fatal(err)
	}
	if err := q.Bury(ctx, oldDead, "x"); err != nil {
		t.Fatal(err)
	}
	pending := mustEnqueue(t, q, "q2", tenon.NewJob{})
	c.Advance(2 * time.Hour)
	newDone := mustEnqueue(t, q, "q3", tenon.NewJob{})
	mustClaim(t, q, "q3", 1, time.Minute)
	if err := q.Complete(ctx, newDone); err != nil {
		t.Fatal(err)
	}
	n, err := q.PurgeJobs(ctx, Start.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("PurgeJobs removed %d, want 2", n)
	}
	left, err := q.Jobs(ctx, tenon.JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(jobIDs(left)) != fmt.Sprint([]int64{running, pending, newDone}) {
		t.Errorf("left after purge: %v, want %v", jobIDs(left), []int64{running, pending, newDone})
	}
}

func (s *suite) testJobList(t *testing.T) {
	q, _ := s.queue(t)
	ctx := context.Background()
	var ids []int64
	for i := range 5 {
		ids = append(ids, mustEnqueue(t, q, "q", tenon.NewJob{ClientKey: "tenant-a", Payload: json.RawMessage(fmt.Sprint(i))}))
	}
	other := mustEnqueue(t, q, "other", tenon.NewJob{})
	mustClaim(t, q, "q", 1, time.Minute)
	if err := q.Bury(ctx, ids[0], "x"); err != nil {
		t.Fatal(err)
	}
	list := func(f tenon.JobFilter) []int64 {
		t.Helper()
		jobs, err := q.Jobs(ctx, f)
		if err != nil {
			t.Fatalf("Jobs(%+v): %v", f, err)
		}
		return jobIDs(jobs)
	}
	tests := []struct {
		f    tenon.JobFilter
		want []int64
	}{
		{tenon.JobFilter{}, append(append([]int64{}, ids...), other)},
		{tenon.JobFilter{State: tenon.JobDead}, ids[:1]},
		{tenon.JobFilter{Queue: "q", State: tenon.JobPending}, ids[1:]},
		{tenon.JobFilter{Queue: "other"}, []int64{other}},
		{tenon.JobFilter{Queue: "q", AfterID: ids[2], Limit: 1}, ids[3:4]},
		{tenon.JobFilter{Queue: "none"}, nil},
	}
	for _, tt := range tests {
		if got := list(tt.f); fmt.Sprint(got) != fmt.Sprint(tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
			t.Errorf("Jobs(%+v) = %v, want %v", tt.f, got, tt.want)
		}
	}
	_, err := q.Jobs(ctx, tenon.JobFilter{State: "zombie"})
	wantCode(t, "Jobs with an unknown state", err, tenon.EINVALID)
}

func (s *suite) testJobValidation(t *testing.T) {
	q, _ := s.queue(t)
	ctx := context.Background()
	ok := json.RawMessage(`{}`)
	tests := []struct {
		name  string
		queue string
		job   tenon.NewJob
		code  string
	}{
		{"empty queue", "", tenon.NewJob{Payload: ok}, tenon.EINVALID},
		{"NUL in queue", "q\x00", tenon.NewJob{Payload: ok}, tenon.EINVALID},
		{"long queue", strings.Repeat("q", 201), tenon.NewJob{Payload: ok}, tenon.EINVALID},
		{"payload not JSON", "q", tenon.NewJob{Payload: json.RawMessage(`{`)}, tenon.EINVALID},
		{"no payload", "q", tenon.NewJob{}, tenon.EINVALID},
		{"bad UTF-8 dedupe key", "q", tenon.NewJob{DedupeKey: "\xff", Payload: ok}, tenon.EINVALID},
		{"long dedupe key", "q", tenon.NewJob{DedupeKey: strings.Repeat("k", 1025), Payload: ok}, tenon.EINVALID},
		{"NUL in clientKey", "q", tenon.NewJob{ClientKey: "a\x00b", Payload: ok}, tenon.EINVALID},
	}
	for _, tt := range tests {
		_, _, err := q.Enqueue(ctx, tt.queue, tt.job)
		wantCode(t, "Enqueue with "+tt.name, err, tt.code)
	}
	_, err := q.Claim(ctx, "q", 0, time.Minute)
	wantCode(t, "Claim of 0 jobs", err, tenon.EINVALID)
	_, err = q.Claim(ctx, "q", 1, 0)
	wantCode(t, "Claim without a lease", err, tenon.EINVALID)
	_, err = q.Claim(ctx, "", 1, time.Minute)
	wantCode(t, "Claim of no queue", err, tenon.EINVALID)
	_, err = q.Stats(ctx, "")
	wantCode(t, "Stats of no queue", err, tenon.EINVALID)
	if st := mustStats(t, q, "q"); st.Pending != 0 {
		t.Errorf("refused jobs were stored: %+v", st)
	}
}

func (s *suite) testJobErrorSanitized(t *testing.T) {
	q, _ := s.queue(t)
	ctx := context.Background()
	id := mustEnqueue(t, q, "q", tenon.NewJob{})
	mustClaim(t, q, "q", 1, time.Minute)
	msg := "bad \xff byte, NUL \x00 and then " + strings.Repeat("ä", 3000)
	if err := q.Retry(ctx, id, time.Time{}, msg); err != nil {
		t.Fatalf("Retry with an unclean message: %v", err)
	}
	j := mustJob(t, q, id)
	if !strings.HasPrefix(j.LastError, "bad ") || len(j.LastError) > 2100 || strings.ContainsRune(j.LastError, 0) {
		t.Errorf("LastError is %d bytes starting %q; want it cleaned and cut", len(j.LastError), j.LastError[:min(20, len(j.LastError))])
	}
	checkTime(t, "RunAt of a Retry without a time", j.RunAt, Start)
}

// benchEnqueue measures a durable enqueue with a dedupe key, as a
// webhook makes it; in parallel, many at once.
func benchEnqueue(b *testing.B, open func(*testing.B) tenon.Store, parallel bool) {
	q, ok := open(b).(tenon.JobQueue)
	if !ok {
		b.Skip("the store has no job queue")
	}
	ctx := context.Background()
	payload := json.RawMessage(`{"event":"jira:issue_updated","query":"issueKey=PROJ-123","body":{"issue":{"key":"PROJ-123","fields":{"summary":"` +
		strings.Repeat("words ", 100) + `"}}}}`)
	var seq atomic.Int64
	enqueue := func() error {
		_, _, err := q.Enqueue(ctx, "webhook:bench", tenon.NewJob{ClientKey: "tenant-a", DedupeKey: fmt.Sprint("hook-", seq.Add(1)), Payload: payload})
		return err
	}
	b.ReportAllocs()
	if !parallel {
		for b.Loop() {
			if err := enqueue(); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := enqueue(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// benchClaimComplete measures processing's share of the store: claiming
// one due job and completing it, two durable writes.
func benchClaimComplete(b *testing.B, open func(*testing.B) tenon.Store) {
	q, ok := open(b).(tenon.JobQueue)
	if !ok {
		b.Skip("the store has no job queue")
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		if _, _, err := q.Enqueue(ctx, "bench", tenon.NewJob{Payload: json.RawMessage(`{}`)}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		jobs, err := q.Claim(ctx, "bench", 1, time.Minute)
		if err != nil || len(jobs) != 1 {
			b.Fatalf("claim: %v, %v", jobs, err)
		}
		if err := q.Complete(ctx, jobs[0].ID); err != nil {
			b.Fatal(err)
		}
	}
}
