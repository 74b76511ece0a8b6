package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
)

// testForgeLifecycle runs the tenon.ForgeLifecycleStore cases; a store
// without the capability skips them.
func (s *suite) testForgeLifecycle(t *testing.T) {
	cases := []struct {
		name string
		fn   func(t *testing.T, st tenon.Store, fs tenon.ForgeLifecycleStore, c *Clock)
	}{
		{"InstalledThenUpgraded", s.testForgeInstalledUpgraded},
		{"Supersedes", s.testForgeSupersedes},
		{"Uninstalled", s.testForgeUninstalled},
		{"ActivePages", s.testForgeActivePages},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, c := s.store(t)
			fs, ok := st.(tenon.ForgeLifecycleStore)
			if !ok {
				t.Skip("the store does not implement tenon.ForgeLifecycleStore")
			}
			tc.fn(t, st, fs, c)
		})
	}
}

func mustForgeInstalled(t *testing.T, fs tenon.ForgeLifecycleStore, in *tenon.ForgeInstallation, upgrade, supersede bool, at time.Time) (bool, []string) {
	t.Helper()
	changed, superseded, err := fs.ForgeInstalled(context.Background(), in, upgrade, supersede, at)
	if err != nil {
		t.Fatalf("ForgeInstalled(%s): %v", in.InstallationID, err)
	}
	return changed, superseded
}

func (s *suite) testForgeInstalledUpgraded(t *testing.T, st tenon.Store, fs tenon.ForgeLifecycleStore, c *Clock) {
	t0 := c.Now()
	in := NewForgeInstallation(forgeInst1, forgeCloud)
	in.AppVersion = "1.0.0"
	if changed, sup := mustForgeInstalled(t, fs, in, false, false, t0); !changed || len(sup) != 0 {
		t.Fatalf("first installed: changed %v, superseded %v", changed, sup)
	}
	got := mustForge(t, fs, forgeInst1)
	if got.State != tenon.ForgeActive || got.AppVersion != "1.0.0" || !got.UpgradedAt.IsZero() {
		t.Fatalf("after installed: %+v", got)
	}
	checkTime(t, "InstalledAt", got.InstalledAt, t0)
	if got.ClientKey != tenon.ForgeTenantKey(forgeCloud, "") {
		t.Errorf("tenant key %q, want the site's", got.ClientKey)
	}
	// Forge delivers again: nothing changes.
	c.Advance(time.Minute)
	again := NewForgeInstallation(forgeInst1, forgeCloud)
	again.AppVersion = "1.0.0"
	if changed, _ := mustForgeInstalled(t, fs, again, false, false, c.Now()); changed {
		t.Error("a repeated installed event reports a change")
	}
	c.Advance(time.Hour)
	up := NewForgeInstallation(forgeInst1, forgeCloud)
	up.AppVersion = "2.0.0"
	if changed, _ := mustForgeInstalled(t, fs, up, true, false, c.Now()); !changed {
		t.Error("an upgrade to a new version reports no change")
	}
	got = mustForge(t, fs, forgeInst1)
	if got.AppVersion != "2.0.0" {
		t.Errorf("after upgrade: version %q", got.AppVersion)
	}
	checkTime(t, "InstalledAt after upgrade", got.InstalledAt, t0)
	checkTime(t, "UpgradedAt", got.UpgradedAt, c.Now())
	if changed, _ := mustForgeInstalled(t, fs, up, true, false, c.Now().Add(time.Minute)); changed {
		t.Error("a repeated upgraded event reports a change")
	}
}

func (s *suite) testForgeSupersedes(t *testing.T, st tenon.Store, fs tenon.ForgeLifecycleStore, c *Clock) {
	ctx := context.Background()
	connectTenantOfSite(t, st)
	other := NewInstallation("tenant-b") // another site: untouched
	mustSave(t, st, other)
	in := NewForgeInstallation(forgeInst1, forgeCloud)
	changed, sup := mustForgeInstalled(t, fs, in, false, true, c.Now())
	if !changed || !slices.Equal(sup, []string{"tenant-a"}) {
		t.Fatalf("changed %v, superseded %v; want tenant-a", changed, sup)
	}
	if in.ClientKey != "tenant-a" {
		t.Errorf("the Forge installation uses tenant key %q, want the Connect tenant's", in.ClientKey)
	}
	a, err := st.Installation(ctx, "tenant-a")
	if err != nil || a.State != tenon.StateUninstalled || a.SupersededBy != forgeInst1 || a.UninstalledAt.IsZero() {
		t.Fatalf("Connect tenant after supersede: %+v, %v", a, err)
	}
	checkValue(t, st, "tenant-a", "connect-only", `"from connect"`)
	if b, err := st.Installation(ctx, "tenant-b"); err != nil || b.State != tenon.StateEnabled || b.SupersededBy != "" {
		t.Errorf("another site's tenant: %+v, %v", b, err)
	}
	// Again: already superseded, nothing to report.
	if _, sup := mustForgeInstalled(t, fs, NewForgeInstallation(forgeInst1, forgeCloud), false, true, c.Now()); len(sup) != 0 {
		t.Errorf("second delivery superseded %v", sup)
	}
	// The Connect app installed again clears the mark.
	mustSave(t, st, func() *tenon.Installation {
		in := NewInstallation("tenant-a")
		in.InstallationID, in.CloudID = "", forgeCloud
		return in
	}())
	if a, err := st.Installation(ctx, "tenant-a"); err != nil || a.SupersededBy != "" || a.State != tenon.StateEnabled {
		t.Errorf("Connect tenant reinstalled: %+v, %v", a, err)
	}
}

func (s *suite) testForgeUninstalled(t *testing.T, st tenon.Store, fs tenon.ForgeLifecycleStore, c *Clock) {
	ctx := context.Background()
	if _, err := fs.ForgeUninstalled(ctx, forgeInst1, c.Now()); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Fatalf("uninstalling an unknown installation: %v, want ENOTFOUND", err)
	}
	mustForgeInstalled(t, fs, NewForgeInstallation(forgeInst1, forgeCloud), false, false, c.Now())
	mustPut(t, st, tenon.ForgeTenantKey(forgeCloud, ""), "k", `"kept"`)
	c.Advance(time.Hour)
	at := c.Now()
	if changed, err := fs.ForgeUninstalled(ctx, forgeInst1, at); err != nil || !changed {
		t.Fatalf("ForgeUninstalled: %v, %v", changed, err)
	}
	if changed, err := fs.ForgeUninstalled(ctx, forgeInst1, at.Add(time.Minute)); err != nil || changed {
		t.Fatalf("ForgeUninstalled again: %v, %v; want no change", changed, err)
	}
	got := mustForge(t, fs, forgeInst1)
	if got.State != tenon.ForgeUninstalled || got.Active() {
		t.Fatalf("after uninstall: %+v", got)
	}
	checkTime(t, "UninstalledAt", got.UninstalledAt, at)
	// An installed event for the uninstalled installation is refused and
	// changes nothing; the site's data stays.
	_, _, err := fs.ForgeInstalled(ctx, NewForgeInstallation(forgeInst1, forgeCloud), false, false, c.Now())
	if tenon.ErrorCode(err) != tenon.ECONFLICT {
		t.Fatalf("installed after uninstall: %v, want ECONFLICT", err)
	}
	if got := mustForge(t, fs, forgeInst1); got.State != tenon.ForgeUninstalled {
		t.Errorf("state after the refused event: %s", got.State)
	}
	checkValue(t, st, tenon.ForgeTenantKey(forgeCloud, ""), "k", `"kept"`)
	// A reinstall (new installationId) of the same site finds the data.
	re := NewForgeInstallation(forgeInst2, forgeCloud)
	mustForgeInstalled(t, fs, re, false, false, c.Now())
	if re.ClientKey != tenon.ForgeTenantKey(forgeCloud, "") {
		t.Errorf("reinstall uses tenant key %q", re.ClientKey)
	}
}

func (s *suite) testForgeActivePages(t *testing.T, st tenon.Store, fs tenon.ForgeLifecycleStore, c *Clock) {
	ctx := context.Background()
	ids := []string{forgeInst1, forgeInst2, "ari:cloud:ecosystem::installation/ffffffff-0000-4000-8000-000000000000"}
	for i, id := range ids {
		mustForgeInstalled(t, fs, NewForgeInstallation(id, forgeCloud[:len(forgeCloud)-1]+string(rune('a'+i))), false, false, c.Now())
	}
	if _, err := fs.ForgeUninstalled(ctx, forgeInst2, c.Now()); err != nil {
		t.Fatal(err)
	}
	var got []string
	after := ""
	for {
		page, err := fs.ActiveForgeInstallations(ctx, after, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		got = append(got, page[0].InstallationID)
		after = page[0].InstallationID
	}
	if want := []string{ids[0], ids[2]}; !slices.Equal(got, want) {
		t.Errorf("active installations %v, want %v", got, want)
	}
}
