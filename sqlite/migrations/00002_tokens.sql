-- +goose Up
-- Short-lived bearer tokens (OAuth user tokens, Forge tokens) shared by
-- every process on this database, so they survive restarts. The token is
-- sealed by the SecretBox together with its key. Times are UTC text of
-- fixed width, like everywhere else in this schema, so they sort.
CREATE TABLE token_cache (
    key        TEXT NOT NULL PRIMARY KEY,
    token      TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE INDEX token_cache_expires ON token_cache (expires_at);

-- +goose Down
DROP TABLE token_cache;
