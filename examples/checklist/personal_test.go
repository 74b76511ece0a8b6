package checklist_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/tenon-dev/tenon/examples/checklist"
)

// A closed account's authorship is erased from every checklist of the
// tenant; the items stay, other authors and other tenants are untouched,
// and erasing again changes nothing.
func TestEraseClosedAccountsAuthorship(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	wantStatus(t, e.api("POST", "/api/checklists/DEMO-1/items", `{"text":"mine"}`, demo1Context), http.StatusCreated)
	// Another author's item on another issue, and the same account on
	// another tenant.
	other := `{"issueKey":"DEMO-2","items":[{"id":"1","text":"theirs","done":false,"createdBy":"712020:someone-else","createdAt":"2026-01-01T00:00:00Z"},` +
		`{"id":"2","text":"mine too","done":false,"createdBy":"` + accountID + `","createdAt":"2026-01-01T00:00:00Z"}],"nextId":2}`
	if err := e.store.PutValue(ctx, clientKey, "checklist/DEMO-2", json.RawMessage(other)); err != nil {
		t.Fatal(err)
	}
	elsewhere := `{"issueKey":"DEMO-1","items":[{"id":"1","text":"kept","done":false,"createdBy":"` + accountID + `","createdAt":"2026-01-01T00:00:00Z"}],"nextId":1}`
	if err := e.store.PutValue(ctx, "another-tenant", "checklist/DEMO-1", json.RawMessage(elsewhere)); err != nil {
		t.Fatal(err)
	}

	erase := e.app.PersonalDataHooks().Erase
	if err := erase(ctx, clientKey, accountID); err != nil {
		t.Fatal(err)
	}
	authors := func(tenant, key string) []string {
		t.Helper()
		raw, err := e.store.GetValue(ctx, tenant, key)
		if err != nil {
			t.Fatal(err)
		}
		var c checklist.Checklist
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, it := range c.Items {
			out = append(out, it.Text+"="+it.CreatedBy)
		}
		return out
	}
	check := func() {
		t.Helper()
		if got := authors(clientKey, "checklist/DEMO-1"); len(got) != 1 || got[0] != "mine=" {
			t.Errorf("DEMO-1 after the erase: %v", got)
		}
		if got := authors(clientKey, "checklist/DEMO-2"); len(got) != 2 || got[0] != "theirs=712020:someone-else" || got[1] != "mine too=" {
			t.Errorf("DEMO-2 after the erase: %v", got)
		}
		if got := authors("another-tenant", "checklist/DEMO-1"); len(got) != 1 || got[0] != "kept="+accountID {
			t.Errorf("another tenant's checklist changed: %v", got)
		}
	}
	check()
	if err := erase(ctx, clientKey, accountID); err != nil {
		t.Fatalf("a second erase: %v", err)
	}
	check()
}
