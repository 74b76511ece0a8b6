// Package retention deletes, for good, the tenants that have been gone
// longer than the retention period: a Connect tenant uninstalled (or
// superseded by its Forge version) and a Forge-only tenant whose
// installations were all uninstalled. A reinstall inside the period finds
// everything as it was; after it, nothing is left but the audit row that
// records the purge. Run Step daily on one node (the leader).
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tenon-dev/tenon"
)

// DefaultPeriod is the retention period when none is configured.
const DefaultPeriod = 30 * 24 * time.Hour

// Options configure a Purger.
type Options struct {
	Store  tenon.TenantPurger
	Period time.Duration // how long after uninstall; 0 means DefaultPeriod
	Now    func() time.Time
	Logger *slog.Logger
	// Purged is told of every purged tenant (a metric); nil ignores it.
	Purged func(clientKey string, rows int)
}

// Purger runs the retention job.
type Purger struct{ o Options }

// New returns a Purger.
func New(o Options) (*Purger, error) {
	if o.Store == nil {
		return nil, errors.New("retention: Options.Store is required")
	}
	if o.Period <= 0 {
		o.Period = DefaultPeriod
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Purger{o: o}, nil
}

// Step purges every tenant gone since before now minus the period, each in
// its own transaction with its audit row, and returns their keys.
func (p *Purger) Step(ctx context.Context) ([]string, error) {
	cutoff := p.o.Now().Add(-p.o.Period)
	due, err := p.o.Store.RetentionDue(ctx, cutoff)
	if err != nil {
		return nil, fmt.Errorf("retention: list due tenants: %w", err)
	}
	var done []string
	var errs []error
	for _, key := range due {
		counts, err := p.o.Store.PurgeTenant(ctx, key, tenon.AuditEntry{Actor: "retention",
			Detail: fmt.Sprintf("gone for more than the retention period (%s)", p.o.Period)})
		if err != nil {
			errs = append(errs, fmt.Errorf("retention: purge %q: %w", key, err))
			continue
		}
		rows := 0
		for _, n := range counts {
			rows += n
		}
		p.o.Logger.InfoContext(ctx, "retention: purged a tenant gone longer than the retention period",
			"client_key", key, "rows", rows, "period", p.o.Period.String())
		if p.o.Purged != nil {
			p.o.Purged(key, rows)
		}
		done = append(done, key)
	}
	return done, errors.Join(errs...)
}
