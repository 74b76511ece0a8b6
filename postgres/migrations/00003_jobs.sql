-- +goose Up
-- The durable job queue (webhooks, events, scheduled work). A claimed
-- job is 'running' with run_at set to the end of its lease; when the
-- lease ends it is due again, so a crashed worker's job comes back.
-- Claim takes rows with FOR UPDATE SKIP LOCKED, so nodes claiming at the
-- same time never get the same job. dedupe_key is NULL when the job has
-- none: NULLs never collide in the unique index.
CREATE TABLE jobs (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue      text COLLATE "C" NOT NULL,
    client_key text COLLATE "C" NOT NULL DEFAULT '',
    dedupe_key text COLLATE "C",
    payload    bytea NOT NULL,
    state      text NOT NULL CHECK (state IN ('pending', 'running', 'done', 'dead')),
    attempts   integer NOT NULL DEFAULT 0,
    run_at     timestamptz NOT NULL,
    last_error text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
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
