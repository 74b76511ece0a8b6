package tenon

import (
	"context"
	"encoding/json"
	"time"
)

// JobState is where a queued job is in its life.
type JobState string

// Job states. A job is pending until a worker claims it; a claim is a
// lease, so a job whose worker died becomes claimable again when the lease
// ends. Done and dead jobs are kept for a while for inspection.
const (
	JobPending JobState = "pending"
	JobRunning JobState = "running"
	JobDone    JobState = "done"
	JobDead    JobState = "dead"
)

// NewJob is a job to enqueue.
type NewJob struct {
	// ClientKey is the tenant the job belongs to ("" for app-wide jobs).
	ClientKey string
	// DedupeKey, when set, makes Enqueue idempotent per queue: a second
	// job with the same key is not stored (e.g. Atlassian's webhook
	// identifier, a Forge event id).
	DedupeKey string
	// Payload is the job's input, stored as is (valid JSON).
	Payload json.RawMessage
	// RunAt delays the first attempt; zero means now.
	RunAt time.Time
}

// Job is a stored job.
type Job struct {
	ID        int64
	Queue     string
	ClientKey string
	DedupeKey string
	Payload   json.RawMessage
	State     JobState
	Attempts  int       // attempts started so far, this one included once claimed
	RunAt     time.Time // when it is due (or when its lease ends, while running)
	LastError string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// QueueStats describe one queue, for health and metrics.
type QueueStats struct {
	Queue   string
	Pending int // pending jobs, due or not, and claimed jobs whose lease ran out
	Running int // claimed jobs with a live lease
	Dead    int // jobs that gave up
	// OldestAge is how long the longest-waiting due job has been due
	// (now minus its RunAt): the queue's lag. 0 when no job is due.
	OldestAge time.Duration
}

// JobQueue is a durable queue kept in the Store, shared by every node:
// webhooks, Forge events and scheduled work go through it. Enqueue returns
// only once the job is durable, so a caller may acknowledge its sender
// after it. Implementations are safe for concurrent use by many nodes: a
// due job is handed to exactly one Claim at a time.
type JobQueue interface {
	// Enqueue stores a job in queue. With a DedupeKey already present in
	// the queue it stores nothing and returns the existing job's id with
	// created false.
	Enqueue(ctx context.Context, queue string, job NewJob) (id int64, created bool, err error)
	// Claim leases up to max due jobs of queue (oldest RunAt first) for
	// lease, marking them running and counting an attempt. Jobs whose lease
	// ran out are due again.
	Claim(ctx context.Context, queue string, max int, lease time.Duration) ([]Job, error)
	// Complete marks a claimed job done and drops its payload; the row
	// stays until PurgeJobs, so its DedupeKey keeps refusing duplicates.
	//
	// Complete, Retry and Bury act on running jobs only: for an unknown
	// id they return ENOTFOUND, for a job in another state ECONFLICT.
	Complete(ctx context.Context, id int64) error
	// Retry puts a claimed job back as pending, due at runAt, recording
	// errMsg.
	Retry(ctx context.Context, id int64, runAt time.Time, errMsg string) error
	// Bury marks a claimed job dead (it will not run again), recording errMsg.
	Bury(ctx context.Context, id int64, errMsg string) error
	// Stats describes queue.
	Stats(ctx context.Context, queue string) (QueueStats, error)
	// PurgeJobs removes done and dead jobs last updated before before,
	// and returns how many it removed.
	PurgeJobs(ctx context.Context, before time.Time) (int, error)
}

// JobFilter selects jobs to list. Zero fields select everything.
type JobFilter struct {
	Queue   string
	State   JobState
	AfterID int64 // only jobs with a greater id, for paging
	Limit   int   // at most this many; <= 0 or above MaxListLimit means MaxListLimit
}

// JobAdmin is an optional JobQueue capability for operators: look at jobs
// (dead letters above all) and give dead ones another chance. Both stores
// implement it; `tenon jobs` uses it.
type JobAdmin interface {
	// Jobs lists jobs matching f in id order.
	Jobs(ctx context.Context, f JobFilter) ([]Job, error)
	// Requeue makes a dead job pending again, due now, with its attempts
	// reset to zero. Other states give ECONFLICT, unknown ids ENOTFOUND.
	Requeue(ctx context.Context, id int64) error
}

// TokenCache keeps short-lived bearer tokens (OAuth user tokens, Forge
// system and user tokens) so they survive restarts and are shared by
// nodes. Tokens are secrets: implementations seal them with the Store's
// SecretBox.
type TokenCache interface {
	// Token returns the token under key if it is still valid at now, or
	// ENOTFOUND.
	Token(ctx context.Context, key string, now time.Time) (token string, expiresAt time.Time, err error)
	// PutToken stores token under key until expiresAt, replacing any.
	PutToken(ctx context.Context, key, token string, expiresAt time.Time) error
	// DeleteToken removes key; a missing key is not an error.
	DeleteToken(ctx context.Context, key string) error
	// PurgeTokens removes tokens that expired before before.
	PurgeTokens(ctx context.Context, before time.Time) (int, error)
}

// OutboundCall describes one call from the app to a product, for metrics.
// It carries no tenant label on purpose: per-tenant series would grow
// without bound.
type OutboundCall struct {
	Product  string        // "jira", "confluence", "forge", ... or "" when unknown
	Method   string        // HTTP method
	Status   int           // HTTP status; 0 when no answer arrived
	Attempt  int           // 1 for the first try
	Duration time.Duration // of this attempt
	Outcome  string        // "ok", "error", "rate_limited", "unavailable", "breaker_open", "timeout"
}

// Observer receives operational events. The metrics package implements
// it; NopObserver ignores everything. Implementations must be fast and
// safe for concurrent use: they are called on request paths.
type Observer interface {
	ObserveOutbound(OutboundCall)
	ObserveQueue(QueueStats)
}

// NopObserver is an Observer that records nothing.
type NopObserver struct{}

// ObserveOutbound does nothing.
func (NopObserver) ObserveOutbound(OutboundCall) {}

// ObserveQueue does nothing.
func (NopObserver) ObserveQueue(QueueStats) {}
