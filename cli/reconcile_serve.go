package cli

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/leader"
	"github.com/tenon-dev/tenon/reconcile"
	"github.com/tenon-dev/tenon/server"
)

// serve reconciles the Forge installations daily, on the leader only.
// When the last run was is kept in the store (the setting
// reconcileSetting), so restarts and leader changes neither skip a day
// nor run twice in one: the leader looks once an hour, and at the start
// of each term, whether a day has passed.

// Schedule of the daily reconciliation.
const (
	reconcileEvery   = 24 * time.Hour
	reconcilePoll    = time.Hour
	reconcileSetting = "forge/reconcile"
)

// reconcileState is the value of reconcileSetting.
type reconcileState struct {
	LastRun time.Time `json:"lastRun"`
	Report  string    `json:"report"`
}

// reconcileLoop is the daily schedule, with its clock and work injected.
type reconcileLoop struct {
	settings tenon.SettingsStore
	now      func() time.Time
	after    func(time.Duration) <-chan time.Time
	run      func(ctx context.Context) (reconcile.Report, error)
	log      *slog.Logger
}

// term runs the schedule for one leader term, until ctx ends.
func (l *reconcileLoop) term(ctx context.Context) {
	for {
		l.runIfDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-l.after(reconcilePoll):
		}
	}
}

// runIfDue reconciles when the last run is a day old (or there was none)
// and records it. A run that fails is recorded too: the next try is a day
// later, as the check it failed on is asked again then anyway.
func (l *reconcileLoop) runIfDue(ctx context.Context) {
	now := l.now()
	var st reconcileState
	if raw, err := l.settings.Setting(ctx, reconcileSetting); err == nil {
		_ = json.Unmarshal(raw, &st)
	} else if tenon.ErrorCode(err) != tenon.ENOTFOUND {
		l.log.WarnContext(ctx, "reconcile: reading the schedule failed; trying again later", "err", err)
		return
	}
	if !st.LastRun.IsZero() && now.Before(st.LastRun.Add(reconcileEvery)) {
		return
	}
	rep, err := l.run(ctx)
	if ctx.Err() != nil {
		return // the term ended mid-run: the next leader runs it
	}
	st = reconcileState{LastRun: now, Report: rep.String()}
	if err != nil {
		l.log.ErrorContext(ctx, "reconcile: the daily run failed", "err", err, "report", rep.String())
	} else {
		l.log.InfoContext(ctx, "reconcile: daily run", "checked", rep.Checked, "live", rep.Live, "gone", rep.Gone,
			"no_token", rep.NoToken, "unknown", rep.Unknown)
	}
	raw, _ := json.Marshal(st)
	if err := l.settings.PutSetting(context.WithoutCancel(ctx), reconcileSetting, raw); err != nil {
		l.log.WarnContext(ctx, "reconcile: recording the run failed", "err", err)
	}
}

// runSchedule runs l in every term of ld until ctx ends.
func runSchedule(ctx context.Context, ld leader.Leader, l *reconcileLoop) {
	ld.Run(ctx, l.term)
}

// startReconcile starts the daily reconciliation when Forge is on; the
// returned function waits until it has stopped after ctx ended.
func (b *Backend) startReconcile(ctx context.Context) (wait func()) {
	settings, ok := b.Store.(tenon.SettingsStore)
	if b.ForgeKeys == nil || b.Leader == nil || !ok {
		return func() {}
	}
	envName, err := server.ParseEnvironment(b.Config.Environment)
	if err != nil {
		return func() {}
	}
	now := b.Config.Now
	if now == nil {
		now = time.Now
	}
	l := &reconcileLoop{
		settings: settings, now: now, after: time.After, log: b.Logger.With("component", "reconcile"),
		run: func(ctx context.Context) (reconcile.Report, error) {
			return reconcileForge(ctx, b.Store, envName, reconcile.DefaultConcurrency, reconcile.DefaultCallTimeout, b)
		},
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runSchedule(ctx, b.Leader, l)
	}()
	return func() { <-done }
}
