package cli

import (
	"context"
	"log/slog"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/leader"
	"github.com/tenon-dev/tenon/reconcile"
)

// PureForgeApp exposes pureForgeApp to the external tests.
var PureForgeApp = pureForgeApp

// The tenants export and import commands are reached through the tenants
// command's dispatcher, which lives elsewhere; tests call them directly.
var (
	RunTenantsExport = runTenantsExport
	RunTenantsImport = runTenantsImport
)

// RunTenantsReconcile exposes `tenants reconcile`, which the tenants
// dispatcher runs, to the external tests.
var RunTenantsReconcile = runTenantsReconcile

// ReconcileSchedule is the daily schedule of serve with its clock and
// work injected: RunIfDue checks once, Term runs until ctx ends.
type ReconcileSchedule struct{ l *reconcileLoop }

// NewReconcileSchedule builds the schedule on settings.
func NewReconcileSchedule(settings tenon.SettingsStore, now func() time.Time, after func(time.Duration) <-chan time.Time,
	run func(context.Context) (reconcile.Report, error)) *ReconcileSchedule {
	return &ReconcileSchedule{&reconcileLoop{settings: settings, now: now, after: after, run: run, log: slog.New(slog.DiscardHandler)}}
}

// RunIfDue runs the reconciliation when a day has passed.
func (s *ReconcileSchedule) RunIfDue(ctx context.Context) { s.l.runIfDue(ctx) }

// Run runs the schedule in every term of ld until ctx ends.
func (s *ReconcileSchedule) Run(ctx context.Context, ld leader.Leader) { runSchedule(ctx, ld, s.l) }
