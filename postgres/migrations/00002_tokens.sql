-- +goose Up
-- Short-lived bearer tokens (OAuth user tokens, Forge tokens) shared by
-- every node, so they survive restarts and one node's fetch serves all.
-- The token is sealed by the SecretBox together with its key.
CREATE TABLE token_cache (
    key        text COLLATE "C" NOT NULL PRIMARY KEY,
    token      text NOT NULL,
    expires_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE INDEX token_cache_expires ON token_cache (expires_at);

-- +goose Down
DROP TABLE token_cache;
