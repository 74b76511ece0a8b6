package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
)

func (s *suite) testBudget(t *testing.T) {
	st, _ := s.store(t)
	bs, ok := st.(tenon.BudgetStore)
	if !ok {
		t.Skip("the store does not implement tenon.BudgetStore")
	}
	RunBudgetStore(t, bs)
}

// RunBudgetStore checks a tenon.BudgetStore: budgets start unknown, merge
// by tenon.MergeRateBudgets, count the nodes seen within the liveness
// window, and refuse bad arguments without changing anything.
func RunBudgetStore(t *testing.T, bs tenon.BudgetStore) {
	ctx := context.Background()
	now := time.Date(2026, 3, 2, 10, 20, 0, 0, time.UTC)
	reset := now.Truncate(time.Hour).Add(time.Hour)
	ttl := 10 * time.Second
	key := "budget/jira"

	got, err := bs.MergeRateBudget(ctx, key, "a", tenon.RateBudget{Remaining: -1}, now, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if got.Remaining != -1 || !got.ResetAt.IsZero() || got.Nodes != 1 {
		t.Fatalf("a new budget: %+v, want unknown with one node", got)
	}
	got, err = bs.MergeRateBudget(ctx, key, "a", tenon.RateBudget{Limit: 100, Remaining: 60, ResetAt: reset, ObservedAt: now}, now, ttl)
	if err != nil || got.Remaining != 60 || got.Limit != 100 || !got.ResetAt.Equal(reset) {
		t.Fatalf("after a's count: %+v, %v", got, err)
	}
	// b saw an older, higher count of the same window: the lower one stays.
	got, err = bs.MergeRateBudget(ctx, key, "b", tenon.RateBudget{Limit: 100, Remaining: 80, ResetAt: reset.Add(time.Second), ObservedAt: now.Add(-time.Second)}, now.Add(time.Second), ttl)
	if err != nil || got.Remaining != 60 || got.Nodes != 2 {
		t.Fatalf("after b's older count: %+v, %v; want 60 left and two nodes", got, err)
	}
	pause := now.Add(30 * time.Minute)
	got, err = bs.MergeRateBudget(ctx, key, "b", tenon.RateBudget{Remaining: 0, ResetAt: reset, PausedUntil: pause, PauseReason: "jira-quota-global-based"}, now.Add(2*time.Second), ttl)
	if err != nil || got.Remaining != 0 || !got.PausedUntil.Equal(pause) || got.PauseReason != "jira-quota-global-based" {
		t.Fatalf("after b's pause: %+v, %v", got, err)
	}
	// a comes back after b's liveness ran out: one node, the pause holds.
	got, err = bs.MergeRateBudget(ctx, key, "a", tenon.RateBudget{Remaining: -1}, now.Add(time.Minute), ttl)
	if err != nil || got.Nodes != 1 || !got.PausedUntil.Equal(pause) {
		t.Fatalf("a a minute later: %+v, %v; want one node and the pause", got, err)
	}
	// A new window replaces the spent one.
	next := reset.Add(time.Hour)
	got, err = bs.MergeRateBudget(ctx, key, "a", tenon.RateBudget{Limit: 100, Remaining: 99, ResetAt: next, ObservedAt: reset}, reset, ttl)
	if err != nil || got.Remaining != 99 || !got.ResetAt.Equal(next) {
		t.Fatalf("the next window: %+v, %v", got, err)
	}
	// Other keys are other budgets.
	if other, err := bs.MergeRateBudget(ctx, "budget/confluence", "a", tenon.RateBudget{Remaining: -1}, reset, ttl); err != nil || other.Remaining != -1 {
		t.Fatalf("another key: %+v, %v", other, err)
	}

	for _, bad := range []struct {
		key, node string
		ttl       time.Duration
	}{{"", "a", ttl}, {key, "", ttl}, {key, string(make([]byte, 201)), ttl}, {key, "a", 0}} {
		if _, err := bs.MergeRateBudget(ctx, bad.key, bad.node, tenon.RateBudget{Remaining: 1, ResetAt: next.Add(time.Hour)}, reset, bad.ttl); tenon.ErrorCode(err) != tenon.EINVALID {
			t.Errorf("MergeRateBudget(%q, %d-byte node, ttl %v) = %v, want EINVALID", bad.key, len(bad.node), bad.ttl, err)
		}
	}
	if got, err := bs.MergeRateBudget(ctx, key, "a", tenon.RateBudget{Remaining: -1}, reset, ttl); err != nil || got.Remaining != 99 || !got.ResetAt.Equal(next) {
		t.Errorf("after the refusals: %+v, %v; want the budget unchanged", got, err)
	}
}
