package storetest

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
)

// RowsFunc returns, for every table of the store's schema (read from the
// database's catalogue, so a table added later is included), how many rows
// have a column whose text contains needle. Tables without such rows may
// be left out.
type RowsFunc func(t *testing.T, s tenon.Store, needle string) map[string]int

// testAudit checks the audit trail.
func (s *suite) testAudit(t *testing.T) {
	st, c := s.store(t)
	as, ok := st.(tenon.AuditStore)
	if !ok {
		t.Skip("the store does not implement tenon.AuditStore")
	}
	ctx := context.Background()
	for i, a := range []string{"one", "two", "three"} {
		key := "t1"
		if i == 1 {
			key = "t2"
		}
		if err := as.Audit(ctx, tenon.AuditEntry{Action: a, ClientKey: key, Actor: "test", Detail: "d-" + a}); err != nil {
			t.Fatal(err)
		}
		c.Advance(time.Second)
	}
	all, err := as.AuditEntries(ctx, tenon.AuditFilter{})
	if err != nil || len(all) != 3 {
		t.Fatalf("AuditEntries = %+v, %v", all, err)
	}
	if all[0].Action != "one" || !all[0].At.Equal(Start) || all[2].Detail != "d-three" || all[0].ID >= all[1].ID {
		t.Errorf("entries = %+v", all)
	}
	t1, _ := as.AuditEntries(ctx, tenon.AuditFilter{ClientKey: "t1"})
	if len(t1) != 2 {
		t.Errorf("t1's entries = %+v", t1)
	}
	after, _ := as.AuditEntries(ctx, tenon.AuditFilter{AfterID: all[0].ID, Action: "three"})
	if len(after) != 1 || after[0].Action != "three" {
		t.Errorf("filtered = %+v", after)
	}
	if err := as.Audit(ctx, tenon.AuditEntry{}); tenon.ErrorCode(err) != tenon.EINVALID {
		t.Errorf("an entry without action = %v, want EINVALID", err)
	}
	if again, _ := as.AuditEntries(ctx, tenon.AuditFilter{}); len(again) != 3 {
		t.Errorf("the refused entry was stored: %+v", again)
	}
}

// fillTenant stores a row in every tenant-keyed table for clientKey: an
// uninstalled installation, app data, personal data and a cycle, a queued
// job, a linked Forge installation with app and user tokens, an owned
// user token.
func fillTenant(t *testing.T, st tenon.Store, c *Clock, clientKey, tokenKey string) {
	t.Helper()
	ctx := context.Background()
	in := mustSave(t, st, NewInstallation(clientKey))
	mustPut(t, st, clientKey, "config", `{"site":"`+clientKey+`"}`)
	exp := c.Now().Add(time.Hour)
	if ps, ok := st.(tenon.PersonalDataStore); ok {
		if err := ps.PutPersonal(ctx, clientKey, "acc-1", "pref/acc-1", json.RawMessage(`1`)); err != nil {
			t.Fatal(err)
		}
		if err := ps.TouchAccount(ctx, clientKey, "acc-2"); err != nil {
			t.Fatal(err)
		}
		if err := ps.SaveReportCycle(ctx, tenon.ReportCycle{ClientKey: clientKey, StartedAt: c.Now(), Cursor: "acc-1"}); err != nil {
			t.Fatal(err)
		}
	}
	if q, ok := st.(tenon.JobQueue); ok {
		if _, _, err := q.Enqueue(ctx, "webhooks", tenon.NewJob{ClientKey: clientKey, Payload: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if fs, ok := st.(tenon.ForgeStore); ok {
		f := mustRecord(t, fs, NewForgeInstallation(in.InstallationID, in.CloudID))
		if f.ClientKey != clientKey {
			t.Fatalf("the Forge installation linked to %q, want %q", f.ClientKey, clientKey)
		}
		if tc, ok := st.(tenon.TokenCache); ok {
			for _, k := range []string{tenon.ForgeSystemTokenKey(in.InstallationID), tenon.ForgeUserTokenKey(in.InstallationID, "acc-1")} {
				if err := tc.PutToken(ctx, k, "forge-token", exp); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if owned, ok := st.(tenon.OwnedTokenCache); ok {
		o := tenon.TokenOwner{ClientKey: clientKey, AccountID: "acc-1"}
		// The key is a hash in real use: only the owner names the tenant.
		if err := owned.PutOwnedToken(ctx, tokenKey, o, "user-token", exp); err != nil {
			t.Fatal(err)
		}
	}
	mustSetState(t, st, clientKey, tenon.StateUninstalled)
}

// testPurge checks that PurgeTenant leaves no row naming the tenant in any
// table of the schema but the audit, and touches no other tenant.
func (s *suite) testPurge(t *testing.T) {
	if s.opts.Rows == nil {
		t.Skip("Options.Rows is not set")
	}
	st, c := s.store(t)
	tp, ok := st.(tenon.TenantPurger)
	if !ok {
		t.Skip("the store does not implement tenon.TenantPurger")
	}
	ctx := context.Background()
	fillTenant(t, st, c, "purge-me-1", "hostclient:user:v1:0a1b")
	fillTenant(t, st, c, "keep-me-2", "hostclient:user:v1:2c3d")
	before := s.opts.Rows(t, st, "keep-me-2")
	mentioned := s.opts.Rows(t, st, "purge-me-1")
	for _, table := range []string{"installations", "app_data"} {
		if mentioned[table] == 0 {
			t.Fatalf("Rows found nothing for the tenant in %s before the purge: %v", table, mentioned)
		}
	}
	counts, err := tp.PurgeTenant(ctx, "purge-me-1", tenon.AuditEntry{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if counts["installations"] != 1 || counts["app_data"] < 2 {
		t.Errorf("PurgeTenant counts = %v", counts)
	}
	after := s.opts.Rows(t, st, "purge-me-1")
	for table, n := range after {
		if n > 0 && table != "audit" {
			t.Errorf("after the purge, table %s keeps %d rows naming the tenant", table, n)
		}
	}
	if after["audit"] != 1 {
		t.Errorf("audit rows naming the purged tenant = %d, want 1 (the purge)", after["audit"])
	}
	if kept := s.opts.Rows(t, st, "keep-me-2"); !mapsEqual(kept, before) {
		t.Errorf("the other tenant's rows changed: %v, before %v", kept, before)
	}
	if _, err := st.Installation(ctx, "purge-me-1"); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("Installation after purge = %v, want ENOTFOUND", err)
	}
	if as, ok := st.(tenon.AuditStore); ok {
		es, _ := as.AuditEntries(ctx, tenon.AuditFilter{ClientKey: "purge-me-1"})
		if len(es) != 1 || es[0].Action != tenon.AuditTenantPurged || es[0].Actor != "test" || es[0].Detail == "" {
			t.Errorf("purge audit = %+v", es)
		}
	}
	// Purging again deletes nothing and is audited again.
	counts, err = tp.PurgeTenant(ctx, "purge-me-1", tenon.AuditEntry{Actor: "test"})
	if err != nil || counts["installations"] != 0 {
		t.Errorf("second purge = %v, %v", counts, err)
	}
	if _, err := tp.PurgeTenant(ctx, "", tenon.AuditEntry{}); tenon.ErrorCode(err) != tenon.EINVALID {
		t.Errorf("PurgeTenant(\"\") = %v, want EINVALID", err)
	}
}

func mapsEqual(a, b map[string]int) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

// testRetentionDue checks which tenants RetentionDue names.
func (s *suite) testRetentionDue(t *testing.T) {
	st, c := s.store(t)
	tp, ok := st.(tenon.TenantPurger)
	if !ok {
		t.Skip("the store does not implement tenon.TenantPurger")
	}
	ctx := context.Background()
	day := 24 * time.Hour
	mustSave(t, st, NewInstallation("active"))
	mustSave(t, st, NewInstallation("gone"))
	mustSave(t, st, NewInstallation("back"))
	mustSetState(t, st, "gone", tenon.StateUninstalled)
	mustSetState(t, st, "back", tenon.StateUninstalled)
	// A superseded tenant whose data an active Forge installation uses is
	// not gone.
	sup := mustSave(t, st, NewInstallation("superseded"))
	var forgeOnly string
	if fs, ok := st.(tenon.ForgeLifecycleStore); ok {
		f := NewForgeInstallation(sup.InstallationID, sup.CloudID)
		if _, _, err := fs.ForgeInstalled(ctx, f, false, true, c.Now()); err != nil {
			t.Fatal(err)
		}
		lone := NewForgeInstallation("ari:cloud:ecosystem::installation/lone", "cloud-lone")
		if _, _, err := fs.ForgeInstalled(ctx, lone, false, false, c.Now()); err != nil {
			t.Fatal(err)
		}
		forgeOnly = lone.ClientKey
		if _, err := fs.ForgeUninstalled(ctx, lone.InstallationID, c.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if due, err := tp.RetentionDue(ctx, c.Now().Add(-day)); err != nil || len(due) != 0 {
		t.Errorf("RetentionDue before anything is old = %v, %v", due, err)
	}
	c.Advance(29 * day)
	mustSave(t, st, NewInstallation("back")) // reinstalled inside the window
	want := []string{"gone"}
	if forgeOnly != "" {
		want = append(want, forgeOnly)
		slices.Sort(want)
	}
	due, err := tp.RetentionDue(ctx, c.Now().Add(-28*day))
	if err != nil || !slices.Equal(due, want) {
		t.Errorf("RetentionDue = %v, %v, want %v", due, err, want)
	}
}
