-- +goose Up
-- Operational state shared by every node (TLS certificates and their keys,
-- ACME accounts), and named locks with a lease. Values are sealed by the
-- SecretBox before they reach this table; size is that of the plain value.
CREATE TABLE kv (
    key        TEXT NOT NULL PRIMARY KEY,
    value      TEXT NOT NULL,
    size       INTEGER NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE kv_locks (
    name       TEXT NOT NULL PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_at TEXT NOT NULL
) WITHOUT ROWID;

-- +goose Down
DROP TABLE kv_locks;
DROP TABLE kv;
