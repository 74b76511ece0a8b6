-- +goose Up
-- The personal-data inventory: which accounts each tenant stores personal
-- data about, and since when (what the reporting cycle reports), and
-- which app_data keys hold an account's personal values (what erasing a
-- closed account deletes).
CREATE TABLE personal_accounts (
    client_key TEXT NOT NULL,
    account_id TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (client_key, account_id)
) WITHOUT ROWID;

CREATE TABLE personal_values (
    client_key TEXT NOT NULL,
    account_id TEXT NOT NULL,
    key        TEXT NOT NULL,
    PRIMARY KEY (client_key, account_id, key)
) WITHOUT ROWID;

-- One row per tenant: where its reporting cycle is. pending holds the
-- answers not yet acted on, as JSON.
CREATE TABLE report_cycles (
    client_key     TEXT NOT NULL PRIMARY KEY,
    started_at     TEXT,
    cursor         TEXT NOT NULL DEFAULT '',
    not_before     TEXT,
    period_seconds INTEGER NOT NULL DEFAULT 0,
    pending        BLOB NOT NULL,
    reported       INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- Append-only record of destructive work: erased accounts, purged
-- tenants, sites that moved. It is the one table a purge keeps a row in.
CREATE TABLE audit (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,
    action     TEXT NOT NULL,
    client_key TEXT NOT NULL DEFAULT '',
    account_id TEXT NOT NULL DEFAULT '',
    actor      TEXT NOT NULL DEFAULT '',
    detail     TEXT NOT NULL DEFAULT ''
);

CREATE INDEX audit_client_key ON audit (client_key, id);

-- +goose Down
DROP TABLE audit;
DROP TABLE report_cycles;
DROP TABLE personal_values;
DROP TABLE personal_accounts;
