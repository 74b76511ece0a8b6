package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenon-dev/tenon"
)

// The two reads nearly every request makes — one of a tenant's values,
// and the tenant's installation when the cache misses — run on a pool of
// read-only driver connections the store keeps itself, each with both
// statements prepared. A point read on a primary key takes SQLite a few
// microseconds; going through database/sql as well (its pool, argument
// conversion, a Rows per call and a goroutine per call watching the
// context) cost about as much again. Here a call takes a connection,
// binds, steps, resets and gives it back.
//
// Context semantics stay those of database/sql: a call whose context is
// done before it starts fails at once, waiting for a free connection ends
// with the context, and the driver watches the context during the read
// (it interrupts the statement and ends a wait for a lock held by another
// process). These connections never write and never take the writer's
// lock: in WAL mode a reader only marks the snapshot it reads.

// errLookupsClosed is what a lookup returns once the store is closing;
// fail turns it into EUNAVAILABLE.
var errLookupsClosed = errors.New("lookup connections are closed")

// lookupPool hands out at most max connections. A call first takes one
// of max tokens from slots, which is where callers wait (in order, and
// only as long as their context allows), then the connection used last
// from idle, or opens one when none is idle. Reusing the most recent
// connection keeps its pages and the processor's caches warm, and the
// pool opens only as many connections as calls have run at once. close
// knows every token comes back.
type lookupPool struct {
	open    func() (*lookupConn, error)
	max     int
	slots   chan struct{}
	closing chan struct{}
	closed  atomic.Bool
	once    sync.Once

	mu   sync.Mutex
	idle []*lookupConn // most recently used last

	opened, inUse atomic.Int64
	waits, waited atomic.Int64 // number of waits for a slot; their total in ns
}

func newLookupPool(max int, open func() (*lookupConn, error)) *lookupPool {
	p := &lookupPool{open: open, max: max, slots: make(chan struct{}, max), closing: make(chan struct{})}
	for range max {
		p.slots <- struct{}{}
	}
	return p
}

// get takes a connection, waiting for one while ctx allows.
func (p *lookupPool) get(ctx context.Context) (*lookupConn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case <-p.slots:
	default:
		p.waits.Add(1)
		start := time.Now()
		var err error
		select {
		case <-p.slots:
		case <-ctx.Done():
			err = ctx.Err()
		case <-p.closing:
			err = errLookupsClosed
		}
		p.waited.Add(int64(time.Since(start)))
		if err != nil {
			return nil, err
		}
	}
	if p.closed.Load() {
		p.slots <- struct{}{}
		return nil, errLookupsClosed
	}
	var c *lookupConn
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		c = p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
	}
	p.mu.Unlock()
	if c == nil {
		var err error
		if c, err = p.open(); err != nil {
			p.slots <- struct{}{}
			return nil, err
		}
		p.opened.Add(1)
	}
	p.inUse.Add(1)
	return c, nil
}

// put gives c back; a connection the driver no longer trusts (after an
// interrupted statement, say) is closed, and a new one opened when needed.
func (p *lookupPool) put(c *lookupConn) {
	p.inUse.Add(-1)
	if c.valid() {
		p.mu.Lock()
		p.idle = append(p.idle, c)
		p.mu.Unlock()
	} else {
		c.close()
		p.opened.Add(-1)
	}
	p.slots <- struct{}{}
}

// close refuses new lookups, waits for those under way to give their
// connections back, and closes them. Later calls do nothing.
func (p *lookupPool) close() error {
	p.closed.Store(true)
	var errs []error
	p.once.Do(func() {
		close(p.closing)
		for range p.max {
			<-p.slots
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.idle {
			errs = append(errs, c.close())
			p.opened.Add(-1)
		}
		p.idle = nil
	})
	return errors.Join(errs...)
}

// lookupConn is one driver connection with its prepared statements and
// the argument and column buffers a call reuses.
type lookupConn struct {
	conn         driver.Conn
	value        lookupStmt
	installation lookupStmt
	args         [2]driver.NamedValue
	dest         [15]driver.Value
}

type lookupStmt interface {
	driver.Stmt
	driver.StmtQueryContext
}

// openLookupConn opens a connection with drv and prepares the lookups.
func openLookupConn(drv driver.Driver, dsn string) (*lookupConn, error) {
	conn, err := drv.Open(dsn)
	if err != nil {
		return nil, err
	}
	c := &lookupConn{conn: conn}
	for i := range c.args {
		c.args[i].Ordinal = i + 1
	}
	for _, st := range []struct {
		dst   *lookupStmt
		query string
	}{
		{&c.value, getValueSQL},
		{&c.installation, getInstallationSQL},
	} {
		if *st.dst, err = prepareLookup(conn, st.query); err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

func prepareLookup(conn driver.Conn, query string) (lookupStmt, error) {
	st, err := conn.Prepare(query)
	if err != nil {
		return nil, fmt.Errorf("prepare %q: %w", query, err)
	}
	q, ok := st.(lookupStmt)
	if !ok {
		st.Close()
		return nil, fmt.Errorf("prepare %q: the driver's statement has no QueryContext", query)
	}
	return q, nil
}

func (c *lookupConn) close() error {
	var errs []error
	for _, st := range []lookupStmt{c.value, c.installation} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	errs = append(errs, c.conn.Close())
	return errors.Join(errs...)
}

func (c *lookupConn) valid() bool {
	v, ok := c.conn.(driver.Validator)
	return !ok || v.IsValid()
}

// row runs st with the first n arguments and reads the first row into
// dest; found is false when there is none.
func (c *lookupConn) row(ctx context.Context, st lookupStmt, n int, dest []driver.Value) (found bool, err error) {
	rows, err := st.QueryContext(ctx, c.args[:n])
	if err != nil {
		return false, err
	}
	err = rows.Next(dest)
	closeErr := rows.Close()
	switch {
	case err == io.EOF:
		return false, closeErr
	case err != nil:
		return false, err
	}
	return true, closeErr
}

// reset drops what the last call left in the buffers, so an idle
// connection keeps no tenant's data alive.
func (c *lookupConn) reset() {
	clear(c.args[:])
	for i := range c.args {
		c.args[i].Ordinal = i + 1
	}
	clear(c.dest[:])
}

// lookupValue reads one tenant value on a lookup connection.
func (s *Store) lookupValue(ctx context.Context, clientKey, key string) (v []byte, found bool, err error) {
	c, err := s.lookups.get(ctx)
	if err != nil {
		return nil, false, err
	}
	defer func() {
		c.reset()
		s.lookups.put(c)
	}()
	c.args[0].Value, c.args[1].Value = clientKey, key
	found, err = c.row(ctx, c.value, 2, c.dest[:1])
	if err != nil || !found {
		return nil, false, err
	}
	switch b := c.dest[0].(type) {
	case []byte: // a copy the driver made for this call
		return b, true, nil
	case string:
		return []byte(b), true, nil
	}
	return nil, false, fmt.Errorf("value is a %T", c.dest[0])
}

// lookupInstallation reads one installation row on a lookup connection
// and hands it to scan while the connection is held.
func (s *Store) lookupInstallation(ctx context.Context, clientKey string, scan func(scanner) error) (found bool, err error) {
	c, err := s.lookups.get(ctx)
	if err != nil {
		return false, err
	}
	defer func() {
		c.reset()
		s.lookups.put(c)
	}()
	c.args[0].Value = clientKey
	if found, err = c.row(ctx, c.installation, 1, c.dest[:]); err != nil || !found {
		return false, err
	}
	return true, scan(driverRow(c.dest[:]))
}

// driverRow is a row of driver values with the Scan of database/sql, for
// the few destination types the store's rows use.
type driverRow []driver.Value

func (r driverRow) Scan(dest ...any) error {
	if len(dest) != len(r) {
		return fmt.Errorf("scan: %d destinations for %d columns", len(dest), len(r))
	}
	for i, d := range dest {
		switch d := d.(type) {
		case *string:
			switch v := r[i].(type) {
			case string:
				*d = v
			case []byte:
				*d = string(v)
			default:
				return fmt.Errorf("scan: column %d: %T into a string", i, r[i])
			}
		case *sql.NullString:
			switch v := r[i].(type) {
			case nil:
				*d = sql.NullString{}
			case string:
				*d = sql.NullString{String: v, Valid: true}
			case []byte:
				*d = sql.NullString{String: string(v), Valid: true}
			default:
				return fmt.Errorf("scan: column %d: %T into a string", i, r[i])
			}
		default:
			return fmt.Errorf("scan: column %d: unsupported destination %T", i, d)
		}
	}
	return nil
}

func (p *lookupPool) stats() tenon.PoolStats {
	open, inUse := int(p.opened.Load()), int(p.inUse.Load())
	return tenon.PoolStats{
		Name:         "lookup",
		MaxOpen:      p.max,
		Open:         open,
		InUse:        inUse,
		Idle:         max(0, open-inUse),
		WaitCount:    p.waits.Load(),
		WaitDuration: time.Duration(p.waited.Load()),
	}
}
