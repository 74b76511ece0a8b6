-- +goose Up
-- The durable job queue (webhooks, events, scheduled work). A claimed
-- job is 'running' with run_at set to the end of its lease; when the
-- lease ends it is due again, so a crashed worker's job comes back.
-- dedupe_key is NULL when the job has none: NULLs never collide in the
-- unique index, so only real keys are deduplicated.
CREATE TABLE jobs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    queue      TEXT NOT NULL,
    client_key TEXT NOT NULL DEFAULT '',
    dedupe_key TEXT,
    payload    BLOB NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'dead')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    run_at     TEXT NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE UNIQUE INDEX jobs_dedupe ON jobs (queue, dedupe_key);

-- What Claim walks: the due jobs of one queue, oldest first. Finished
-- jobs are not in it, so it stays as small as the backlog.
CREATE INDEX jobs_due ON jobs (queue, run_at, id) WHERE state IN ('pending', 'running');

-- Counting and listing by state (dead letters), and purging old rows.
CREATE INDEX jobs_state ON jobs (state, queue, id);
CREATE INDEX jobs_finished ON jobs (updated_at) WHERE state IN ('done', 'dead');

-- +goose Down
DROP TABLE jobs;
