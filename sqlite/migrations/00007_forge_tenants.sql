-- +goose Up
-- A Forge installation is a tenant with a lifecycle of its own: Forge's
-- installed, upgraded and uninstall signals and the reconciliation job
-- set its state. Rows recorded before this version were seen in verified
-- invocations, so they start active, installed when first seen.
ALTER TABLE forge_installations ADD COLUMN state TEXT NOT NULL DEFAULT 'active';
ALTER TABLE forge_installations ADD COLUMN app_version TEXT NOT NULL DEFAULT '';
ALTER TABLE forge_installations ADD COLUMN installed_at TEXT;
ALTER TABLE forge_installations ADD COLUMN upgraded_at TEXT;
ALTER TABLE forge_installations ADD COLUMN uninstalled_at TEXT;

CREATE INDEX forge_installations_active ON forge_installations (installation_id) WHERE state = 'active';

-- The Forge installation that replaced a Connect tenant on its site.
ALTER TABLE installations ADD COLUMN superseded_by TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE installations DROP COLUMN superseded_by;
DROP INDEX forge_installations_active;
ALTER TABLE forge_installations DROP COLUMN uninstalled_at;
ALTER TABLE forge_installations DROP COLUMN upgraded_at;
ALTER TABLE forge_installations DROP COLUMN installed_at;
ALTER TABLE forge_installations DROP COLUMN app_version;
ALTER TABLE forge_installations DROP COLUMN state;
