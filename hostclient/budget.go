package hostclient

import (
	"context"
	"sync"
	"time"

	"github.com/tenon-dev/tenon"
)

// MemoryBudgets is a tenon.BudgetStore in this process's memory: for one
// node (the SQLite store) and for tests. Nodes are counted as in a shared
// store, so several Resiliences of one process can stand in for nodes.
type MemoryBudgets struct {
	mu      sync.Mutex
	budgets map[string]tenon.RateBudget
	seen    map[string]map[string]time.Time // key → node → last merge
}

var _ tenon.BudgetStore = (*MemoryBudgets)(nil)

// NewMemoryBudgets returns an empty MemoryBudgets.
func NewMemoryBudgets() *MemoryBudgets {
	return &MemoryBudgets{budgets: map[string]tenon.RateBudget{}, seen: map[string]map[string]time.Time{}}
}

// MergeRateBudget implements tenon.BudgetStore.
func (m *MemoryBudgets) MergeRateBudget(_ context.Context, key, node string, b tenon.RateBudget, now time.Time, ttl time.Duration) (tenon.RateBudget, error) {
	switch {
	case key == "" || len(key) > tenon.MaxKVKeyLength:
		return tenon.RateBudget{}, tenon.Errorf(tenon.EINVALID, "A budget key is 1 to %d bytes.", tenon.MaxKVKeyLength)
	case node == "" || len(node) > 200:
		return tenon.RateBudget{}, tenon.Errorf(tenon.EINVALID, "A budget node name is 1 to 200 bytes.")
	case ttl <= 0:
		return tenon.RateBudget{}, tenon.Errorf(tenon.EINVALID, "The node liveness window must be positive.")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.budgets[key]
	if !ok {
		cur = tenon.RateBudget{Remaining: -1}
	}
	out := tenon.MergeRateBudgets(cur, b)
	m.budgets[key] = out
	nodes := m.seen[key]
	if nodes == nil {
		nodes = map[string]time.Time{}
		m.seen[key] = nodes
	}
	if now.After(nodes[node]) {
		nodes[node] = now
	}
	for n, at := range nodes {
		switch {
		case at.Before(now.Add(-10 * ttl)):
			delete(nodes, n)
		case at.After(now.Add(-ttl)):
			out.Nodes++
		}
	}
	return out, nil
}
