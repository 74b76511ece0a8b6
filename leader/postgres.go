package leader

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Defaults of PostgresOptions.
const (
	DefaultCheckInterval = time.Second
	DefaultTTL           = 5 * time.Second
)

// leaseTable records the terms: the fencing token of each lease name and
// who holds it. The advisory lock decides who leads; the table only
// numbers the terms and tells operators who took the last one.
const leaseTable = "tenon_leader"

// PostgresOptions configure a Postgres elector.
type PostgresOptions struct {
	// Name is the lease: nodes campaigning for the same name in the same
	// schema elect one leader. Default "singleton".
	Name string
	// Node names this node in the lease table and in `tenon status`
	// (a host name, say). Required.
	Node string
	// CheckInterval is how often the leader checks that it still holds
	// the lease, and how often the others try to take it. Default
	// DefaultCheckInterval.
	CheckInterval time.Duration
	// TTL bounds how long a leader that cannot check its lease keeps
	// leading: a check that fails, or does not answer within TTL, ends
	// the term. A new leader waits TTL after taking the lease before its
	// term starts, so that the term of a leader cut off from the database
	// has ended by then. Default DefaultTTL; at least 2×CheckInterval.
	TTL time.Duration
	// Clock is the time the elector lives by. Default SystemClock.
	Clock Clock
	// Logger hears about terms won and lost. Default: discard.
	Logger *slog.Logger
}

// Postgres is a Leader whose lease is a session advisory lock held on a
// dedicated connection. The lock is PostgreSQL's: it is released when the
// session ends, whatever ended it (the node stopped, the connection was
// cut, the primary failed over), and another node takes it within about
// CheckInterval + TTL. Campaign runs the elector.
type Postgres struct {
	cfg  *pgx.ConnConfig
	opts PostgresOptions
	lock int64 // advisory lock key

	mu      sync.Mutex
	token   int64 // 0 unless a term runs
	term    *term
	works   map[*registration]struct{}
	changed chan struct{} // closed on each change of term
}

var _ Leader = (*Postgres)(nil)

type term struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type registration struct {
	ctx  context.Context
	work func(context.Context)
}

// NewPostgres returns an elector for the database of cfg; its lease and
// its table live in the first schema of cfg's search_path.
// target_session_attrs=read-write belongs in cfg when it names several
// hosts, so that the lease is taken on the primary only; the elector
// also refuses a server in recovery.
func NewPostgres(cfg *pgx.ConnConfig, opts PostgresOptions) (*Postgres, error) {
	if opts.Node == "" {
		return nil, errors.New("leader: PostgresOptions.Node is required")
	}
	if opts.Name == "" {
		opts.Name = "singleton"
	}
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = DefaultCheckInterval
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	opts.TTL = max(opts.TTL, 2*opts.CheckInterval)
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = "tenon leader " + opts.Node
	return &Postgres{cfg: cfg, opts: opts, works: map[*registration]struct{}{}, changed: make(chan struct{})}, nil
}

// LockKey is the advisory lock key of lease name in schema: the same on
// every node, different for each schema so that deployments sharing a
// database elect their leaders independently.
func LockKey(schema, name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("tenon leader\x00" + schema + "\x00" + name))
	return int64(h.Sum64())
}

// IsLeader implements Leader.
func (p *Postgres) IsLeader() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.term != nil
}

// Token implements Leader.
func (p *Postgres) Token() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.token
}

// Run implements Leader.
func (p *Postgres) Run(ctx context.Context, work func(ctx context.Context)) {
	r := &registration{ctx: ctx, work: work}
	p.mu.Lock()
	p.works[r] = struct{}{}
	if p.term != nil {
		p.start(p.term, r)
	}
	p.mu.Unlock()
	<-ctx.Done()
	p.mu.Lock()
	delete(p.works, r)
	p.mu.Unlock()
}

// start runs r's work in t; p.mu is held.
func (p *Postgres) start(t *term, r *registration) {
	ctx, cancel := context.WithCancel(t.ctx)
	stop := context.AfterFunc(r.ctx, cancel)
	t.wg.Go(func() {
		defer stop()
		defer cancel()
		r.work(ctx)
	})
}

// Campaign takes the lease whenever it is free and holds it until ctx
// ends, running registered work in each term. It returns nil when ctx
// ends, after ending the current term and releasing the lease.
func (p *Postgres) Campaign(ctx context.Context) error {
	c := campaign{p: p}
	defer c.release()
	for {
		wait := p.opts.CheckInterval
		c.step(ctx)
		if c.acquired && !c.startAt.IsZero() {
			wait = min(wait, max(c.startAt.Sub(p.opts.Clock.Now()), 0))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-p.opts.Clock.After(wait):
		}
	}
}

// campaign is the state of one Campaign; only its goroutine touches it.
type campaign struct {
	p        *Postgres
	conn     *pgx.Conn
	acquired bool      // the lock is held on conn
	startAt  time.Time // when the term starts, while acquired and not yet leading
	token    int64
}

func (c *campaign) step(ctx context.Context) {
	p := c.p
	cctx, cancel := context.WithTimeout(ctx, p.opts.TTL)
	defer cancel()
	if !c.acquired {
		if err := c.try(cctx); err != nil && ctx.Err() == nil {
			p.opts.Logger.Debug("leader: lease not taken", "lease", p.opts.Name, "err", err)
		}
		return
	}
	if err := c.check(cctx); err != nil {
		if ctx.Err() == nil {
			p.opts.Logger.Warn("leader: lease lost", "lease", p.opts.Name, "node", p.opts.Node, "token", c.token, "err", err)
		}
		c.release()
		return
	}
	if !c.startAt.IsZero() && !p.opts.Clock.Now().Before(c.startAt) {
		c.startAt = time.Time{}
		p.begin(c.token)
		p.opts.Logger.Info("leader: this node leads", "lease", p.opts.Name, "node", p.opts.Node, "token", c.token)
	}
}

// try connects if need be and takes the lock if it is free.
func (c *campaign) try(ctx context.Context) error {
	p := c.p
	if c.conn == nil {
		conn, err := pgx.ConnectConfig(ctx, p.cfg)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		c.conn = conn
		var schema *string
		if err := conn.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
			c.drop()
			return fmt.Errorf("schema: %w", err)
		}
		if schema == nil {
			c.drop()
			return errors.New("no schema of the search_path exists")
		}
		p.lock = LockKey(*schema, p.opts.Name)
	}
	var got, standby bool
	if err := c.conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1), pg_is_in_recovery()", p.lock).Scan(&got, &standby); err != nil {
		c.drop()
		return fmt.Errorf("take the lock: %w", err)
	}
	if standby {
		// A lock on a standby would be a second, separate lease.
		c.drop()
		return errors.New("the server is a standby")
	}
	if !got {
		return nil
	}
	token, err := c.newTerm(ctx)
	if err != nil {
		c.drop()
		return fmt.Errorf("number the term: %w", err)
	}
	c.acquired, c.token = true, token
	// The previous leader may not know yet that it lost the lease: its
	// term ends at its next check, or TTL after its last good one.
	c.startAt = p.opts.Clock.Now().Add(p.opts.TTL)
	return nil
}

// newTerm numbers the term in the lease table. Only the lock holder
// writes the table, so creating it here races with no one.
func (c *campaign) newTerm(ctx context.Context) (int64, error) {
	p := c.p
	table := pgx.Identifier{leaseTable}.Sanitize()
	if _, err := c.conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+table+` (
		name text PRIMARY KEY,
		token bigint NOT NULL,
		node text NOT NULL,
		since timestamptz NOT NULL)`); err != nil {
		return 0, err
	}
	var token int64
	err := c.conn.QueryRow(ctx, `INSERT INTO `+table+` (name, token, node, since) VALUES ($1, 1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET token = `+table+`.token + 1, node = EXCLUDED.node, since = EXCLUDED.since
		RETURNING token`, p.opts.Name, p.opts.Node, p.opts.Clock.Now()).Scan(&token)
	return token, err
}

// check asks the server whether this session is still the primary's and
// alive, which means it still holds the lock.
func (c *campaign) check(ctx context.Context) error {
	var standby bool
	if err := c.conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&standby); err != nil {
		return err
	}
	if standby {
		return errors.New("the server became a standby")
	}
	return nil
}

// release ends the term, waits for its work, and gives the lock up by
// closing the session.
func (c *campaign) release() {
	c.p.end()
	c.acquired, c.startAt, c.token = false, time.Time{}, 0
	c.drop()
}

func (c *campaign) drop() {
	if c.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = c.conn.Close(ctx) // ends the session, and with it the lock
	c.conn = nil
}

func (p *Postgres) begin(token int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	t := &term{ctx: ctx, cancel: cancel}
	p.term, p.token = t, token
	for r := range p.works {
		p.start(t, r)
	}
	close(p.changed)
	p.changed = make(chan struct{})
}

// end cancels the term's work and waits for it, so that no work of this
// term runs once the lock is given up.
func (p *Postgres) end() {
	p.mu.Lock()
	t := p.term
	p.term, p.token = nil, 0
	if t != nil {
		close(p.changed)
		p.changed = make(chan struct{})
	}
	p.mu.Unlock()
	if t != nil {
		t.cancel()
		t.wg.Wait()
	}
}

// Changed returns a channel closed at the next start or end of a term,
// for callers that wait for leadership to change (tests, status pages).
func (p *Postgres) Changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.changed
}

// Lease is what the database says about a lease, for `tenon status`.
type Lease struct {
	// Held says whether some session holds the lock now.
	Held bool
	// Node and Token name the last term: its node and fencing token;
	// empty and 0 before the first.
	Node  string
	Token int64
	// Since is when the last term's node took the lease.
	Since time.Time
}

// ReadLease reads lease name (default "singleton") of the schema of
// conn's search_path.
func ReadLease(ctx context.Context, conn *pgx.Conn, name string) (Lease, error) {
	if name == "" {
		name = "singleton"
	}
	var schema *string
	if err := conn.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return Lease{}, fmt.Errorf("leader: read lease: %w", err)
	}
	if schema == nil {
		return Lease{}, errors.New("leader: read lease: no schema of the search_path exists")
	}
	key := uint64(LockKey(*schema, name))
	var l Lease
	// A bigint advisory key shows in pg_locks as its two halves.
	err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND classid = $1::bigint::oid AND objid = $2::bigint::oid AND objsubid = 1)`,
		int64(key>>32), int64(key&0xffffffff)).Scan(&l.Held)
	if err != nil {
		return Lease{}, fmt.Errorf("leader: read lease: %w", err)
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", pgx.Identifier{*schema, leaseTable}.Sanitize()).Scan(&exists); err != nil {
		return Lease{}, fmt.Errorf("leader: read lease: %w", err)
	}
	if !exists {
		return l, nil
	}
	err = conn.QueryRow(ctx, "SELECT node, token, since FROM "+pgx.Identifier{leaseTable}.Sanitize()+" WHERE name = $1", name).
		Scan(&l.Node, &l.Token, &l.Since)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Lease{}, fmt.Errorf("leader: read lease: %w", err)
	}
	return l, nil
}
