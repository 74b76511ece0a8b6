package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
)

// Migration 8 moves a Forge-only installation keyed by its installationId
// (what versions before it stored when no token had named the site yet)
// to its site's key, with its data; a value the site key already holds
// wins and the other copy stays.
func TestMigrationForgeSiteKeys(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tenon.db")
	now := func() time.Time { return time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC) }
	s := MustOpenPath(t, path, now)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	const inst = "ari:cloud:ecosystem::installation/legacy"
	old, site := "forge:"+inst, "forge:cloud-1"
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO forge_installations (installation_id, cloud_id, client_key, first_seen, last_seen)
			VALUES ('` + inst + `', 'cloud-1', '` + old + `', '2026-04-01T00:00:00.000000Z', '2026-04-02T00:00:00.000000Z')`,
		`INSERT INTO app_data VALUES ('` + old + `', 'moves', X'2231' || X'22', '2026-04-01T00:00:00.000000Z')`,
		`INSERT INTO app_data VALUES ('` + old + `', 'both', CAST('"old"' AS BLOB), '2026-04-01T00:00:00.000000Z')`,
		`INSERT INTO app_data VALUES ('` + site + `', 'both', CAST('"site"' AS BLOB), '2026-04-01T00:00:00.000000Z')`,
		`UPDATE forge_installations SET installed_at = NULL`,
		// Goose runs migrations in order only: undo the later ones
		// too, so 8 runs again and they follow it.
		`DROP INDEX jobs_client_key`, `DROP INDEX installations_uninstalled`, `DROP INDEX token_cache_owner`,
		`ALTER TABLE token_cache DROP COLUMN account`, `ALTER TABLE token_cache DROP COLUMN client_key`,
		`DROP TABLE audit`, `DROP TABLE report_cycles`, `DROP TABLE personal_values`, `DROP TABLE personal_accounts`,
		`DELETE FROM tenon_migrations WHERE version_id >= 8`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	s = MustOpenPath(t, path, now)
	rec, err := s.ForgeInstallation(ctx, inst)
	if err != nil || rec.ClientKey != site || rec.State != tenon.ForgeActive {
		t.Fatalf("migrated installation %+v, %v", rec, err)
	}
	if !rec.InstalledAt.Equal(time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("InstalledAt %v, want the first sighting", rec.InstalledAt)
	}
	for _, c := range []struct{ key, k, want string }{
		{site, "moves", `"1"`}, {site, "both", `"site"`}, {old, "both", `"old"`}, {old, "moves", ""},
	} {
		v, err := s.GetValue(ctx, c.key, c.k)
		switch {
		case c.want == "" && tenon.ErrorCode(err) == tenon.ENOTFOUND:
		case err != nil || string(v) != c.want:
			t.Errorf("%s/%s = %s, %v; want %s", c.key, c.k, v, err, c.want)
		}
	}
}
