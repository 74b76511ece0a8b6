-- +goose Up
-- A Forge-only site's data is keyed by the site: 'forge:<cloudId>'.
-- Versions before this one keyed an installation whose tokens had not yet
-- named the site by 'forge:<installationId>'. Move those installations and
-- their data to the site key of the cloudId recorded since. A key the site
-- already holds keeps its value; the other copy stays under the old key,
-- so nothing is lost. Running it again changes nothing.
INSERT INTO app_data (client_key, key, value, updated_at)
SELECT 'forge:' || f.cloud_id, d.key, d.value, d.updated_at
FROM app_data d JOIN forge_installations f ON d.client_key = 'forge:' || f.installation_id
WHERE f.cloud_id <> '' AND f.client_key = 'forge:' || f.installation_id
ON CONFLICT (client_key, key) DO NOTHING;

DELETE FROM app_data WHERE EXISTS (
    SELECT 1 FROM forge_installations f, app_data c
    WHERE app_data.client_key = 'forge:' || f.installation_id
      AND f.cloud_id <> '' AND f.client_key = 'forge:' || f.installation_id
      AND c.client_key = 'forge:' || f.cloud_id AND c.key = app_data.key AND c.value = app_data.value);

UPDATE forge_installations SET client_key = 'forge:' || cloud_id
WHERE cloud_id <> '' AND client_key = 'forge:' || installation_id;

UPDATE forge_installations SET installed_at = first_seen WHERE installed_at IS NULL;

-- +goose Down
SELECT 1;
