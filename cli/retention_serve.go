package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/hostclient"
	"github.com/tenon-dev/tenon/personal"
	"github.com/tenon-dev/tenon/retention"
)

// PersonalDataApp is an App that stores personal data in forms of its own
// (author fields, account indexes kept with TenantData.TouchAccount): the
// reporting cycle calls its hooks for closed and updated accounts.
type PersonalDataApp interface {
	App
	PersonalDataHooks() personal.Hooks
}

// How often serve looks at the data cycles. The reporting cycle itself
// runs once per Cycle-Period; a check only finds due work.
const (
	personalCheck  = time.Hour
	retentionCheck = 24 * time.Hour
)

// ParseRetention reads --retention: whole days ("30d") or a Go duration
// ("720h"), at least one day.
func ParseRetention(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number of days such as 30d", v)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, fmt.Errorf("%q is neither days (30d) nor a duration (720h)", v)
		}
	}
	if d < 24*time.Hour {
		return 0, fmt.Errorf("%q is shorter than a day: a tenant reinstalling the next morning would find nothing", v)
	}
	return d, nil
}

// startDataJobs runs the personal data reporting cycle and the retention
// job on the leader until ctx ends; the returned func stops them.
func startDataJobs(ctx context.Context, b *Backend, app App) func() {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	leads := func() bool { return b.Leader == nil || b.Leader.IsLeader() }
	every := func(interval time.Duration, job func(context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				if leads() {
					job(ctx)
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	if rep := newReporter(b, app); rep != nil {
		every(personalCheck, func(ctx context.Context) {
			if err := rep.Step(ctx); err != nil {
				b.Logger.Warn("personal data reporting: some tenants did not progress; retried at the next check", "error", err)
			}
		})
	}
	if pg := newPurger(b); pg != nil {
		every(retentionCheck, func(ctx context.Context) {
			if _, err := pg.Step(ctx); err != nil {
				b.Logger.Error("retention job failed; retried tomorrow", "error", err)
			}
		})
	}
	return func() { cancel(); wg.Wait() }
}

// newReporter builds the reporting cycle of b, or nil when the store
// keeps no inventory.
func newReporter(b *Backend, app App) *personal.Reporter {
	st, ok := b.Store.(personal.Store)
	if !ok {
		return nil
	}
	opts := hostclient.Options{Logger: b.Logger}
	if tc, ok := b.Store.(tenon.TokenCache); ok {
		opts.Tokens = tc
	}
	fs, _ := b.Store.(tenon.ForgeStore)
	opts.Forge = hostclient.ForgeOptions{Installations: fs, AllowHTTP: b.Config.Environment == "development"}
	var hooks personal.Hooks
	if pa, ok := app.(PersonalDataApp); ok {
		hooks = pa.PersonalDataHooks()
	}
	rep, err := personal.New(personal.Options{Store: st, Client: hostclient.New(b.Server.AppKey(), opts), Forge: fs,
		Hooks: hooks, Now: b.Config.Now, Logger: b.Logger})
	if err != nil {
		b.Logger.Error("personal data reporting is off", "error", err)
		return nil
	}
	return rep
}

// newPurger builds the retention job of b, with its metric.
func newPurger(b *Backend) *retention.Purger {
	tp, ok := b.Store.(tenon.TenantPurger)
	if !ok {
		return nil
	}
	purged := prometheus.NewCounter(prometheus.CounterOpts{Name: "tenon_retention_purged_tenants_total",
		Help: "Tenants deleted for good by the retention job because they were gone longer than --retention."})
	if b.Metrics != nil {
		_ = b.Metrics.Registry().Register(purged)
	}
	pg, err := retention.New(retention.Options{Store: tp, Period: b.Config.Retention, Now: b.Config.Now, Logger: b.Logger,
		Purged: func(string, int) { purged.Inc() }})
	if err != nil {
		b.Logger.Error("retention is off", "error", err)
		return nil
	}
	return pg
}
