package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenon-dev/tenon/leader"
)

// Singleton work — the purge of old jobs today, and anything scheduled
// that must not run twice (backups, drills, retention) — runs on the one
// node that leads. On PostgreSQL the nodes elect it with a lease in the
// database (leader.Postgres); a SQLite store has one node, which always
// leads (leader.Always).
//
// Hooks for the rest of the command:
//   - Backend.Leader: IsLeader() tells whether this node leads now;
//     Leader.Run(ctx, work) runs work in each of this node's terms and
//     cancels it when the term ends. Scheduled work asks it before
//     starting, or runs inside Run.

// initLeader sets b.Leader for the store of the configuration.
func (b *Backend) initLeader() error {
	if !isPostgres(b.Config.DB) {
		b.Leader = leader.Always{}
	} else {
		cfg, err := pgxpool.ParseConfig(b.Config.DB)
		if err != nil {
			return fmt.Errorf("leader lease: the DSN cannot be parsed (details withheld: they may contain the password)")
		}
		el, err := leader.NewPostgres(cfg.ConnConfig, leader.PostgresOptions{
			Node: nodeName(), Logger: b.Logger.With("component", "leader"),
		})
		if err != nil {
			return err
		}
		b.Leader, b.elector = el, el
	}
	if b.Metrics != nil {
		l := b.Leader
		b.Metrics.Registry().MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tenon_leader",
			Help: "1 while this node leads and runs singleton work (job purges, scheduled maintenance), else 0.",
		}, func() float64 {
			if l.IsLeader() {
				return 1
			}
			return 0
		}))
	}
	return nil
}

// startLeader campaigns for the lease until ctx ends; the returned
// function waits until the campaign has ended its term and released the
// lease.
func (b *Backend) startLeader(ctx context.Context) (wait func()) {
	if b.elector == nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := b.elector.Campaign(ctx); err != nil {
			b.Logger.Error("leader campaign stopped", "err", err)
		}
	}()
	return func() { <-done }
}

// nodeName names this process in the lease table and in `tenon status`:
// host name and process id, unique among the nodes of one host too.
func nodeName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}
