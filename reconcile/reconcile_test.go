package reconcile_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/fakeatlassian"
	"github.com/tenon-dev/tenon/hostclient"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/reconcile"
	"github.com/tenon-dev/tenon/sqlite"
)

var at = time.Date(2026, 12, 3, 4, 0, 0, 0, time.UTC)

// counting is the real client, with the number of checks under way at
// once recorded.
type counting struct {
	c       *hostclient.Client
	mu      sync.Mutex
	now, hi int
}

func (k *counting) ForgeInstallationDetails(ctx context.Context, id string) (*hostclient.ForgeInstallationDetails, error) {
	k.mu.Lock()
	k.now++
	k.hi = max(k.hi, k.now)
	k.mu.Unlock()
	defer func() { k.mu.Lock(); k.now--; k.mu.Unlock() }()
	return k.c.ForgeInstallationDetails(ctx, id)
}

type world struct {
	fake  *fakeatlassian.Fake
	sites []*fakeatlassian.Site
	ids   []string
	store *sqlite.Store
	check *counting
}

// newWorld installs the Forge app on n sites of a fake Atlassian and
// records each installation in a store, with a cached system token for
// the first withToken of them.
func newWorld(t *testing.T, n, withToken int) *world {
	t.Helper()
	f := fakeatlassian.New(fakeatlassian.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := f.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	kr, err := keyring.New(bytes.Repeat([]byte{3}, keyring.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(filepath.Join(t.TempDir(), "tenon.db"), sqlite.Options{SecretBox: kr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	w := &world{fake: f, store: store}
	ctx := context.Background()
	for i := range n {
		site, err := f.AddSite(fakeatlassian.SiteOptions{Name: "site" + string(rune('a'+i)), Product: fakeatlassian.ProductJira})
		if err != nil {
			t.Fatal(err)
		}
		inst, err := f.InstallForge(site, fakeatlassian.ForgeInstallOptions{RemoteBaseURL: "http://127.0.0.1:9/r"})
		if err != nil {
			t.Fatal(err)
		}
		in := &tenon.ForgeInstallation{InstallationID: inst.InstallationID, AppID: inst.AppID, CloudID: inst.CloudID,
			APIBaseURL: inst.APIBaseURL, Environment: tenon.ForgeEnvironment{Type: inst.EnvironmentType, ID: inst.EnvironmentID}}
		if _, _, err := store.ForgeInstalled(ctx, in, false, false, at); err != nil {
			t.Fatal(err)
		}
		if i < withToken {
			sys, _, err := f.ForgeTokens(site, "", "")
			if err != nil {
				t.Fatal(err)
			}
			if err := store.PutToken(ctx, tenon.ForgeSystemTokenKey(inst.InstallationID), sys, time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		w.sites, w.ids = append(w.sites, site), append(w.ids, inst.InstallationID)
	}
	w.check = &counting{c: hostclient.New("", hostclient.Options{
		Tokens: store, Forge: hostclient.ForgeOptions{Installations: store, AllowHTTP: true},
		Policy: hostclient.Policy{Sleep: func(context.Context, time.Duration) error { return nil }, Rand: func() float64 { return 0 }},
	})}
	return w
}

func (w *world) run(t *testing.T, concurrency int) reconcile.Report {
	t.Helper()
	rep, err := reconcile.Run(context.Background(), reconcile.Options{
		Store: w.store, Checker: w.check, Concurrency: concurrency, Now: func() time.Time { return at.Add(time.Hour) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func (w *world) states(t *testing.T) []tenon.ForgeState {
	t.Helper()
	var out []tenon.ForgeState
	for _, id := range w.ids {
		in, err := w.store.ForgeInstallation(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, in.State)
	}
	return out
}

func TestReconcileMarksOnlyGoneInstallations(t *testing.T) {
	w := newWorld(t, 3, 2) // a: live, b: uninstalled in Forge, c: no cached token
	if err := w.fake.UninstallForge(w.sites[1], ""); err != nil {
		t.Fatal(err)
	}
	all := []tenon.ForgeState{tenon.ForgeActive, tenon.ForgeActive, tenon.ForgeActive}

	// An outage or a rate limit never marks anything.
	w.fake.SetOutage(true)
	if rep := w.run(t, 2); rep.Checked != 3 || rep.Unknown != 2 || rep.NoToken != 1 || rep.Gone != 0 {
		t.Errorf("outage: %v", rep)
	}
	w.fake.SetOutage(false)
	w.fake.RateLimitNext(1000, 0)
	if rep := w.run(t, 2); rep.Unknown != 2 || rep.Gone != 0 {
		t.Errorf("rate limited: %v", rep)
	}
	w.fake.RateLimitNext(0, 0)
	if got := w.states(t); !equal(got, all) {
		t.Fatalf("states after failed runs: %v", got)
	}

	rep := w.run(t, 2)
	if rep.Checked != 3 || rep.Live != 1 || rep.Gone != 1 || rep.NoToken != 1 || rep.Unknown != 0 ||
		len(rep.GoneIDs) != 1 || rep.GoneIDs[0] != w.ids[1] {
		t.Errorf("report: %v %v", rep, rep.GoneIDs)
	}
	want := []tenon.ForgeState{tenon.ForgeActive, tenon.ForgeUninstalled, tenon.ForgeActive}
	if got := w.states(t); !equal(got, want) {
		t.Errorf("states: %v, want %v", got, want)
	}
	gone, _ := w.store.ForgeInstallation(context.Background(), w.ids[1])
	if !gone.UninstalledAt.Equal(at.Add(time.Hour)) {
		t.Errorf("UninstalledAt %v", gone.UninstalledAt)
	}
	// The next run asks only about the active ones.
	if rep := w.run(t, 2); rep.Checked != 2 || rep.Gone != 0 {
		t.Errorf("second run: %v", rep)
	}
}

func TestReconcileBoundsConcurrency(t *testing.T) {
	w := newWorld(t, 6, 6)
	w.fake.SetLatency(20 * time.Millisecond) // lets checks overlap
	rep := w.run(t, 2)
	if rep.Checked != 6 || rep.Live != 6 {
		t.Errorf("report: %v", rep)
	}
	if w.check.hi > 2 {
		t.Errorf("%d checks at once, limit 2", w.check.hi)
	}
	if _, err := reconcile.Run(context.Background(), reconcile.Options{Store: w.store}); err == nil {
		t.Error("Run without a Checker was accepted")
	}
}

func equal(a, b []tenon.ForgeState) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
