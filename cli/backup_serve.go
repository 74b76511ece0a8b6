package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenon-dev/tenon/backup"
)

// restoreIfEmpty restores the store file from the backup target before
// serve opens it, when --restore-if-empty is set and the file is missing
// or empty: from the replica, or from the newest snapshot when the
// replica has nothing. No backup at all starts empty (a first start); a
// backup that exists but does not restore stops serve, because starting
// empty would then hide the loss and later overwrite the replica.
func restoreIfEmpty(ctx context.Context, cfg *Config, logger *slog.Logger) error {
	if !cfg.Backup.RestoreIfEmpty {
		return nil
	}
	st, err := os.Stat(cfg.DB)
	if err == nil && st.Size() > 0 {
		return nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("--restore-if-empty: %w", err)
	}
	kit, err := newBackupKit(cfg.Backup, cfg.DB, cfg.SecretKeyFile, logger)
	if err != nil {
		return err
	}
	// WAL and shared-memory files of a lost database belong to it, not
	// to the restored one.
	for _, f := range []string{cfg.DB, cfg.DB + "-wal", cfg.DB + "-shm"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("--restore-if-empty: remove %s: %w", f, err)
		}
	}
	start := time.Now()
	point, err := kit.engine.RestoreReplica(ctx, time.Time{}, cfg.DB)
	from := "replica"
	if errors.Is(err, backup.ErrNoBackup) {
		var man *backup.Manifest
		man, err = kit.mgr.RestoreSnapshot(ctx, "", cfg.DB)
		if err == nil {
			from, point = "snapshot "+man.Name, man.CreatedAt
		}
	}
	if errors.Is(err, backup.ErrNoBackup) {
		logger.Info("no backup to restore; starting with an empty store", "target", kit.mgr.Target.String())
		return nil
	}
	if err != nil {
		return fmt.Errorf("--restore-if-empty: %s is missing and the backup at %s does not restore, so serve does not start: %w", cfg.DB, kit.mgr.Target, restoreAdvice(err))
	}
	logger.Warn("restored the store before starting", "from", from, "state_of", point, "took", time.Since(start).String(), "db", cfg.DB)
	return nil
}

// backups is what serve runs for backups: continuous replication (on
// PostgreSQL, the watch of WAL archiving), the snapshot and drill
// schedules, and their metrics.
type backups struct {
	kit    *backupKit
	rep    backup.Replication
	b      *Backend
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// isLeader, when set, overrides Backend.Leader in saying whether this
	// node runs the scheduled snapshots and drills (for tests). A SQLite
	// store has one node, which always leads; nodes on one PostgreSQL
	// database follow the elected leader.
	isLeader func() bool

	mu                                    sync.Mutex
	lastSnapshot, lastDrill               time.Time
	drillOK, drillRPO, drillRTO, hasDrill float64
}

// startBackups starts replication and the schedules; nil when backups are
// off.
func startBackups(ctx context.Context, b *Backend) (*backups, error) {
	cfg := b.Config
	if cfg.Backup.Target.URL == "" {
		return nil, nil
	}
	kit, err := newBackupKit(cfg.Backup, cfg.DB, cfg.SecretKeyFile, b.Logger)
	if err != nil {
		return nil, err
	}
	rep, err := kit.engine.Replicate(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w (check --backup-url and the S3 settings; tenon backup list tests them)", err)
	}
	k := &backups{kit: kit, rep: rep, b: b}
	k.register()
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	k.cancel = cancel
	if list, err := kit.mgr.List(ctx); err == nil && len(list) > 0 {
		k.lastSnapshot = list[0].CreatedAt
	}
	if d, err := kit.mgr.LastDrill(ctx); err == nil && d != nil {
		k.noteDrill(d)
	}
	if cfg.Backup.Schedule > 0 {
		k.every(runCtx, cfg.Backup.Schedule, func() time.Time { return k.last(&k.lastSnapshot) }, k.snapshot)
	}
	if cfg.Backup.DrillSchedule > 0 {
		k.every(runCtx, cfg.Backup.DrillSchedule, func() time.Time { return k.last(&k.lastDrill) }, k.drill)
	}
	b.Logger.Info("backups on", "target", kit.mgr.Target.String(), "sync_interval", cfg.Backup.SyncInterval.String(),
		"snapshots", cfg.Backup.Schedule.String(), "drills", cfg.Backup.DrillSchedule.String())
	return k, nil
}

func (k *backups) last(t *time.Time) time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return *t
}

// every runs job when interval has passed since last() and this node
// leads, checking a few times per interval (at most every minute), so a
// restart or a change of leader neither skips nor repeats a due snapshot.
func (k *backups) every(ctx context.Context, interval time.Duration, last func() time.Time, job func(context.Context)) {
	check := min(interval/4, time.Minute)
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		t := time.NewTicker(check)
		defer t.Stop()
		for {
			// Singleton work: only the leader takes snapshots and drills
			// (a SQLite node always leads).
			if k.leads() && time.Since(last()) >= interval {
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

// leads reports whether this node runs the scheduled backup work.
func (k *backups) leads() bool {
	if k.isLeader != nil {
		return k.isLeader()
	}
	return k.b.Leader == nil || k.b.Leader.IsLeader()
}

func (k *backups) snapshot(ctx context.Context) {
	var man *backup.Manifest
	var err error
	if k.kit.pg != nil {
		_, man, err = k.kit.pgSnapshot(ctx)
	} else {
		man, err = k.kit.mgr.Snapshot(ctx)
	}
	if err != nil {
		k.b.Logger.Error("scheduled snapshot failed; it is retried at the next check, or run tenon backup", "error", err)
		return
	}
	k.mu.Lock()
	k.lastSnapshot = man.CreatedAt
	k.mu.Unlock()
	if deleted, err := k.kit.mgr.Prune(ctx); err != nil {
		k.b.Logger.Error("pruning snapshots failed", "error", err)
	} else if len(deleted) > 0 {
		k.b.Logger.Info("pruned snapshots", "deleted", deleted)
	}
}

func (k *backups) drill(ctx context.Context) {
	var rep *backup.DrillReport
	var err error
	if k.kit.pg != nil {
		rep, err = k.kit.pgDrill(ctx, k.b.Store, "", 20, k.rep.Sync)
	} else {
		rep, err = k.kit.drill(ctx, k.b.Store, filepath.Join(dirOf(k.kit.db), ".tenon-drill"), "", 20, k.rep.Sync)
	}
	if err != nil || !rep.OK {
		k.b.Logger.Error("restore drill failed: the backups may not restore; run tenon drill for the report", "error", err, "problems", rep.Problems)
	} else {
		k.b.Logger.Info("restore drill passed", "tenants", rep.Tenants, "rpo", rep.RPO.String(), "rto", rep.RTO.String())
	}
	k.noteDrill(rep)
}

func (k *backups) noteDrill(rep *backup.DrillReport) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.lastDrill, k.hasDrill = rep.StartedAt, 1
	k.drillOK, k.drillRPO, k.drillRTO = 0, rep.RPO.Seconds(), rep.RTO.Seconds()
	if rep.OK {
		k.drillOK = 1
	}
}

// register adds the backup metrics to the process registry.
func (k *backups) register() {
	g := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	locked := func(f func() float64) func() float64 {
		return func() float64 { k.mu.Lock(); defer k.mu.Unlock(); return f() }
	}
	unix := func(t time.Time) float64 {
		if t.IsZero() {
			return 0
		}
		return float64(t.UnixNano()) / 1e9
	}
	reg := k.b.Metrics.Registry()
	for _, c := range []prometheus.Collector{
		g("tenon_backup_last_snapshot_timestamp_seconds", "When the newest snapshot at the backup target was taken (0: none).",
			locked(func() float64 { return unix(k.lastSnapshot) })),
		g("tenon_backup_replica_synced_timestamp_seconds", "Last time the replica held every committed transaction (0: not yet).",
			func() float64 { return unix(k.rep.Status().SyncedAt) }),
		g("tenon_backup_replication_lag_seconds", "Seconds since the replica last held every committed transaction: the data a lost disk would cost now.",
			func() float64 {
				s := k.rep.Status().SyncedAt
				if s.IsZero() {
					return -1
				}
				return time.Since(s).Seconds()
			}),
		g("tenon_backup_drill_last_timestamp_seconds", "When the last restore drill started (0: none).", locked(func() float64 { return unix(k.lastDrill) })),
		g("tenon_backup_drill_success", "1 when the last restore drill passed, 0 when it failed or none ran.", locked(func() float64 { return k.drillOK })),
		g("tenon_backup_drill_rpo_seconds", "Recovery point the last drill achieved: how much older its newest restored write was than the source's.", locked(func() float64 { return k.drillRPO })),
		g("tenon_backup_drill_rto_seconds", "Recovery time the last drill took, from start to a restored copy answering a verified request.", locked(func() float64 { return k.drillRTO })),
	} {
		if err := reg.Register(c); err != nil {
			k.b.Logger.Warn("backup metric not registered", "error", err)
		}
	}
}

// close stops the schedules, then replication after shipping what is
// committed.
func (k *backups) close() {
	if k == nil {
		return
	}
	k.cancel()
	k.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := k.rep.Close(ctx); err != nil {
		k.b.Logger.Error("stopping replication", "error", err)
	}
}
