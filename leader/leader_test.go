package leader_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenon-dev/tenon/leader"
)

// fakeClock moves only when the test advances it. BlockUntil lets the
// test wait until every elector has done what the last advance woke it
// for and waits on the clock again.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = kept
}

// BlockUntil waits until n goroutines wait on the clock.
func (c *fakeClock) BlockUntil(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(time.Millisecond) {
		c.mu.Lock()
		got := len(c.waiters)
		c.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines wait on the clock, want %d", got, n)
		}
	}
}

// schemaConfig returns a connection config for a fresh schema of the test
// database, dropped at the end.
func schemaConfig(t *testing.T) (*pgx.ConnConfig, *pgx.Conn) {
	t.Helper()
	base := os.Getenv("TENON_TEST_POSTGRES_DSN")
	if base == "" {
		if os.Getenv("TENON_REQUIRE_POSTGRES") == "1" {
			t.Fatal("PostgreSQL is required (TENON_REQUIRE_POSTGRES=1) but TENON_TEST_POSTGRES_DSN is not set")
		}
		t.Skip("TENON_TEST_POSTGRES_DSN is not set")
	}
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(ctx) })
	var r [8]byte
	rand.Read(r[:])
	schema := "tenon_leader_" + hex.EncodeToString(r[:])
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE") })
	cfg, err := pgx.ParseConfig(base)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["search_path"] = schema
	return cfg, admin
}

// node is one campaigning elector and what its singleton work saw.
type node struct {
	name   string
	el     *leader.Postgres
	stop   context.CancelFunc
	done   chan struct{}
	starts atomic.Int64
}

// singleton is the work both nodes run through their elector: it counts
// how many run at once, and the terms' tokens in the order they ran.
type singleton struct {
	mu      sync.Mutex
	running int
	overlap []string
	tokens  []int64
}

func (s *singleton) work(n *node) func(ctx context.Context) {
	return func(ctx context.Context) {
		n.starts.Add(1)
		s.mu.Lock()
		s.running++
		if s.running > 1 {
			s.overlap = append(s.overlap, fmt.Sprintf("%s started while another node's work ran", n.name))
		}
		s.tokens = append(s.tokens, n.el.Token())
		s.mu.Unlock()
		<-ctx.Done()
		s.mu.Lock()
		s.running--
		s.mu.Unlock()
	}
}

func startNode(t *testing.T, cfg *pgx.ConnConfig, clock leader.Clock, name string, s *singleton) *node {
	t.Helper()
	el, err := leader.NewPostgres(cfg, leader.PostgresOptions{
		Node: name, CheckInterval: time.Second, TTL: 3 * time.Second, Clock: clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{name: name, el: el, stop: cancel, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Go(func() { el.Run(ctx, s.work(n)) })
	go func() {
		defer close(n.done)
		if err := el.Campaign(ctx); err != nil {
			t.Errorf("%s: campaign: %v", name, err)
		}
		wg.Wait()
	}()
	t.Cleanup(func() { cancel(); <-n.done })
	return n
}

// TestOneLeaderAtATime runs two electors on one database with a clock of
// the test's own, advancing it one check interval at a time. At every
// step at most one node leads and at most one runs the singleton work —
// when the leader's database connection is cut, and when the leader
// stops. The other node takes over within CheckInterval + TTL, in a term
// with a greater fencing token.
func TestOneLeaderAtATime(t *testing.T) {
	cfg, admin := schemaConfig(t)
	clock := newFakeClock()
	var s singleton
	a := startNode(t, cfg, clock, "node-a", &s)
	b := startNode(t, cfg, clock, "node-b", &s)
	nodes := []*node{a, b}
	clock.BlockUntil(t, 2)

	step := func(n int) {
		t.Helper()
		for range n {
			clock.Advance(time.Second)
			clock.BlockUntil(t, len(nodes))
			leaders := 0
			for _, n := range nodes {
				if n.el.IsLeader() {
					leaders++
				}
			}
			s.mu.Lock()
			overlap := s.overlap
			s.mu.Unlock()
			if leaders > 1 || len(overlap) > 0 {
				t.Fatalf("at %v: %d leaders; %v", clock.Now(), leaders, overlap)
			}
		}
	}
	leading := func() *node {
		for _, n := range nodes {
			if n.el.IsLeader() {
				return n
			}
		}
		return nil
	}
	current := func() *node {
		t.Helper()
		found := leading()
		if found == nil {
			t.Fatalf("at %v no node leads", clock.Now())
		}
		return found
	}
	// settle steps until a node leads, at most two intervals more than
	// the bound: the database frees a cut connection's lock when its
	// backend has exited, which can be just after a node's check.
	settle := func() {
		t.Helper()
		for range 2 {
			if leading() != nil {
				return
			}
			step(1)
		}
	}
	// One takes the lease at once; its term starts TTL later.
	if a.el.IsLeader() || b.el.IsLeader() {
		t.Fatal("a node leads before the TTL since it took the lease has passed")
	}
	step(3)
	settle()
	first := current()
	firstToken := first.el.Token()
	if firstToken != 1 {
		t.Errorf("the first term's token is %d, want 1", firstToken)
	}
	lease := readLease(t, cfg)
	if !lease.Held || lease.Node != first.name || lease.Token != firstToken {
		t.Errorf("lease in the database %+v, want held by %s with token %d", lease, first.name, firstToken)
	}

	// Cut the leader's connection: the server releases its lock, the
	// leader finds out at its next check and stops its work; the other
	// node's term starts TTL after it took the lock.
	terminate(t, admin, first.name)
	step(1)
	if first.el.IsLeader() || first.el.Token() != 0 {
		t.Fatalf("%s still leads after its connection was cut", first.name)
	}
	step(3)
	settle()
	second := current()
	if second == first {
		t.Fatalf("%s leads again; the other node should have taken the lease first", first.name)
	}
	if second.el.Token() <= firstToken {
		t.Errorf("second term's token %d, want more than %d", second.el.Token(), firstToken)
	}

	// The node that lost the lease campaigns again and stays a follower.
	step(5)
	if current() != second {
		t.Fatal("leadership moved without a failure")
	}

	// The leader stops (a rolling upgrade): its work ends, the lease is
	// released, and the other node takes over.
	secondToken := second.el.Token()
	second.stop()
	<-second.done
	nodes = []*node{first}
	step(4)
	settle()
	if current() != first || first.el.Token() <= secondToken {
		t.Fatalf("after %s stopped, %s leads with token %d (want > %d)", second.name, first.name, first.el.Token(), secondToken)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tokens) != 3 || s.tokens[0] >= s.tokens[1] || s.tokens[1] >= s.tokens[2] {
		t.Errorf("the work ran in terms with tokens %v, want three increasing", s.tokens)
	}
}

// terminate cuts node's session and waits until its backend has exited,
// and with it the session's advisory lock: without the wait the other
// node could find the lock still held at its next try, and the cut node,
// reconnecting a step later, take it back.
func terminate(t *testing.T, admin *pgx.Conn, node string) {
	t.Helper()
	var n int
	err := admin.QueryRow(context.Background(),
		`SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) FROM pg_stat_activity WHERE application_name = $1`,
		"tenon leader "+node).Scan(&n)
	if err != nil || n != 1 {
		t.Fatalf("terminate %s's session: %d terminated, %v", node, n, err)
	}
}

func readLease(t *testing.T, cfg *pgx.ConnConfig) leader.Lease {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	l, err := leader.ReadLease(ctx, conn, "")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestNewPostgresNeedsANode(t *testing.T) {
	cfg, err := pgx.ParseConfig("postgres://postgres@127.0.0.1:1/x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leader.NewPostgres(cfg, leader.PostgresOptions{}); err == nil || !strings.Contains(err.Error(), "Node is required") {
		t.Errorf("NewPostgres without a node: %v", err)
	}
}

func TestAlwaysLeads(t *testing.T) {
	var l leader.Leader = leader.Always{}
	if !l.IsLeader() || l.Token() != 1 {
		t.Fatalf("Always: leader %v token %d", l.IsLeader(), l.Token())
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		l.Run(ctx, func(ctx context.Context) { close(ran); <-ctx.Done() })
	}()
	<-ran
	cancel()
}
