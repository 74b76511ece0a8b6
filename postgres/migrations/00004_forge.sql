-- +goose Up
-- Forge installations seen in verified Forge Invocation Tokens. client_key
-- is the tenant key whose app_data the installation uses: the clientKey of
-- the linked Connect tenant, or 'forge:<cloudId>' for a site without one.
-- installation_id changes on every reinstall; cloud_id is the durable site.
CREATE TABLE forge_installations (
    installation_id  text COLLATE "C" NOT NULL PRIMARY KEY,
    app_id           text NOT NULL DEFAULT '',
    cloud_id         text NOT NULL DEFAULT '',
    client_key       text COLLATE "C" NOT NULL,
    api_base_url     text NOT NULL DEFAULT '',
    site_url         text NOT NULL DEFAULT '',
    product          text NOT NULL DEFAULT '',
    environment_type text NOT NULL DEFAULT '',
    environment_id   text NOT NULL DEFAULT '',
    first_seen       timestamptz NOT NULL,
    last_seen        timestamptz NOT NULL
);

CREATE INDEX forge_installations_client_key ON forge_installations (client_key, installation_id);
CREATE INDEX forge_installations_cloud_id ON forge_installations (cloud_id) WHERE cloud_id <> '';

-- Linking looks Connect tenants up by the site ids their installed payload
-- carried.
CREATE INDEX installations_installation_id ON installations (installation_id) WHERE installation_id <> '';
CREATE INDEX installations_cloud_id ON installations (cloud_id) WHERE cloud_id <> '';

-- +goose Down
DROP INDEX installations_cloud_id;
DROP INDEX installations_installation_id;
DROP TABLE forge_installations;
