package storetest

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
)

// testPersonal runs the tenon.PersonalDataStore cases.
func (s *suite) testPersonal(t *testing.T) {
	cases := []struct {
		name string
		fn   func(t *testing.T, st tenon.Store, ps tenon.PersonalDataStore, c *Clock)
	}{
		{"Inventory", s.testPersonalInventory},
		{"Erase", s.testPersonalErase},
		{"Cycle", s.testPersonalCycle},
		{"Invalid", s.testPersonalInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, c := s.store(t)
			ps, ok := st.(tenon.PersonalDataStore)
			if !ok {
				t.Skip("the store does not implement tenon.PersonalDataStore")
			}
			tc.fn(t, st, ps, c)
		})
	}
}

func (s *suite) testPersonalInventory(t *testing.T, st tenon.Store, ps tenon.PersonalDataStore, c *Clock) {
	ctx := context.Background()
	if err := ps.PutPersonal(ctx, "t1", "acc-b", "pref/acc-b", json.RawMessage(`{"theme":"dark"}`)); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute)
	if err := ps.TouchAccount(ctx, "t1", "acc-a"); err != nil {
		t.Fatal(err)
	}
	if err := ps.TouchAccount(ctx, "t2", "acc-z"); err != nil {
		t.Fatal(err)
	}
	checkValue(t, st, "t1", "pref/acc-b", `{"theme":"dark"}`)
	got, err := ps.PersonalAccounts(ctx, "t1", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].AccountID != "acc-a" || got[1].AccountID != "acc-b" {
		t.Fatalf("PersonalAccounts = %+v, want acc-a, acc-b", got)
	}
	if !got[0].UpdatedAt.Equal(Start.Add(time.Minute)) || !got[1].UpdatedAt.Equal(Start) {
		t.Errorf("updated times = %v, %v", got[0].UpdatedAt, got[1].UpdatedAt)
	}
	page, err := ps.PersonalAccounts(ctx, "t1", "acc-a", 10)
	if err != nil || len(page) != 1 || page[0].AccountID != "acc-b" {
		t.Fatalf("page after acc-a = %+v, %v", page, err)
	}
	// Touching again moves the time, never adds a row.
	c.Advance(time.Hour)
	if err := ps.TouchAccount(ctx, "t1", "acc-b"); err != nil {
		t.Fatal(err)
	}
	got, _ = ps.PersonalAccounts(ctx, "t1", "", 10)
	if len(got) != 2 || !got[1].UpdatedAt.Equal(c.Now()) {
		t.Errorf("after a second touch: %+v", got)
	}
	tenants, err := ps.PersonalTenants(ctx)
	if err != nil || !slices.Equal(tenants, []string{"t1", "t2"}) {
		t.Errorf("PersonalTenants = %v, %v", tenants, err)
	}
}

func (s *suite) testPersonalErase(t *testing.T, st tenon.Store, ps tenon.PersonalDataStore, c *Clock) {
	ctx := context.Background()
	mustSave(t, st, NewInstallation("t1"))
	for _, kv := range [][2]string{{"acc-a", "a/1"}, {"acc-a", "a/2"}, {"acc-b", "b/1"}} {
		if err := ps.PutPersonal(ctx, "t1", kv[0], kv[1], json.RawMessage(`1`)); err != nil {
			t.Fatal(err)
		}
	}
	// The same account on another tenant is another person's record there.
	if err := ps.PutPersonal(ctx, "t2", "acc-a", "a/1", json.RawMessage(`2`)); err != nil {
		t.Fatal(err)
	}
	mustPut(t, st, "t1", "plain", `3`)
	tc, _ := st.(tenon.TokenCache)
	owned, _ := st.(tenon.OwnedTokenCache)
	fs, _ := st.(tenon.ForgeStore)
	exp := c.Now().Add(time.Hour)
	if owned != nil {
		for _, o := range []tenon.TokenOwner{{ClientKey: "t1", AccountID: "acc-a"}, {ClientKey: "t1", AccountID: "acc-b"}} {
			if err := owned.PutOwnedToken(ctx, "user:"+o.AccountID, o, "tok-"+o.AccountID, exp); err != nil {
				t.Fatal(err)
			}
		}
	}
	inst := NewInstallation("t1").InstallationID
	if fs != nil && tc != nil {
		f := NewForgeInstallation(inst, "cloud-t1")
		mustRecord(t, fs, f)
		if err := tc.PutToken(ctx, tenon.ForgeUserTokenKey(inst, "acc-a"), "forge-a", exp); err != nil {
			t.Fatal(err)
		}
		if err := tc.PutToken(ctx, tenon.ForgeSystemTokenKey(inst), "forge-sys", exp); err != nil {
			t.Fatal(err)
		}
	}
	n, err := ps.ErasePersonal(ctx, "t1", "acc-a")
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("ErasePersonal removed %d values, want 2", n)
	}
	for _, k := range []string{"a/1", "a/2"} {
		if _, err := st.GetValue(ctx, "t1", k); tenon.ErrorCode(err) != tenon.ENOTFOUND {
			t.Errorf("value %q after erase: %v, want ENOTFOUND", k, err)
		}
	}
	checkValue(t, st, "t1", "b/1", `1`)
	checkValue(t, st, "t1", "plain", `3`)
	checkValue(t, st, "t2", "a/1", `2`)
	got, _ := ps.PersonalAccounts(ctx, "t1", "", 10)
	if len(got) != 1 || got[0].AccountID != "acc-b" {
		t.Errorf("inventory after erase = %+v, want acc-b only", got)
	}
	if tc != nil && owned != nil {
		if _, _, err := tc.Token(ctx, "user:acc-a", c.Now()); tenon.ErrorCode(err) != tenon.ENOTFOUND {
			t.Errorf("the erased account's user token: %v, want ENOTFOUND", err)
		}
		if tok, _, err := tc.Token(ctx, "user:acc-b", c.Now()); err != nil || tok != "tok-acc-b" {
			t.Errorf("another account's token = %q, %v", tok, err)
		}
	}
	if tc != nil && fs != nil {
		if _, _, err := tc.Token(ctx, tenon.ForgeUserTokenKey(inst, "acc-a"), c.Now()); tenon.ErrorCode(err) != tenon.ENOTFOUND {
			t.Errorf("the erased account's Forge token: %v, want ENOTFOUND", err)
		}
		if _, _, err := tc.Token(ctx, tenon.ForgeSystemTokenKey(inst), c.Now()); err != nil {
			t.Errorf("the app's Forge token went with the account: %v", err)
		}
	}
	// Erasing again, or an unknown account, removes nothing.
	if n, err := ps.ErasePersonal(ctx, "t1", "acc-a"); err != nil || n != 0 {
		t.Errorf("second erase = %d, %v", n, err)
	}
}

func (s *suite) testPersonalCycle(t *testing.T, st tenon.Store, ps tenon.PersonalDataStore, c *Clock) {
	ctx := context.Background()
	zero, err := ps.ReportCycle(ctx, "t1")
	if err != nil || zero.ClientKey != "t1" || !zero.StartedAt.IsZero() || zero.Cursor != "" || zero.Pending != nil {
		t.Fatalf("a new tenant's cycle = %+v, %v", zero, err)
	}
	want := tenon.ReportCycle{
		ClientKey: "t1", StartedAt: Start, Cursor: "acc-m", NotBefore: Start.Add(time.Hour),
		Period: 48 * time.Hour, Reported: 90,
		Pending: []tenon.ReportedAccount{{AccountID: "acc-c", Status: tenon.AccountClosed}, {AccountID: "acc-u", Status: tenon.AccountUpdated}},
	}
	if err := ps.SaveReportCycle(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := ps.ReportCycle(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ClientKey != want.ClientKey || !got.StartedAt.Equal(want.StartedAt) || got.Cursor != want.Cursor ||
		!got.NotBefore.Equal(want.NotBefore) || got.Period != want.Period || got.Reported != want.Reported ||
		!slices.Equal(got.Pending, want.Pending) {
		t.Fatalf("ReportCycle = %+v, want %+v", got, want)
	}
	next := tenon.ReportCycle{ClientKey: "t1", NotBefore: Start.Add(48 * time.Hour), Period: 48 * time.Hour}
	if err := ps.SaveReportCycle(ctx, next); err != nil {
		t.Fatal(err)
	}
	got, _ = ps.ReportCycle(ctx, "t1")
	if !got.StartedAt.IsZero() || got.Cursor != "" || got.Pending != nil || !got.NotBefore.Equal(next.NotBefore) {
		t.Errorf("after the cycle ended: %+v", got)
	}
}

func (s *suite) testPersonalInvalid(t *testing.T, st tenon.Store, ps tenon.PersonalDataStore, c *Clock) {
	ctx := context.Background()
	for _, tc := range []struct{ clientKey, accountID string }{{"", "a"}, {"t1", ""}, {"t1", "a\x00b"}} {
		if err := ps.TouchAccount(ctx, tc.clientKey, tc.accountID); tenon.ErrorCode(err) != tenon.EINVALID {
			t.Errorf("TouchAccount(%q, %q) = %v, want EINVALID", tc.clientKey, tc.accountID, err)
		}
		if err := ps.PutPersonal(ctx, tc.clientKey, tc.accountID, "k", json.RawMessage(`1`)); tenon.ErrorCode(err) != tenon.EINVALID {
			t.Errorf("PutPersonal(%q, %q) = %v, want EINVALID", tc.clientKey, tc.accountID, err)
		}
	}
	if err := ps.PutPersonal(ctx, "t1", "acc", "k", json.RawMessage(`{`)); tenon.ErrorCode(err) != tenon.EINVALID {
		t.Errorf("PutPersonal with bad JSON = %v, want EINVALID", err)
	}
	if err := ps.SaveReportCycle(ctx, tenon.ReportCycle{}); tenon.ErrorCode(err) != tenon.EINVALID {
		t.Errorf("SaveReportCycle without a tenant = %v, want EINVALID", err)
	}
	// Nothing of the refused calls was stored.
	if got, _ := ps.PersonalAccounts(ctx, "t1", "", 10); len(got) != 0 {
		t.Errorf("refused calls stored %+v", got)
	}
	if _, err := st.GetValue(ctx, "t1", "k"); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("refused PutPersonal stored a value: %v", err)
	}
}
