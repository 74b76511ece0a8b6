package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"modernc.org/libc"
	"modernc.org/libc/sys/types"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tenon-dev/tenon"
)

// The two reads nearly every request makes — one of a tenant's values,
// and the tenant's installation when the cache misses — run on a pool of
// read-only connections the store keeps itself, opened through the C API
// of the SQLite the driver is built on, each with both statements
// prepared. A point read on a primary key takes SQLite a few
// microseconds; database/sql and the driver around it (their pools,
// argument conversion, a Rows per call, and two goroutines per call
// watching a request's context) cost about twice as much again. Here a
// call takes a connection, binds, steps, resets and gives it back.
//
// Context semantics stay those of database/sql: a call whose context is
// done before it starts fails at once, waiting for a free connection ends
// with the context, a statement under way is interrupted when it ends,
// and so is a wait for a lock held by another process. These connections
// never write and never take the writer's lock: in WAL mode a reader only
// marks the snapshot it reads.

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

// lookupConn is one SQLite connection of its own, opened through the C
// API the driver is built on, with the two statements prepared. A call
// binds its arguments from a buffer the connection keeps, steps once and
// resets: no allocation but the result's, and no goroutine. The caller's
// context ends it as the driver's would: a context done before the call
// fails it at once, one done during the call interrupts the statement
// (a progress handler SQLite calls every few hundred virtual-machine
// steps looks at it, so a call registers nothing with the context and
// starts no goroutine), and a wait for a lock held by another process
// ends with the context (busy handler).
type lookupConn struct {
	tls          *libc.TLS
	db           uintptr
	value        uintptr // prepared statements
	installation uintptr
	buf          uintptr // C memory holding the bound text
	bufLen       int
	busyTimeout  time.Duration

	// ctx is the context of the call in progress, for the busy and
	// progress handlers, which run on the calling goroutine inside step.
	ctx context.Context
}

// lookupConns finds a connection from the database handle, the only
// argument SQLite passes the busy handler (a C callback cannot carry a Go
// pointer); an entry lives as long as its connection.
var lookupConns sync.Map // db handle → *lookupConn

// lookupError is a failure SQLite reported, with its result code for fail.
type lookupError struct {
	code int
	msg  string
}

func (e *lookupError) Error() string { return e.msg }

// Code is the SQLite result code, extended.
func (e *lookupError) Code() int { return e.code }

// openLookupConn opens the database at path for reading and prepares the
// lookups.
func openLookupConn(path string, busyTimeout time.Duration) (_ *lookupConn, err error) {
	c := &lookupConn{tls: libc.NewTLS(), busyTimeout: busyTimeout}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	name, err := libc.CString(path)
	if err != nil {
		return nil, err
	}
	defer libc.Xfree(c.tls, name)
	pdb := libc.Xmalloc(c.tls, types.Size_t(unsafe.Sizeof(uintptr(0))))
	if pdb == 0 {
		return nil, errors.New("out of memory")
	}
	defer libc.Xfree(c.tls, pdb)
	rc := sqlite3.Xsqlite3_open_v2(c.tls, name, pdb,
		sqlite3.SQLITE_OPEN_READWRITE|sqlite3.SQLITE_OPEN_NOMUTEX|sqlite3.SQLITE_OPEN_EXRESCODE, 0)
	c.db = libc.AtomicLoadPUintptr(pdb)
	if rc != sqlite3.SQLITE_OK {
		if c.db == 0 {
			return nil, &lookupError{int(rc), libc.GoString(sqlite3.Xsqlite3_errstr(c.tls, rc))}
		}
		return nil, c.err(rc)
	}
	lookupConns.Store(c.db, c)
	sqlite3.Xsqlite3_busy_handler(c.tls, c.db, cFuncPointer(lookupBusy), c.db)
	sqlite3.Xsqlite3_progress_handler(c.tls, c.db, lookupProgressSteps, cFuncPointer(lookupProgress), c.db)
	// query_only makes it refuse writes, as the readers do.
	if err := c.exec("PRAGMA query_only = 1"); err != nil {
		return nil, err
	}
	if c.value, err = c.prepare(getValueSQL); err != nil {
		return nil, err
	}
	if c.installation, err = c.prepare(getInstallationSQL); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *lookupConn) exec(q string) error {
	z, err := libc.CString(q)
	if err != nil {
		return err
	}
	defer libc.Xfree(c.tls, z)
	if rc := sqlite3.Xsqlite3_exec(c.tls, c.db, z, 0, 0, 0); rc != sqlite3.SQLITE_OK {
		return c.err(rc)
	}
	return nil
}

func (c *lookupConn) prepare(q string) (uintptr, error) {
	z, err := libc.CString(q)
	if err != nil {
		return 0, err
	}
	defer libc.Xfree(c.tls, z)
	pst := libc.Xmalloc(c.tls, types.Size_t(unsafe.Sizeof(uintptr(0))))
	if pst == 0 {
		return 0, errors.New("out of memory")
	}
	defer libc.Xfree(c.tls, pst)
	if rc := sqlite3.Xsqlite3_prepare_v3(c.tls, c.db, z, -1, sqlite3.SQLITE_PREPARE_PERSISTENT, pst, 0); rc != sqlite3.SQLITE_OK {
		return 0, fmt.Errorf("prepare %q: %w", q, c.err(rc))
	}
	return libc.AtomicLoadPUintptr(pst), nil
}

// err is the error for result code rc, with SQLite's message.
func (c *lookupConn) err(rc int32) error {
	return &lookupError{int(rc), libc.GoString(sqlite3.Xsqlite3_errmsg(c.tls, c.db))}
}

func (c *lookupConn) close() error {
	for _, st := range []uintptr{c.value, c.installation} {
		if st != 0 {
			sqlite3.Xsqlite3_finalize(c.tls, st)
		}
	}
	var err error
	if c.db != 0 {
		if rc := sqlite3.Xsqlite3_close_v2(c.tls, c.db); rc != sqlite3.SQLITE_OK {
			err = c.err(rc)
		}
		lookupConns.Delete(c.db)
		c.db = 0
	}
	if c.buf != 0 {
		libc.Xfree(c.tls, c.buf)
		c.buf = 0
	}
	c.tls.Close()
	return err
}

// valid says whether the connection can serve another call; an
// interrupted statement leaves it as good as before.
func (c *lookupConn) valid() bool { return c.db != 0 }

// query runs st with a (and b, when the statement has a second
// parameter), calls row for the first row if there is one, and resets st.
func (c *lookupConn) query(ctx context.Context, st uintptr, a, b string, row func(st uintptr) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ctx.Done() != nil {
		// The busy and progress handlers read it on this goroutine,
		// inside step.
		c.ctx = ctx
		defer func() {
			c.ctx = nil
			if err != nil && ctx.Err() != nil {
				err = ctx.Err()
			}
		}()
	}
	defer sqlite3.Xsqlite3_reset(c.tls, st)
	if err := c.bind(st, a, b); err != nil {
		return err
	}
	switch rc := sqlite3.Xsqlite3_step(c.tls, st); rc {
	case sqlite3.SQLITE_ROW:
		return row(st)
	case sqlite3.SQLITE_DONE:
		return nil
	default:
		return c.err(rc)
	}
}

// bind copies a and b into the connection's buffer and binds them to the
// statement's parameters; the buffer outlives the statement's use of it.
func (c *lookupConn) bind(st uintptr, a, b string) error {
	n := len(a) + len(b)
	if n > c.bufLen || c.buf == 0 {
		size := max(256, n)
		p := libc.Xmalloc(c.tls, types.Size_t(size))
		if p == 0 {
			return errors.New("out of memory")
		}
		if c.buf != 0 {
			// No statement holds the old buffer: both were reset.
			libc.Xfree(c.tls, c.buf)
		}
		c.buf, c.bufLen = p, size
	}
	mem := cMem(c.buf, c.bufLen)
	copy(mem, a)
	copy(mem[len(a):], b)
	if rc := sqlite3.Xsqlite3_bind_text(c.tls, st, 1, c.buf, int32(len(a)), 0); rc != sqlite3.SQLITE_OK {
		return c.err(rc)
	}
	if sqlite3.Xsqlite3_bind_parameter_count(c.tls, st) > 1 {
		if rc := sqlite3.Xsqlite3_bind_text(c.tls, st, 2, c.buf+uintptr(len(a)), int32(len(b)), 0); rc != sqlite3.SQLITE_OK {
			return c.err(rc)
		}
	}
	return nil
}

// blob copies column i of the current row.
func (c *lookupConn) blob(st uintptr, i int32) []byte {
	p := sqlite3.Xsqlite3_column_blob(c.tls, st, i)
	n := sqlite3.Xsqlite3_column_bytes(c.tls, st, i)
	if p == 0 || n == 0 {
		return []byte{}
	}
	return bytes.Clone(cMem(p, int(n)))
}

// text copies column i of the current row; ok is false for NULL.
func (c *lookupConn) text(st uintptr, i int32) (v string, ok bool) {
	if sqlite3.Xsqlite3_column_type(c.tls, st, i) == sqlite3.SQLITE_NULL {
		return "", false
	}
	p := sqlite3.Xsqlite3_column_text(c.tls, st, i)
	n := sqlite3.Xsqlite3_column_bytes(c.tls, st, i)
	if p == 0 || n == 0 {
		return "", true
	}
	return string(cMem(p, int(n))), true
}

// lookupProgressSteps is how many steps of SQLite's virtual machine run
// between looks at the call's context: a point read takes a few dozen,
// so it is seldom asked at all, and a runaway statement stops within
// microseconds of its context ending.
const lookupProgressSteps = 256

// lookupProgress is SQLite's progress handler for a lookup connection:
// a non-zero answer interrupts the statement (SQLITE_INTERRUPT), which
// query turns into the context's error.
func lookupProgress(_ *libc.TLS, db uintptr) int32 {
	v, ok := lookupConns.Load(db)
	if !ok {
		return 0
	}
	if ctx := v.(*lookupConn).ctx; ctx != nil && ctx.Err() != nil {
		return 1
	}
	return 0
}

// lookupBusy is SQLite's default busy handler — the same waits, up to
// the busy timeout — except that it gives up once the call's context is
// done.
func lookupBusy(_ *libc.TLS, db uintptr, count int32) int32 {
	v, ok := lookupConns.Load(db)
	if !ok {
		return 0
	}
	c := v.(*lookupConn)
	delays := [...]time.Duration{1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100}
	var waited time.Duration
	for i := range min(int(count), len(delays)) {
		waited += delays[i]
	}
	delay := delays[min(int(count), len(delays)-1)]
	if int(count) > len(delays) {
		waited += delays[len(delays)-1] * time.Duration(int(count)-len(delays))
	}
	remaining := c.busyTimeout - waited*time.Millisecond
	if remaining <= 0 {
		return 0
	}
	d := min(delay*time.Millisecond, remaining)
	t := time.NewTimer(d)
	defer t.Stop()
	var done <-chan struct{}
	if c.ctx != nil {
		done = c.ctx.Done()
	}
	select {
	case <-done:
		return 0
	case <-t.C:
		return 1
	}
}

// cMem is the n bytes at p in the memory the transpiled SQLite allocates
// from, which is not Go's heap: the collector neither moves nor frees it.
func cMem(p uintptr, n int) []byte {
	return unsafe.Slice((*byte)(unsafe.Add(nil, p)), n)
}

// cFuncPointer is the C function pointer of a Go function for the
// transpiled SQLite, in the representation the driver uses for its own
// callbacks (a func value is a pointer to its code).
func cFuncPointer[T any](f T) uintptr {
	return *(*uintptr)(unsafe.Pointer(&struct{ f T }{f}))
}

// lookupRow scans the current row of a statement for the few destination
// types the store's rows use.
type lookupRow struct {
	c  *lookupConn
	st uintptr
}

func (r lookupRow) Scan(dest ...any) error {
	if n := int(sqlite3.Xsqlite3_column_count(r.c.tls, r.st)); n != len(dest) {
		return fmt.Errorf("scan: %d destinations for %d columns", len(dest), n)
	}
	for i, d := range dest {
		v, ok := r.c.text(r.st, int32(i))
		switch d := d.(type) {
		case *string:
			if !ok {
				return fmt.Errorf("scan: column %d is NULL", i)
			}
			*d = v
		case *sql.NullString:
			*d = sql.NullString{String: v, Valid: ok}
		default:
			return fmt.Errorf("scan: column %d: unsupported destination %T", i, d)
		}
	}
	return nil
}

// lookupValue reads one tenant value on a lookup connection.
func (s *Store) lookupValue(ctx context.Context, clientKey, key string) (v []byte, found bool, err error) {
	c, err := s.lookups.get(ctx)
	if err != nil {
		return nil, false, err
	}
	defer s.lookups.put(c)
	err = c.query(ctx, c.value, clientKey, key, func(st uintptr) error {
		found = true
		v = c.blob(st, 0)
		return nil
	})
	return v, found, err
}

// lookupInstallation reads one installation row on a lookup connection
// and hands it to scan while the connection is held.
func (s *Store) lookupInstallation(ctx context.Context, clientKey string, scan func(scanner) error) (found bool, err error) {
	c, err := s.lookups.get(ctx)
	if err != nil {
		return false, err
	}
	defer s.lookups.put(c)
	err = c.query(ctx, c.installation, clientKey, "", func(st uintptr) error {
		found = true
		return scan(lookupRow{c, st})
	})
	return found, err
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
