-- +goose Up
-- Text that is ordered or compared (client keys, data keys) uses the "C"
-- collation: byte order, the same as SQLite and Go, whatever the database
-- default is. Secrets (shared_secret, payload) are sealed by the SecretBox
-- before they reach this table.
CREATE TABLE installations (
    client_key      text COLLATE "C" NOT NULL PRIMARY KEY,
    app_key         text NOT NULL DEFAULT '',
    shared_secret   text NOT NULL,
    base_url        text NOT NULL DEFAULT '',
    display_url     text NOT NULL DEFAULT '',
    product_type    text NOT NULL DEFAULT '',
    oauth_client_id text NOT NULL DEFAULT '',
    installation_id text NOT NULL DEFAULT '',
    cloud_id        text NOT NULL DEFAULT '',
    state           text NOT NULL CHECK (state IN ('enabled', 'disabled', 'uninstalled')),
    payload         text NOT NULL DEFAULT '',
    installed_at    timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    uninstalled_at  timestamptz
);

CREATE INDEX installations_state ON installations (state, client_key);

-- Values are bytea so the JSON comes back byte for byte (jsonb would
-- reorder and reformat it).
CREATE TABLE app_data (
    client_key text COLLATE "C" NOT NULL,
    key        text COLLATE "C" NOT NULL,
    value      bytea NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (client_key, key)
);

-- Every change to an installation, by tenon or by anyone with SQL access,
-- notifies the nodes so they drop their cached copy. NOTIFY is
-- transactional: it is delivered only if the change commits. The channel
-- carries a hash of the schema so that several deployments sharing one
-- database do not hear each other.
-- +goose StatementBegin
CREATE FUNCTION tenon_notify_installation() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        changed := OLD.client_key;
    ELSE
        changed := NEW.client_key;
    END IF;
    PERFORM pg_notify('tenon_installations_' || left(md5(TG_TABLE_SCHEMA), 8), changed);
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER installations_notify
    AFTER INSERT OR UPDATE OR DELETE ON installations
    FOR EACH ROW EXECUTE FUNCTION tenon_notify_installation();

-- +goose Down
DROP TRIGGER installations_notify ON installations;
DROP FUNCTION tenon_notify_installation();
DROP TABLE app_data;
DROP TABLE installations;
