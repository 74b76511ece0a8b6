-- +goose Up
-- Secrets (shared_secret, payload) are sealed by the SecretBox before they
-- reach this table. Times are UTC text of fixed width, so they sort and
-- stay readable in the sqlite3 shell.
CREATE TABLE installations (
    client_key      TEXT NOT NULL PRIMARY KEY,
    app_key         TEXT NOT NULL DEFAULT '',
    shared_secret   TEXT NOT NULL,
    base_url        TEXT NOT NULL DEFAULT '',
    display_url     TEXT NOT NULL DEFAULT '',
    product_type    TEXT NOT NULL DEFAULT '',
    oauth_client_id TEXT NOT NULL DEFAULT '',
    installation_id TEXT NOT NULL DEFAULT '',
    cloud_id        TEXT NOT NULL DEFAULT '',
    state           TEXT NOT NULL CHECK (state IN ('enabled', 'disabled', 'uninstalled')),
    payload         TEXT NOT NULL DEFAULT '',
    installed_at    TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    uninstalled_at  TEXT
);

CREATE INDEX installations_state ON installations (state, client_key);

-- Values are BLOBs so the JSON comes back byte for byte. The primary key
-- is the index every data query walks; WITHOUT ROWID stores rows in it.
CREATE TABLE app_data (
    client_key TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      BLOB NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (client_key, key)
) WITHOUT ROWID;

-- +goose Down
DROP TABLE app_data;
DROP TABLE installations;
