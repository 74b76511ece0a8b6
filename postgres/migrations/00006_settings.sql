-- +goose Up
-- Named operational settings shared by every node: maintenance mode,
-- notices. Values are JSON kept as bytea, byte for byte.
CREATE TABLE settings (
    name       text COLLATE "C" NOT NULL PRIMARY KEY,
    value      bytea NOT NULL,
    updated_at timestamptz NOT NULL
);

-- A change notifies the nodes so they reread the settings at once instead
-- of after their cache expires. The channel carries a hash of the schema,
-- like the installations channel.
-- +goose StatementBegin
CREATE FUNCTION tenon_notify_setting() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed text;
BEGIN
    IF TG_OP = 'DELETE' THEN
        changed := OLD.name;
    ELSE
        changed := NEW.name;
    END IF;
    PERFORM pg_notify('tenon_settings_' || left(md5(TG_TABLE_SCHEMA), 8), left(changed, 200));
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER settings_notify
    AFTER INSERT OR UPDATE OR DELETE ON settings
    FOR EACH ROW EXECUTE FUNCTION tenon_notify_setting();

-- +goose Down
DROP TRIGGER settings_notify ON settings;
DROP FUNCTION tenon_notify_setting();
DROP TABLE settings;
