package postgres

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/storeutil"
)

var (
	_ tenon.JobQueue = (*Store)(nil)
	_ tenon.JobAdmin = (*Store)(nil)
)

const jobColumns = `id, queue, client_key, coalesce(dedupe_key, ''), payload, state, attempts,
	run_at, last_error, created_at, updated_at`

var (
	// enqueueSQL inserts or, for a known dedupe key, returns the existing
	// job. A concurrent insert of the same key that commits while this
	// statement runs is invisible to its snapshot; Enqueue then asks again.
	enqueueSQL = `
		WITH ins AS (
			INSERT INTO jobs (queue, client_key, dedupe_key, payload, state, attempts, run_at, created_at, updated_at)
			VALUES ($1, $2, $3, $4, 'pending', 0, $5, $6, $6)
			ON CONFLICT (queue, dedupe_key) DO NOTHING
			RETURNING id)
		SELECT id, true FROM ins
		UNION ALL
		SELECT id, false FROM jobs WHERE queue = $1 AND dedupe_key = $3 AND NOT EXISTS (SELECT 1 FROM ins)`
	existingJobSQL = `SELECT id FROM jobs WHERE queue = $1 AND dedupe_key = $2`
	// claimSQL locks the due rows it takes and skips rows another
	// claimer holds, so concurrent claims on any number of nodes split
	// the due jobs between them instead of waiting or doubling up.
	claimSQL = `
		WITH due AS (
			SELECT id FROM jobs
			WHERE queue = $1 AND state IN ('pending', 'running') AND run_at <= $2
			ORDER BY run_at, id LIMIT $3
			FOR UPDATE SKIP LOCKED)
		UPDATE jobs j SET state = 'running', attempts = j.attempts + 1, run_at = $4, updated_at = $2
		FROM due WHERE j.id = due.id
		RETURNING j.id, queue, client_key, coalesce(dedupe_key, ''), payload, state, attempts,
			run_at, last_error, created_at, updated_at`
	completeSQL = `UPDATE jobs SET state = 'done', payload = '', updated_at = $2 WHERE id = $1 AND state = 'running'`
	retrySQL    = `UPDATE jobs SET state = 'pending', run_at = $2, last_error = $3, updated_at = $4 WHERE id = $1 AND state = 'running'`
	burySQL     = `UPDATE jobs SET state = 'dead', last_error = $2, updated_at = $3 WHERE id = $1 AND state = 'running'`
	requeueSQL  = `UPDATE jobs SET state = 'pending', attempts = 0, run_at = $2, updated_at = $2 WHERE id = $1 AND state = 'dead'`
	jobStateSQL = `SELECT state FROM jobs WHERE id = $1`
	statsSQL    = `
		SELECT
			count(*) FILTER (WHERE state = 'pending' OR run_at <= $1),
			count(*) FILTER (WHERE state = 'running' AND run_at > $1),
			min(run_at) FILTER (WHERE run_at <= $1),
			(SELECT count(*) FROM jobs WHERE state = 'dead' AND queue = $2)
		FROM jobs WHERE queue = $2 AND state IN ('pending', 'running')`
	// Purging goes in batches so a large backlog of old rows never makes
	// one long transaction.
	purgeSQL = `DELETE FROM jobs WHERE id IN (
		SELECT id FROM jobs WHERE state IN ('done', 'dead') AND updated_at < $1 LIMIT 1000)`
)

func scanJob(row pgx.Row) (tenon.Job, error) {
	var j tenon.Job
	var state string
	var payload []byte
	if err := row.Scan(&j.ID, &j.Queue, &j.ClientKey, &j.DedupeKey, &payload, &state, &j.Attempts,
		&j.RunAt, &j.LastError, &j.CreatedAt, &j.UpdatedAt); err != nil {
		return tenon.Job{}, err
	}
	j.State = tenon.JobState(state)
	if len(payload) > 0 {
		j.Payload = payload
	}
	j.RunAt, j.CreatedAt, j.UpdatedAt = j.RunAt.UTC(), j.CreatedAt.UTC(), j.UpdatedAt.UTC()
	return j, nil
}

// Enqueue implements tenon.JobQueue. It returns once the insert is
// committed.
func (s *Store) Enqueue(ctx context.Context, queue string, job tenon.NewJob) (int64, bool, error) {
	if err := storeutil.ValidateNewJob(queue, job); err != nil {
		return 0, false, err
	}
	now := storeutil.Now(s.now)
	runAt := now
	if !job.RunAt.IsZero() {
		runAt = job.RunAt
	}
	var dedupe *string
	if job.DedupeKey != "" {
		dedupe = &job.DedupeKey
	}
	var id int64
	var created bool
	err := s.pool.QueryRow(ctx, enqueueSQL, queue, job.ClientKey, dedupe, []byte(job.Payload), runAt, now).Scan(&id, &created)
	if errors.Is(err, pgx.ErrNoRows) {
		// Lost a race with an insert of the same key that had not
		// committed when this statement began; it has now.
		err = s.pool.QueryRow(ctx, existingJobSQL, queue, job.DedupeKey).Scan(&id)
	}
	if err != nil {
		return 0, false, s.fail("enqueue", err)
	}
	return id, created, nil
}

// Claim implements tenon.JobQueue.
func (s *Store) Claim(ctx context.Context, queue string, max int, lease time.Duration) ([]tenon.Job, error) {
	if err := storeutil.ValidateClaim(queue, max, lease); err != nil {
		return nil, err
	}
	now := storeutil.Now(s.now)
	rows, err := s.pool.Query(ctx, claimSQL, queue, now, max, now.Add(lease))
	if err != nil {
		return nil, s.fail("claim", err)
	}
	defer rows.Close()
	var jobs []tenon.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, s.fail("claim", err)
		}
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("claim", err)
	}
	slices.SortFunc(jobs, func(a, b tenon.Job) int { return cmp.Compare(a.ID, b.ID) })
	return jobs, nil
}

// finish runs one of the updates that end a claim, and explains a miss.
func (s *Store) finish(ctx context.Context, what string, id int64, query string, args ...any) error {
	tag, err := s.pool.Exec(ctx, query, args...)
	if err != nil {
		return s.fail(what+" job", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var state string
	err = s.pool.QueryRow(ctx, jobStateSQL, id).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return storeutil.JobNotFound(id)
	}
	if err != nil {
		return s.fail(what+" job", err)
	}
	if what == "requeue" {
		return storeutil.JobNotDead(id, tenon.JobState(state))
	}
	return storeutil.JobNotRunning(id, tenon.JobState(state))
}

// Complete implements tenon.JobQueue.
func (s *Store) Complete(ctx context.Context, id int64) error {
	return s.finish(ctx, "complete", id, completeSQL, id, storeutil.Now(s.now))
}

// Retry implements tenon.JobQueue.
func (s *Store) Retry(ctx context.Context, id int64, runAt time.Time, errMsg string) error {
	now := storeutil.Now(s.now)
	if runAt.IsZero() {
		runAt = now
	}
	return s.finish(ctx, "retry", id, retrySQL, id, runAt, storeutil.JobError(errMsg), now)
}

// Bury implements tenon.JobQueue.
func (s *Store) Bury(ctx context.Context, id int64, errMsg string) error {
	return s.finish(ctx, "bury", id, burySQL, id, storeutil.JobError(errMsg), storeutil.Now(s.now))
}

// Requeue implements tenon.JobAdmin.
func (s *Store) Requeue(ctx context.Context, id int64) error {
	return s.finish(ctx, "requeue", id, requeueSQL, id, storeutil.Now(s.now))
}

// Stats implements tenon.JobQueue.
func (s *Store) Stats(ctx context.Context, queue string) (tenon.QueueStats, error) {
	if err := storeutil.ValidateQueue(queue); err != nil {
		return tenon.QueueStats{}, err
	}
	now := storeutil.Now(s.now)
	st := tenon.QueueStats{Queue: queue}
	var oldest *time.Time
	if err := s.pool.QueryRow(ctx, statsSQL, now, queue).Scan(&st.Pending, &st.Running, &oldest, &st.Dead); err != nil {
		return tenon.QueueStats{}, s.fail("queue stats", err)
	}
	if oldest != nil {
		st.OldestAge = storeutil.OldestAge(now, *oldest)
	}
	return st, nil
}

// PurgeJobs implements tenon.JobQueue.
func (s *Store) PurgeJobs(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		tag, err := s.pool.Exec(ctx, purgeSQL, before)
		if err != nil {
			return total, s.fail("purge jobs", err)
		}
		n := int(tag.RowsAffected())
		total += n
		if n < 1000 {
			return total, nil
		}
	}
}

// Jobs implements tenon.JobAdmin.
func (s *Store) Jobs(ctx context.Context, f tenon.JobFilter) ([]tenon.Job, error) {
	if err := storeutil.ValidateJobFilter(f); err != nil {
		return nil, err
	}
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, cond+" $"+strconv.Itoa(len(args)))
	}
	if f.State != "" {
		add("state =", string(f.State))
	}
	if f.Queue != "" {
		add("queue =", f.Queue)
	}
	add("id >", f.AfterID)
	args = append(args, storeutil.ListLimit(f.Limit))
	q := `SELECT ` + jobColumns + ` FROM jobs WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY id LIMIT $` + strconv.Itoa(len(args))
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, s.fail("list jobs", err)
	}
	defer rows.Close()
	var jobs []tenon.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, s.fail("list jobs", err)
		}
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("list jobs", err)
	}
	return jobs, nil
}
