-- +goose Up
-- The personal-data inventory: which accounts each tenant stores personal
-- data about, and since when (what the reporting cycle reports), and
-- which app_data keys hold an account's personal values (what erasing a
-- closed account deletes).
CREATE TABLE personal_accounts (
    client_key text COLLATE "C" NOT NULL,
    account_id text COLLATE "C" NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (client_key, account_id)
);

CREATE TABLE personal_values (
    client_key text COLLATE "C" NOT NULL,
    account_id text COLLATE "C" NOT NULL,
    key        text COLLATE "C" NOT NULL,
    PRIMARY KEY (client_key, account_id, key)
);

-- One row per tenant: where its reporting cycle is. pending holds the
-- answers not yet acted on, as JSON.
CREATE TABLE report_cycles (
    client_key     text COLLATE "C" NOT NULL PRIMARY KEY,
    started_at     timestamptz,
    cursor         text COLLATE "C" NOT NULL DEFAULT '',
    not_before     timestamptz,
    period_seconds bigint NOT NULL DEFAULT 0,
    pending        bytea NOT NULL,
    reported       integer NOT NULL DEFAULT 0
);

-- Append-only record of destructive work: erased accounts, purged
-- tenants, sites that moved. It is the one table a purge keeps a row in.
CREATE TABLE audit (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL,
    action     text NOT NULL,
    client_key text COLLATE "C" NOT NULL DEFAULT '',
    account_id text NOT NULL DEFAULT '',
    actor      text NOT NULL DEFAULT '',
    detail     text NOT NULL DEFAULT ''
);

CREATE INDEX audit_client_key ON audit (client_key, id);

-- +goose Down
DROP TABLE audit;
DROP TABLE report_cycles;
DROP TABLE personal_values;
DROP TABLE personal_accounts;
