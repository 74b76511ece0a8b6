package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/internal/storeutil"
)

var (
	_ tenon.JobQueue = (*Store)(nil)
	_ tenon.JobAdmin = (*Store)(nil)
)

// The queue is a table on the same single writer as everything else, so
// a claim is one IMMEDIATE transaction and no two claimers can see the
// same due job: SQLite has no SKIP LOCKED because it needs none.

const jobColumns = `id, queue, client_key, coalesce(dedupe_key, ''), payload, state, attempts,
	run_at, last_error, created_at, updated_at`

const (
	enqueueSQL = `
		INSERT INTO jobs (queue, client_key, dedupe_key, payload, state, attempts, run_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?)
		ON CONFLICT (queue, dedupe_key) DO NOTHING
		RETURNING id`
	existingJobSQL = `SELECT id FROM jobs WHERE queue = ? AND dedupe_key = ?`
	// anyDueSQL runs on a reader first, so an idle queue costs a read,
	// not a turn on the writer.
	anyDueSQL = `SELECT EXISTS (SELECT 1 FROM jobs
		WHERE queue = ? AND state IN ('pending', 'running') AND run_at <= ?)`
	claimSQL = `
		UPDATE jobs SET state = 'running', attempts = attempts + 1, run_at = ?, updated_at = ?
		WHERE id IN (
			SELECT id FROM jobs
			WHERE queue = ? AND state IN ('pending', 'running') AND run_at <= ?
			ORDER BY run_at, id LIMIT ?)
		RETURNING ` + jobColumns
	completeSQL = `UPDATE jobs SET state = 'done', payload = X'', updated_at = ? WHERE id = ? AND state = 'running'`
	retrySQL    = `UPDATE jobs SET state = 'pending', run_at = ?, last_error = ?, updated_at = ? WHERE id = ? AND state = 'running'`
	burySQL     = `UPDATE jobs SET state = 'dead', last_error = ?, updated_at = ? WHERE id = ? AND state = 'running'`
	requeueSQL  = `UPDATE jobs SET state = 'pending', attempts = 0, run_at = ?, updated_at = ? WHERE id = ? AND state = 'dead'`
	jobStateSQL = `SELECT state FROM jobs WHERE id = ?`
	statsSQL    = `
		SELECT
			count(*) FILTER (WHERE state = 'pending' OR run_at <= ?1),
			count(*) FILTER (WHERE state = 'running' AND run_at > ?1),
			coalesce(min(run_at) FILTER (WHERE run_at <= ?1), ''),
			(SELECT count(*) FROM jobs WHERE state = 'dead' AND queue = ?2)
		FROM jobs WHERE queue = ?2 AND state IN ('pending', 'running')`
	// Purging goes in batches so a large backlog of old rows never holds
	// the writer for long.
	purgeSQL = `DELETE FROM jobs WHERE id IN (
		SELECT id FROM jobs WHERE state IN ('done', 'dead') AND updated_at < ? LIMIT 1000)`
)

func (s *Store) scanJob(row scanner) (tenon.Job, error) {
	var (
		j                       tenon.Job
		state                   string
		payload                 []byte
		runAt, created, updated string
		err                     error
	)
	if err = row.Scan(&j.ID, &j.Queue, &j.ClientKey, &j.DedupeKey, &payload, &state, &j.Attempts,
		&runAt, &j.LastError, &created, &updated); err != nil {
		return tenon.Job{}, err
	}
	j.State = tenon.JobState(state)
	if len(payload) > 0 {
		j.Payload = payload
	}
	if j.RunAt, err = parseTime(runAt); err != nil {
		return tenon.Job{}, err
	}
	if j.CreatedAt, err = parseTime(created); err != nil {
		return tenon.Job{}, err
	}
	if j.UpdatedAt, err = parseTime(updated); err != nil {
		return tenon.Job{}, err
	}
	return j, nil
}

// Enqueue implements tenon.JobQueue. The job is committed with a full
// fsync before Enqueue returns.
//
// Concurrent calls share commits (groupcommit.go), so a burst of
// webhooks costs one fsync per batch instead of one per webhook. Once a
// caller's job is queued it waits for the commit even if ctx ends, so
// what it returns is never ambiguous.
func (s *Store) Enqueue(ctx context.Context, queue string, job tenon.NewJob) (int64, bool, error) {
	if err := storeutil.ValidateNewJob(queue, job); err != nil {
		return 0, false, err
	}
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	var (
		id      int64
		created bool
	)
	err := s.commits.do(func(ctx context.Context, tx *sql.Tx) error {
		var err error
		id, created, err = s.insertJob(ctx, tx, queue, job)
		return err
	})
	if err != nil {
		return 0, false, s.fail("enqueue", err)
	}
	return id, created, nil
}

// insertJob inserts job in tx, or finds the job already queued under its
// dedupe key.
func (s *Store) insertJob(ctx context.Context, tx *sql.Tx, queue string, job tenon.NewJob) (id int64, created bool, err error) {
	now := storeutil.Now(s.now)
	runAt := now
	if !job.RunAt.IsZero() {
		runAt = job.RunAt
	}
	var dedupe sql.NullString
	if job.DedupeKey != "" {
		dedupe = sql.NullString{String: job.DedupeKey, Valid: true}
	}
	err = tx.QueryRowContext(ctx, enqueueSQL, queue, job.ClientKey, dedupe, []byte(job.Payload),
		formatTime(runAt), formatTime(now), formatTime(now)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		err = tx.QueryRowContext(ctx, existingJobSQL, queue, job.DedupeKey).Scan(&id)
		return id, false, err
	}
	return id, err == nil, err
}

// Claim implements tenon.JobQueue.
func (s *Store) Claim(ctx context.Context, queue string, max int, lease time.Duration) ([]tenon.Job, error) {
	if err := storeutil.ValidateClaim(queue, max, lease); err != nil {
		return nil, err
	}
	now := storeutil.Now(s.now)
	var due bool
	if err := s.reader.QueryRowContext(ctx, anyDueSQL, queue, formatTime(now)).Scan(&due); err != nil {
		return nil, s.fail("claim", err)
	}
	if !due {
		return nil, nil
	}
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return nil, s.fail("claim", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, claimSQL, formatTime(now.Add(lease)), formatTime(now), queue, formatTime(now), max)
	if err != nil {
		return nil, s.fail("claim", err)
	}
	var jobs []tenon.Job
	for rows.Next() {
		j, err := s.scanJob(rows)
		if err != nil {
			rows.Close()
			return nil, s.fail("claim", err)
		}
		jobs = append(jobs, j)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.fail("claim", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, s.fail("claim", err)
	}
	slices.SortFunc(jobs, func(a, b tenon.Job) int { return cmp.Compare(a.ID, b.ID) })
	return jobs, nil
}

// finish runs one of the updates that end a claim, and explains a miss.
func (s *Store) finish(ctx context.Context, what string, id int64, query string, args ...any) error {
	res, err := s.writer.ExecContext(ctx, query, args...)
	if err != nil {
		return s.fail(what+" job", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return s.fail(what+" job", err)
	} else if n == 1 {
		return nil
	}
	var state string
	err = s.writer.QueryRowContext(ctx, jobStateSQL, id).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
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
	return s.finish(ctx, "complete", id, completeSQL, formatTime(storeutil.Now(s.now)), id)
}

// Retry implements tenon.JobQueue.
func (s *Store) Retry(ctx context.Context, id int64, runAt time.Time, errMsg string) error {
	now := storeutil.Now(s.now)
	if runAt.IsZero() {
		runAt = now
	}
	return s.finish(ctx, "retry", id, retrySQL, formatTime(runAt), storeutil.JobError(errMsg), formatTime(now), id)
}

// Bury implements tenon.JobQueue.
func (s *Store) Bury(ctx context.Context, id int64, errMsg string) error {
	return s.finish(ctx, "bury", id, burySQL, storeutil.JobError(errMsg), formatTime(storeutil.Now(s.now)), id)
}

// Requeue implements tenon.JobAdmin.
func (s *Store) Requeue(ctx context.Context, id int64) error {
	now := formatTime(storeutil.Now(s.now))
	return s.finish(ctx, "requeue", id, requeueSQL, now, now, id)
}

// Stats implements tenon.JobQueue.
func (s *Store) Stats(ctx context.Context, queue string) (tenon.QueueStats, error) {
	if err := storeutil.ValidateQueue(queue); err != nil {
		return tenon.QueueStats{}, err
	}
	now := storeutil.Now(s.now)
	st := tenon.QueueStats{Queue: queue}
	var oldest string
	err := s.reader.QueryRowContext(ctx, statsSQL, formatTime(now), queue).Scan(&st.Pending, &st.Running, &oldest, &st.Dead)
	if err != nil {
		return tenon.QueueStats{}, s.fail("queue stats", err)
	}
	if oldest != "" {
		t, err := parseTime(oldest)
		if err != nil {
			return tenon.QueueStats{}, s.fail("queue stats", err)
		}
		st.OldestAge = storeutil.OldestAge(now, t)
	}
	return st, nil
}

// PurgeJobs implements tenon.JobQueue.
func (s *Store) PurgeJobs(ctx context.Context, before time.Time) (int, error) {
	cutoff := formatTime(before)
	total := 0
	for {
		res, err := s.writer.ExecContext(ctx, purgeSQL, cutoff)
		if err != nil {
			return total, s.fail("purge jobs", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, s.fail("purge jobs", err)
		}
		total += int(n)
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
	if f.State != "" {
		where, args = append(where, "state = ?"), append(args, string(f.State))
	}
	if f.Queue != "" {
		where, args = append(where, "queue = ?"), append(args, f.Queue)
	}
	where, args = append(where, "id > ?"), append(args, f.AfterID)
	q := `SELECT ` + jobColumns + ` FROM jobs WHERE ` + strings.Join(where, " AND ") + ` ORDER BY id LIMIT ?`
	args = append(args, storeutil.ListLimit(f.Limit))
	rows, err := s.reader.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, s.fail("list jobs", err)
	}
	defer rows.Close()
	var jobs []tenon.Job
	for rows.Next() {
		j, err := s.scanJob(rows)
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
