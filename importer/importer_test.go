package importer_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"
	_ "modernc.org/sqlite"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/importer"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/sqlite"
)

const (
	appKey  = "tenon-checklist"
	tenant1 = "ace-fixture-1-0000-4000-8000-000000000001"
)

func aceFixture(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "ace", "ace.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ace.sqlite")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func tenonStore(t *testing.T) *sqlite.Store {
	t.Helper()
	kr, err := keyring.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "tenon.db"), sqlite.Options{SecretBox: kr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func read(t *testing.T, src importer.Source) ([]importer.Record, []importer.Problem) {
	t.Helper()
	defer src.Close()
	recs, probs, err := src.Read(context.Background())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return recs, probs
}

func checkFixtureTenants(t *testing.T, recs []importer.Record) {
	t.Helper()
	want := []tenon.State{tenon.StateEnabled, tenon.StateDisabled, tenon.StateUninstalled}
	if len(recs) != len(want) {
		t.Fatalf("%d tenants, want %d", len(recs), len(want))
	}
	for i, r := range recs {
		in := r.Installation
		if in.State != want[i] || in.SharedSecret == "" || in.AppKey != appKey {
			t.Errorf("tenant %d: %s state %s key %s", i, in.ClientKey, in.State, in.AppKey)
		}
	}
	if recs[0].Installation.InstallationID == "" {
		t.Errorf("tenant 1 lost its Forge installationId")
	}
	data := map[string]string{}
	for _, kv := range recs[0].Data {
		data[kv.Key] = string(kv.Value)
	}
	if data["counter"] != "42" || data["greeting"] != `"hello from ACE"` || data["boardConfig"] != `{"columns":["To Do","Done"],"wip":3}` {
		t.Errorf("tenant 1 data = %v", data)
	}
}

func TestACESQLite(t *testing.T) {
	src, err := importer.OpenACE(context.Background(), aceFixture(t), importer.Options{AppKey: appKey, WithSettings: true})
	if err != nil {
		t.Fatal(err)
	}
	recs, probs := read(t, src)
	checkFixtureTenants(t, recs)
	if len(probs) != 1 || probs[0].Where != "ForgeSettings id 1" {
		t.Errorf("problems = %+v, want the one ForgeSettings row", probs)
	}
}

// TestACEPostgres loads the PostgreSQL dump of ACE's store into a
// database of its own on the test server.
func TestACEPostgres(t *testing.T) {
	dsn := os.Getenv("TENON_TEST_POSTGRES_DSN")
	if dsn == "" {
		if os.Getenv("TENON_REQUIRE_POSTGRES") != "" {
			t.Fatal("TENON_REQUIRE_POSTGRES is set but TENON_TEST_POSTGRES_DSN is not")
		}
		t.Skip("set TENON_TEST_POSTGRES_DSN to run against PostgreSQL")
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("ace_import_%d", randInt(t, 1<<30))
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		admin.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
		admin.Close()
	})
	dbDSN := strings.Replace(dsn, "/test?", "/"+name+"?", 1)
	db, err := sql.Open("pgx", dbDSN)
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join("..", "testdata", "ace", "postgres.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(string(script)); err != nil {
		t.Fatalf("load the dump: %v", err)
	}
	db.Close()
	src, err := importer.OpenACE(context.Background(), dbDSN, importer.Options{AppKey: appKey, WithSettings: true})
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := read(t, src)
	checkFixtureTenants(t, recs)

	// A database that does not exist is named in the error.
	_, err = importer.OpenACE(context.Background(), strings.Replace(dsn, "/test?", "/no_such_db_here?", 1), importer.Options{})
	if err == nil || !strings.Contains(err.Error(), "no_such_db_here") || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing database: %v", err)
	}
}

// TestACERedis loads the keys of ACE's Redis store into a database index
// of its own (1-15) and flushes only that index.
func TestACERedis(t *testing.T) {
	addr := "127.0.0.1:6379"
	db := int(randInt(t, 15)) + 1
	c := redis.NewClient(&redis.Options{Addr: addr, DB: db})
	ctx := context.Background()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		if os.Getenv("TENON_REQUIRE_REDIS") != "" {
			t.Fatalf("Redis at %s: %v", addr, err)
		}
		t.Skipf("no Redis at %s: %v", addr, err)
	}
	if n, _ := c.DBSize(ctx).Result(); n != 0 {
		c.Close()
		t.Skipf("Redis database %d is in use", db)
	}
	t.Cleanup(func() {
		if err := c.FlushDB(context.Background()).Err(); err != nil {
			t.Errorf("flush Redis database %d: %v", db, err)
		}
		c.Close()
	})
	f, err := os.Open(filepath.Join("..", "testdata", "ace", "redis.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kv struct{ Key, Value string }
		if err := json.Unmarshal(sc.Bytes(), &kv); err != nil {
			t.Fatal(err)
		}
		c.Set(ctx, kv.Key, kv.Value, 0)
	}
	src, err := importer.OpenACE(ctx, fmt.Sprintf("redis://%s/%d", addr, db), importer.Options{AppKey: appKey, WithSettings: true})
	if err != nil {
		t.Fatal(err)
	}
	recs, probs := read(t, src)
	checkFixtureTenants(t, recs)
	if len(probs) != 1 || !strings.HasPrefix(probs[0].Where, "forge:") {
		t.Errorf("problems = %+v, want the one Forge key", probs)
	}
}

func TestRedisUnreachable(t *testing.T) {
	_, err := importer.OpenACE(context.Background(), "redis://127.0.0.1:1/3", importer.Options{})
	if err == nil || !strings.Contains(err.Error(), "cannot reach Redis at redis://127.0.0.1:1/3") {
		t.Fatalf("err = %v", err)
	}
}

func TestMissingSource(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope.sqlite")
	_, err := importer.OpenACE(context.Background(), p, importer.Options{})
	if err == nil || !strings.Contains(err.Error(), "no SQLite database at "+p) {
		t.Fatalf("err = %v", err)
	}
	if _, statErr := os.Stat(p); statErr == nil {
		t.Errorf("opening a missing source created %s", p)
	}
}

func TestMissingTable(t *testing.T) {
	p := aceFixture(t)
	for _, kind := range []string{"ace", "acsb"} {
		var src importer.Source
		var err error
		if kind == "ace" {
			src, err = importer.OpenACE(context.Background(), p, importer.Options{Table: "Settings"})
		} else {
			src, err = importer.OpenACSB(context.Background(), p, importer.Options{AppKey: appKey})
		}
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = src.Read(context.Background())
		src.Close()
		if err == nil || !strings.Contains(err.Error(), "has no table") {
			t.Errorf("%s: err = %v", kind, err)
		}
	}
}

// TestBadRows: malformed rows and a clientInfo without a sharedSecret are
// problems, and a plan with problems is not clean.
func TestBadRows(t *testing.T) {
	p := aceFixture(t)
	db, err := sql.Open("sqlite", p)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO AddonSettings (clientKey, key, val) VALUES ('bad-json', 'clientInfo', '{not json')`,
		`INSERT INTO AddonSettings (clientKey, key, val) VALUES ('no-secret', 'clientInfo', '{"key":"tenon-checklist","clientKey":"no-secret","baseUrl":"https://x.atlassian.net"}')`,
		`INSERT INTO AddonSettings (clientKey, key, val) VALUES (NULL, 'clientInfo', '{}')`,
		`INSERT INTO AddonSettings (clientKey, key, val) VALUES ('other-key', 'clientInfo', '{"key":"tenon-checklist","clientKey":"someone-else","sharedSecret":"s","baseUrl":"https://x.atlassian.net"}')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	src, err := importer.OpenACE(context.Background(), p, importer.Options{AppKey: appKey})
	if err != nil {
		t.Fatal(err)
	}
	recs, probs := read(t, src)
	if len(recs) != 3 {
		t.Errorf("%d tenants, want the fixture's 3", len(recs))
	}
	said := func(ck, want string) bool {
		for _, pr := range probs {
			if pr.ClientKey == ck && strings.Contains(pr.Reason, want) {
				return true
			}
		}
		return false
	}
	for ck, want := range map[string]string{
		"bad-json":  "not a JSON object",
		"no-secret": "has no sharedSecret",
		"":          "no clientKey",
		"other-key": "not the row's clientKey",
	} {
		if !said(ck, want) {
			t.Errorf("no problem of %q says %q: %+v", ck, want, probs)
		}
	}
	st := tenonStore(t)
	rep, err := importer.Plan(context.Background(), st, p, recs, probs)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Clean() {
		t.Errorf("a plan with problems is clean")
	}
}

// TestNewerTenonRecord: a tenant tenon holds with another secret (a
// reinstall after the switch) is a conflict and is never overwritten, for
// an undated source (ACE) and a dated one older than tenon's record.
func TestNewerTenonRecord(t *testing.T) {
	ctx := context.Background()
	st := tenonStore(t)
	src, err := importer.OpenACE(ctx, aceFixture(t), importer.Options{AppKey: appKey})
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := read(t, src)
	mine := recs[0].Installation
	mine.SharedSecret = "a-newer-secret-from-a-reinstall-on-tenon-0123456789"
	mine.Payload = nil
	if err := st.SaveInstallation(ctx, &mine); err != nil {
		t.Fatal(err)
	}
	before, _ := st.Installation(ctx, tenant1)
	for _, dated := range []bool{false, true} {
		rs := append([]importer.Record(nil), recs...)
		if dated {
			rs[0].Installation.UpdatedAt = before.UpdatedAt.Add(-time.Hour)
		}
		rep, err := importer.Plan(ctx, st, "fixture", rs, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Count(importer.Conflict) != 1 || rep.Steps[0].Action != importer.Conflict || rep.Clean() {
			t.Fatalf("dated %v: steps %+v, want tenant 1 a conflict", dated, rep.Steps[0].Action)
		}
		if _, err := importer.Apply(ctx, st, rep, nil); err != nil {
			t.Fatal(err)
		}
		after, _ := st.Installation(ctx, tenant1)
		if after.SharedSecret != before.SharedSecret || !after.UpdatedAt.Equal(before.UpdatedAt) {
			t.Fatalf("dated %v: the newer tenon record was overwritten", dated)
		}
	}
}

func randInt(t *testing.T, n int64) int64 {
	v, err := rand.Int(rand.Reader, big.NewInt(n))
	if err != nil {
		t.Fatal(err)
	}
	return v.Int64()
}
