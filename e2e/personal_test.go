package e2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/hostclient"
	"github.com/tenon-dev/tenon/personal"
	"github.com/tenon-dev/tenon/retention"
	"github.com/tenon-dev/tenon/storetest"
)

// reporter builds a reporting cycle on the backend's store, with clock c,
// as serve does on the leader.
func (e *env) reporter(c *storetest.Clock, hooks personal.Hooks, fault func(string) error) *personal.Reporter {
	e.t.Helper()
	st := e.backend.Store
	fs, _ := st.(tenon.ForgeStore)
	hc := hostclient.New(e.appKey, hostclient.Options{Tokens: st.(tenon.TokenCache),
		Forge: hostclient.ForgeOptions{Installations: fs, AllowHTTP: true}})
	r, err := personal.New(personal.Options{Store: st.(personal.Store), Client: hc, Forge: fs, Hooks: hooks, Now: c.Now, Fault: fault})
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func TestPersonalDataClosedAccountErasedInOneCycle(t *testing.T) {
	e := newEnv(t, envOptions{})
	site := e.addSite("pd", "jira")
	e.install(site)
	ctx := context.Background()
	ps := e.backend.Store.(tenon.PersonalDataStore)
	const n = 200 // three batches: 90, 90, 20
	for i := range n {
		if err := ps.TouchAccount(ctx, site.ClientKey, fmt.Sprintf("acc-%03d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ps.PutPersonal(ctx, site.ClientKey, "acc-007", "prefs/acc-007", json.RawMessage(`{"lang":"de"}`)); err != nil {
		t.Fatal(err)
	}
	e.fake.SetAccountStatus("acc-007", "closed")
	e.fake.SetAccountStatus("acc-150", "updated")
	e.fake.SetCyclePeriod(48 * time.Hour)
	e.fake.SetReportRateLimit(1, 2*time.Second)

	var erased, refreshed []string
	c := storetest.NewClock(time.Now().UTC().Truncate(time.Microsecond))
	r := e.reporter(c, personal.Hooks{
		Erase:   func(_ context.Context, _, id string) error { erased = append(erased, id); return nil },
		Refresh: func(_ context.Context, _, id string) error { refreshed = append(refreshed, id); return nil },
	}, nil)
	// The first request is rate limited: nothing is reported, the cycle
	// waits for Retry-After.
	if err := r.Step(ctx); err != nil {
		t.Fatalf("step while rate limited: %v", err)
	}
	if got := e.fake.AccountReports(); len(got) != 0 {
		t.Fatalf("reports while rate limited: %+v", got)
	}
	cyc, _ := ps.ReportCycle(ctx, site.ClientKey)
	if cyc.Cursor != "" || !cyc.NotBefore.After(c.Now()) {
		t.Fatalf("cycle after a 429: %+v", cyc)
	}
	if err := r.Step(ctx); err != nil { // before Retry-After: waits
		t.Fatal(err)
	}
	if got := e.fake.AccountReports(); len(got) != 0 {
		t.Fatalf("reported before Retry-After: %+v", got)
	}
	c.Advance(time.Minute + time.Second)
	if err := r.Step(ctx); err != nil {
		t.Fatal(err)
	}
	reports := e.fake.AccountReports()
	if len(reports) != 3 || len(reports[0].Accounts) != 90 || len(reports[2].Accounts) != 20 {
		t.Fatalf("reports = %d, want batches of 90, 90, 20", len(reports))
	}
	if fmt.Sprint(erased) != "[acc-007]" || fmt.Sprint(refreshed) != "[acc-150]" {
		t.Errorf("hooks: erased %v, refreshed %v", erased, refreshed)
	}
	if _, err := e.backend.Store.GetValue(ctx, site.ClientKey, "prefs/acc-007"); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("the closed account's value: %v, want ENOTFOUND", err)
	}
	accts, _ := ps.PersonalAccounts(ctx, site.ClientKey, "acc-006", 2)
	if len(accts) != 2 || accts[0].AccountID != "acc-008" {
		t.Errorf("inventory still names the closed account: %+v", accts)
	}
	as := e.backend.Store.(tenon.AuditStore)
	for _, action := range []string{tenon.AuditPersonalClosed, tenon.AuditPersonalUpdated, tenon.AuditCycleDone} {
		es, _ := as.AuditEntries(ctx, tenon.AuditFilter{ClientKey: site.ClientKey, Action: action})
		if len(es) != 1 {
			t.Errorf("audit %s: %+v", action, es)
		}
	}
	// The next cycle waits for the period the answer named.
	cyc, _ = ps.ReportCycle(ctx, site.ClientKey)
	if cyc.Period != 48*time.Hour || !cyc.StartedAt.IsZero() {
		t.Errorf("cycle after it ended: %+v", cyc)
	}
	c.Advance(47 * time.Hour)
	if err := r.Step(ctx); err != nil || len(e.fake.AccountReports()) != 3 {
		t.Errorf("reported again inside the period: %v, %d", err, len(e.fake.AccountReports()))
	}
	c.Advance(2 * time.Hour)
	if err := r.Step(ctx); err != nil || len(e.fake.AccountReports()) != 6 {
		t.Errorf("next cycle: %v, %d reports", err, len(e.fake.AccountReports()))
	}
}

func TestPersonalDataCrashResumesWithoutDoubleReport(t *testing.T) {
	for _, point := range []string{"sent", "answered"} {
		t.Run(point, func(t *testing.T) {
			e := newEnv(t, envOptions{}).withT(t)
			site := e.addSite("crash-"+point, "jira")
			e.install(site)
			ctx := context.Background()
			ps := e.backend.Store.(tenon.PersonalDataStore)
			for i := range 250 {
				if err := ps.TouchAccount(ctx, site.ClientKey, fmt.Sprintf("acc-%03d", i)); err != nil {
					t.Fatal(err)
				}
			}
			c := storetest.NewClock(time.Now().UTC().Truncate(time.Microsecond))
			batches := 0
			crash := errors.New("killed")
			first := e.reporter(c, personal.Hooks{}, func(p string) error {
				if p == point {
					batches++
					if batches == 2 {
						return crash
					}
				}
				return nil
			})
			if err := first.Step(ctx); !errors.Is(err, crash) {
				t.Fatalf("first node: %v, want the crash", err)
			}
			// Another node takes over with the store as the dead one left it.
			if err := e.reporter(c, personal.Hooks{}, nil).Step(ctx); err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for _, r := range e.fake.AccountReports() {
				for _, a := range r.Accounts {
					seen[a]++
				}
			}
			for a, k := range seen {
				if k > 1 {
					t.Errorf("%s reported %d times in one cycle", a, k)
				}
			}
			// The batch the crash cut is the only one left for the next
			// cycle: killed after sending, it reached Atlassian once;
			// killed before, it was not sent and waits.
			want := 250
			if point == "sent" {
				want = 160
			}
			if len(seen) != want {
				t.Errorf("accounts reported = %d, want %d", len(seen), want)
			}
		})
	}
}

func TestRetentionReinstallInsideWindowRestores(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	st := e.backend.Store
	day := 24 * time.Hour
	back, gone := e.addSite("back", "jira"), e.addSite("gone", "jira")
	e.install(back)
	e.install(gone)
	for _, k := range []string{back.ClientKey, gone.ClientKey} {
		if err := st.PutValue(ctx, k, "checklist", json.RawMessage(`{"items":1}`)); err != nil {
			t.Fatal(err)
		}
		if _, err := st.SetState(ctx, k, tenon.StateUninstalled); err != nil {
			t.Fatal(err)
		}
	}
	c := storetest.NewClock(time.Now().UTC())
	pg, err := retention.New(retention.Options{Store: st.(tenon.TenantPurger), Period: 30 * day, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	c.Advance(29 * day)
	if purged, err := pg.Step(ctx); err != nil || len(purged) != 0 {
		t.Fatalf("day 29: purged %v, %v", purged, err)
	}
	e.install(back) // reinstalled on day 29
	if v, err := st.GetValue(ctx, back.ClientKey, "checklist"); err != nil || string(v) != `{"items":1}` {
		t.Errorf("reinstalled tenant's data = %s, %v", v, err)
	}
	c.Advance(2 * day)
	purged, err := pg.Step(ctx)
	if err != nil || fmt.Sprint(purged) != fmt.Sprint([]string{gone.ClientKey}) {
		t.Fatalf("day 31: purged %v, %v, want only %s", purged, err, gone.ClientKey)
	}
	if _, err := st.Installation(ctx, gone.ClientKey); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("day 31: the gone tenant: %v, want ENOTFOUND", err)
	}
	if _, err := st.GetValue(ctx, gone.ClientKey, "checklist"); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("day 31: the gone tenant's data: %v", err)
	}
	if in, err := st.Installation(ctx, back.ClientKey); err != nil || in.State != tenon.StateEnabled {
		t.Errorf("the reinstalled tenant: %+v, %v", in, err)
	}
	es, _ := st.(tenon.AuditStore).AuditEntries(ctx, tenon.AuditFilter{ClientKey: gone.ClientKey, Action: tenon.AuditTenantPurged})
	if len(es) != 1 || es[0].Actor != "retention" {
		t.Errorf("purge audit = %+v", es)
	}
}
