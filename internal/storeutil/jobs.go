package storeutil

import (
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tenon-dev/tenon"
)

// Limits on queued jobs, the same in every store.
const (
	MaxQueueLength     = 200
	MaxDedupeKeyLength = 1024
	MaxJobPayload      = 16 << 20
	// MaxJobError bounds the recorded error of a failed attempt: enough
	// to diagnose, too little to turn the queue into a log store.
	MaxJobError = 2000
	// MaxLease bounds a claim's lease: a job whose worker died must come
	// back within a day at worst.
	MaxLease = 24 * time.Hour
)

// ValidateQueue checks a queue name.
func ValidateQueue(queue string) error {
	if queue == "" || len(queue) > MaxQueueLength || !ValidText(queue) {
		return tenon.Errorf(tenon.EINVALID, "The queue name must be 1 to %d bytes of UTF-8 without NUL.", MaxQueueLength)
	}
	return nil
}

// ValidateNewJob checks a job about to be enqueued in queue.
func ValidateNewJob(queue string, job tenon.NewJob) error {
	if err := ValidateQueue(queue); err != nil {
		return err
	}
	if job.ClientKey != "" && !ValidClientKey(job.ClientKey) {
		return tenon.Errorf(tenon.EINVALID, "The job's clientKey must be 1 to %d bytes of UTF-8 without NUL.", MaxClientKeyLength)
	}
	if len(job.DedupeKey) > MaxDedupeKeyLength || !ValidText(job.DedupeKey) {
		return tenon.Errorf(tenon.EINVALID, "The job's dedupe key must be at most %d bytes of UTF-8 without NUL.", MaxDedupeKeyLength)
	}
	if len(job.Payload) > MaxJobPayload {
		return tenon.Errorf(tenon.ETOOLARGE, "The job's payload is larger than %d bytes.", MaxJobPayload)
	}
	if !json.Valid(job.Payload) {
		return tenon.Errorf(tenon.EINVALID, "The job's payload is not valid JSON.")
	}
	return nil
}

// ValidateClaim checks the arguments of Claim.
func ValidateClaim(queue string, max int, lease time.Duration) error {
	if err := ValidateQueue(queue); err != nil {
		return err
	}
	if max <= 0 || max > tenon.MaxListLimit {
		return tenon.Errorf(tenon.EINVALID, "Claim takes 1 to %d jobs at a time.", tenon.MaxListLimit)
	}
	if lease <= 0 || lease > MaxLease {
		return tenon.Errorf(tenon.EINVALID, "The lease must be positive and at most %v.", MaxLease)
	}
	return nil
}

// ValidateJobFilter checks a JobFilter.
func ValidateJobFilter(f tenon.JobFilter) error {
	if f.Queue != "" {
		if err := ValidateQueue(f.Queue); err != nil {
			return err
		}
	}
	switch f.State {
	case "", tenon.JobPending, tenon.JobRunning, tenon.JobDone, tenon.JobDead:
	default:
		return tenon.Errorf(tenon.EINVALID, "Unknown job state %q.", f.State)
	}
	return nil
}

// JobError makes an error message storable: valid UTF-8 without NUL,
// at most MaxJobError bytes, cut at a rune boundary.
func JobError(msg string) string {
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	msg = strings.ReplaceAll(msg, "\x00", "")
	if len(msg) <= MaxJobError {
		return msg
	}
	cut := MaxJobError
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + "…"
}

// JobNotFound is the error for an unknown job id.
func JobNotFound(id int64) error {
	return tenon.Errorf(tenon.ENOTFOUND, "No job with id %d.", id)
}

// JobNotRunning is the error for finishing a job that is no longer
// claimed: its lease ran out and another worker took it, or an operator
// changed it.
func JobNotRunning(id int64, state tenon.JobState) error {
	return tenon.Errorf(tenon.ECONFLICT, "Job %d is %s, not running.", id, state)
}

// JobNotDead is the error for requeueing a job that did not give up.
func JobNotDead(id int64, state tenon.JobState) error {
	return tenon.Errorf(tenon.ECONFLICT, "Job %d is %s; only dead jobs can be requeued.", id, state)
}

// OldestAge is QueueStats.OldestAge from the oldest RunAt among due
// jobs (zero when none).
func OldestAge(now, oldestDue time.Time) time.Duration {
	if oldestDue.IsZero() || !oldestDue.Before(now) {
		return 0
	}
	return now.Sub(oldestDue)
}
