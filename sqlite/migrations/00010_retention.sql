-- +goose Up
-- Cached tokens name their owner, so erasing an account or purging a
-- tenant finds the ones whose key is a hash. account is a hash of the
-- tenant and the accountId (storeutil.TokenAccount): the table keeps no
-- account ids. Tokens cached before this version have no owner; they
-- expire within the hour.
ALTER TABLE token_cache ADD COLUMN client_key TEXT NOT NULL DEFAULT '';
ALTER TABLE token_cache ADD COLUMN account TEXT NOT NULL DEFAULT '';
CREATE INDEX token_cache_owner ON token_cache (client_key, account) WHERE client_key <> '';

-- What the daily retention job and a purge walk.
CREATE INDEX installations_uninstalled ON installations (uninstalled_at) WHERE state = 'uninstalled';
CREATE INDEX jobs_client_key ON jobs (client_key) WHERE client_key <> '';

-- +goose Down
DROP INDEX jobs_client_key;
DROP INDEX installations_uninstalled;
DROP INDEX token_cache_owner;
ALTER TABLE token_cache DROP COLUMN account;
ALTER TABLE token_cache DROP COLUMN client_key;
