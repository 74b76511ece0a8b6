-- +goose Up
-- Named operational settings shared by every process using this file:
-- maintenance mode, notices. Values are JSON kept as BLOBs, byte for byte.
CREATE TABLE settings (
    name       TEXT NOT NULL PRIMARY KEY,
    value      BLOB NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;

-- +goose Down
DROP TABLE settings;
