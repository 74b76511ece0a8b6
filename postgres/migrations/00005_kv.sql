-- +goose Up
-- Operational state shared by every node (TLS certificates and their keys,
-- ACME accounts), and named locks with a lease. Values are sealed by the
-- SecretBox before they reach this table; size is that of the plain value.
-- Keys use the "C" collation: byte order, as in SQLite and Go.
CREATE TABLE kv (
    key        text COLLATE "C" NOT NULL PRIMARY KEY,
    value      text NOT NULL,
    size       bigint NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE kv_locks (
    name       text COLLATE "C" NOT NULL PRIMARY KEY,
    owner      text NOT NULL,
    expires_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE kv_locks;
DROP TABLE kv;
