package hostclient_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenon-dev/tenon/hostclient"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/postgres"
)

// pgSchemaDSN creates a schema of its own on TENON_TEST_POSTGRES_DSN for
// t, dropped at cleanup, and returns a DSN selecting it. Without a
// database the test is skipped, unless TENON_REQUIRE_POSTGRES=1.
func pgSchemaDSN(t *testing.T) string {
	t.Helper()
	base := os.Getenv("TENON_TEST_POSTGRES_DSN")
	skip := func(why string) {
		if os.Getenv("TENON_REQUIRE_POSTGRES") == "1" {
			t.Fatalf("PostgreSQL is required (TENON_REQUIRE_POSTGRES=1): %s", why)
		}
		t.Skipf("PostgreSQL tests skipped: %s", why)
	}
	if base == "" {
		skip("TENON_TEST_POSTGRES_DSN is not set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		skip("cannot connect: " + err.Error())
	}
	defer conn.Close(ctx)
	var b [8]byte
	rand.Read(b[:])
	schema := "tenon_test_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, base); err == nil {
			conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			conn.Close(ctx)
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema
}

// TestSimulationTwoNodesOnPostgres: the simulated hour with the calls
// spread over two nodes that share one PostgreSQL store. Together they
// stay within the one pool — the other tenants keep their share, and
// after a global-quota 429 neither node sends anything until the reset —
// while writing to the database at most once a simulated second each.
func TestSimulationTwoNodesOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates an hour of 3 570 calls")
	}
	dsn := pgSchemaDSN(t)
	kr, err := keyring.New([]byte(strings.Repeat("k", keyring.KeySize)))
	if err != nil {
		t.Fatal(err)
	}
	clock := &simClock{}
	var stores [2]*postgres.Store
	for i := range stores {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		stores[i], err = postgres.Open(ctx, dsn, postgres.Options{SecretBox: kr, Now: clock.Now})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	f, ins := simFake(t, clock, 100)
	f.SetRateLimits(simLimits)
	var recs [2]*simRecorder
	var clients []*hostclient.Client
	for i, name := range []string{"node-a", "node-b"} {
		recs[i] = &simRecorder{}
		clients = append(clients, simClient(clock, recs[i], hostclient.BudgetPolicy{Store: stores[i], Node: name}))
	}
	res := simulate(t, clock, ins, clients)
	all := append(recs[0].sent(), recs[1].sent()...)
	t.Logf("two nodes: others %d/%d (%.1f %%), busy tenant %d/%d, requests sent %d (node a %d, node b %d), fake charged %d of %d points",
		res.othersOK, res.othersAll, 100*res.othersRatio(), res.burstOK, res.burstAll, len(all),
		len(recs[0].sent()), len(recs[1].sent()), f.RateLimitStats().Points, simLimits.GlobalPoints)
	if r := res.othersRatio(); r < 0.8 {
		t.Errorf("%.1f %% of the other tenants' calls succeeded, want at least 80 %%", 100*r)
	}
	if res.burstOK >= res.burstAll/2 {
		t.Errorf("the busy tenant got %d of %d calls through", res.burstOK, res.burstAll)
	}
	st := f.RateLimitStats()
	if n := st.Refused["quota-global-based"]; n > 2 {
		t.Errorf("the product refused %d calls for the spent pool; the nodes kept calling after it was spent", n)
	}
	for i, rec := range recs {
		checkSilentAfterGlobal429(t, rec.sent(), simHour.Add(time.Hour))
		if g := clients[i].Resilience().Governor().Budget("jira"); g.Nodes != 2 {
			t.Errorf("node %d sees %d nodes, want 2", i, g.Nodes)
		}
	}
}
