package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenon-dev/tenon"
)

// Migration 8 moves a Forge-only installation keyed by its installationId
// to its site's key, with its data; a value the site key already holds
// wins and the other copy stays. See the SQLite twin.
func TestMigrationForgeSiteKeys(t *testing.T) {
	ctx := context.Background()
	dsn := MustSchema(t)
	now := func() time.Time { return time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC) }
	MustOpenDSN(t, dsn, now).Close()
	const inst = "ari:cloud:ecosystem::installation/legacy"
	old, site := "forge:"+inst, "forge:cloud-1"
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO forge_installations (installation_id, cloud_id, client_key, first_seen, last_seen)
			VALUES ('` + inst + `', 'cloud-1', '` + old + `', '2026-04-01T00:00:00Z', '2026-04-02T00:00:00Z')`,
		`INSERT INTO app_data VALUES ('` + old + `', 'moves', '"1"', now())`,
		`INSERT INTO app_data VALUES ('` + old + `', 'both', '"old"', now())`,
		`INSERT INTO app_data VALUES ('` + site + `', 'both', '"site"', now())`,
		`UPDATE forge_installations SET installed_at = NULL`,
		// Goose runs migrations in order only: undo the later ones
		// too, so 8 runs again and they follow it.
		`DROP INDEX jobs_client_key`, `DROP INDEX installations_uninstalled`, `DROP INDEX token_cache_owner`,
		`ALTER TABLE token_cache DROP COLUMN account`, `ALTER TABLE token_cache DROP COLUMN client_key`,
		`DROP TABLE audit`, `DROP TABLE report_cycles`, `DROP TABLE personal_values`, `DROP TABLE personal_accounts`,
		`DROP TABLE rate_budget_nodes`, `DROP TABLE rate_budgets`,
		`DELETE FROM tenon_migrations WHERE version_id >= 8`,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	conn.Close(ctx)

	s := MustOpenDSN(t, dsn, now)
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
