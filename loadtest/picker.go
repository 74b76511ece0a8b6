package loadtest

import (
	"math/rand"
	"sync"
)

// Picker chooses the tenant (and issue) of each request. It is safe for
// concurrent use; its randomness comes from the source it was given, so a
// run with the same seed picks the same sequence.
type Picker struct {
	mu     sync.Mutex
	rng    *rand.Rand
	zipf   *rand.Zipf
	n      int
	issues int
}

// NewPicker returns a picker over tenants 0..n-1 with the mix's skew;
// under Zipf, tenant 0 is the busiest, then 1, and so on.
func NewPicker(m *Mix, src rand.Source) *Picker {
	p := &Picker{rng: rand.New(src), n: m.Tenants, issues: m.IssuesPerTenant}
	if m.Skew == SkewZipf && m.Tenants > 1 {
		p.zipf = rand.NewZipf(p.rng, m.ZipfS, 1, uint64(m.Tenants-1))
	}
	return p
}

// Pick returns a tenant index, an issue index on it, and a number in
// [0, 1) for choosing the route.
func (p *Picker) Pick() (tenant, issue int, route float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.zipf != nil {
		tenant = int(p.zipf.Uint64())
	} else {
		tenant = p.rng.Intn(p.n)
	}
	return tenant, p.rng.Intn(p.issues), p.rng.Float64()
}

// routeIndex picks a route from cumulative shares with u in [0, 1).
func routeIndex(cum []float64, u float64) int {
	total := cum[len(cum)-1]
	x := u * total
	for i, c := range cum {
		if x < c {
			return i
		}
	}
	return len(cum) - 1
}
