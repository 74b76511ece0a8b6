package e2e_test

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/examples/checklist"
	"github.com/tenon-dev/tenon/fakeatlassian"
	"github.com/tenon-dev/tenon/hostclient"
	"github.com/tenon-dev/tenon/reconcile"
)

// Reconciliation on a served backend: installations recorded from Forge's
// calls, one of them uninstalled without a word to the app, on both
// stores.

func TestForgeReconcileSQLite(t *testing.T) {
	testForgeReconcile(t, func(t *testing.T, dir string) string { return filepath.Join(dir, "tenon.db") })
}

func TestForgeReconcilePostgreSQL(t *testing.T) { testForgeReconcile(t, postgresDB) }

func testForgeReconcile(t *testing.T, db func(*testing.T, string) string) {
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	e := newForgeEnv(t, db, func(o *forgeEnvOptions) { o.now, o.forgeOnly = clk.Now, true })
	ctx := context.Background()
	fs := e.backend.Store.(tenon.ForgeLifecycleStore)
	var ids []string
	var sites []*fakeatlassian.Site
	for _, name := range []string{"stays", "leaves"} {
		site := e.addSite(name, fakeatlassian.ProductJira)
		inst, err := e.fake.InstallForge(site, fakeatlassian.ForgeInstallOptions{RemoteBaseURL: e.appURL})
		if err != nil {
			t.Fatal(err)
		}
		// Forge's installed event records the installation and caches
		// its system token.
		if r, err := e.fake.SendForgeLifecycleEvent(ctx, site, fakeatlassian.ForgeLifecycleOptions{Path: checklist.ForgeLifecyclePath, ModuleKey: "checklist-lifecycle"}); err != nil || r.Status != http.StatusNoContent {
			t.Fatalf("installed on %s: %+v %v", name, r, err)
		}
		ids, sites = append(ids, inst.InstallationID), append(sites, site)
	}
	if err := e.fake.UninstallForge(sites[1], ""); err != nil {
		t.Fatal(err)
	}
	client := hostclient.New("", hostclient.Options{
		Now: clk.Now, Tokens: e.backend.Store.(tenon.TokenCache),
		Forge: hostclient.ForgeOptions{Installations: fs, AllowHTTP: true},
	})
	run := func() reconcile.Report {
		t.Helper()
		rep, err := reconcile.Run(ctx, reconcile.Options{Store: fs, Checker: client, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	state := func(id string) tenon.ForgeState {
		in, err := fs.ForgeInstallation(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return in.State
	}

	// Forge unavailable: nothing is marked.
	e.fake.SetOutage(true)
	if rep := run(); rep.Checked != 2 || rep.Unknown != 2 || rep.Gone != 0 {
		t.Errorf("outage: %v", rep)
	}
	e.fake.SetOutage(false)
	if state(ids[0]) != tenon.ForgeActive || state(ids[1]) != tenon.ForgeActive {
		t.Fatal("a failed run marked an installation")
	}
	// The breaker the outage opened closes after its cooldown.
	clk.Advance(5 * time.Minute)
	rep := run()
	if rep.Live != 1 || rep.Gone != 1 || len(rep.GoneIDs) != 1 || rep.GoneIDs[0] != ids[1] {
		t.Errorf("report: %v %v", rep, rep.GoneIDs)
	}
	if state(ids[0]) != tenon.ForgeActive || state(ids[1]) != tenon.ForgeUninstalled {
		t.Errorf("states: %s %s", state(ids[0]), state(ids[1]))
	}
}
