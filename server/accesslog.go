package server

import (
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// AccessLog writes the request log line (Config.AccessLog) without
// slowing the request down: the line is encoded into a pooled buffer on
// the request's goroutine, with no reflection and no allocation, and
// handed to a writer goroutine through a bounded queue. When the queue is
// full — the log's destination is slower than the traffic — the line is
// dropped and counted (Dropped) instead of making the request wait.
//
// Line buffers are kept for reuse: at most Queue of them exist, made as
// the backlog first needs them, so a steady log allocates nothing.
//
// The line is the JSON object slog's JSONHandler writes for the same
// record, field for field:
//
//	{"time":"…","level":"INFO","msg":"request","method":"GET","route":"…","path":"…",
//	 "status":200,"bytes":12,"duration_ms":0.25,"remote":"10.0.0.1",
//	 "client_key":"…","lifecycle":"…","request_id":"…"}
//
// client_key and lifecycle appear only when set. Attributes added to
// Config.Logger with With are not repeated here. Lines from one AccessLog
// keep their order; lines of other writers sharing the destination are
// interleaved by whole writes.
type AccessLog struct {
	out     io.Writer
	linger  time.Duration
	lines   chan *logLine
	free    chan *logLine // buffers to reuse
	made    atomic.Int64  // buffers made, at most cap(free)
	dropped atomic.Uint64
	closed  atomic.Bool
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

// AccessLogOptions tune an AccessLog; the zero value is ready to use.
type AccessLogOptions struct {
	// Queue is how many lines may wait for the writer before new ones
	// are dropped. Default 4096.
	Queue int
	// Linger is how long the writer waits for more lines after the first
	// of a batch before it writes: under load, one write then carries
	// many lines instead of one system call per request. A line reaches
	// the destination at most this late. Default DefaultAccessLogLinger;
	// negative writes every line as soon as the writer sees it.
	Linger time.Duration
}

// DefaultAccessLogLinger is the default AccessLogOptions.Linger.
const DefaultAccessLogLinger = 2 * time.Millisecond

// logLine is one pooled line buffer.
type logLine struct{ b []byte }

// lineCap is the starting size of a line buffer: a typical line is
// about 300 bytes; longer ones grow their buffer once and keep it.
const lineCap = 512

// batchMax bounds what the writer gathers into one write.
const batchMax = 64 << 10

// NewAccessLog starts an access log writing to out. Close it to write
// what is queued and stop its goroutine.
func NewAccessLog(out io.Writer, opts AccessLogOptions) *AccessLog {
	if opts.Queue <= 0 {
		opts.Queue = 4096
	}
	if opts.Linger == 0 {
		opts.Linger = DefaultAccessLogLinger
	}
	l := &AccessLog{
		out:    out,
		linger: opts.Linger,
		lines:  make(chan *logLine, opts.Queue),
		free:   make(chan *logLine, opts.Queue),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go l.run()
	return l
}

// Dropped reports how many lines were not written: the queue was full,
// the log was closed, or the destination failed.
func (l *AccessLog) Dropped() uint64 { return l.dropped.Load() }

// Close writes the queued lines and stops the writer. Lines logged after
// Close are dropped. It is safe to call more than once.
func (l *AccessLog) Close() error {
	l.once.Do(func() {
		l.closed.Store(true)
		close(l.stop)
	})
	<-l.done
	return nil
}

// Log queues the line of one finished request; t is when it finished,
// path the request's URL path (clipped to 128 bytes), remote the client
// address. It never blocks.
func (l *AccessLog) Log(t time.Time, info RequestInfo, path, remote string) {
	if l.closed.Load() {
		l.dropped.Add(1)
		return
	}
	var ln *logLine
	select {
	case ln = <-l.free:
	default:
		if l.made.Add(1) > int64(cap(l.free)) {
			// Every buffer waits in the queue or at the writer.
			l.made.Add(-1)
			l.dropped.Add(1)
			return
		}
		ln = &logLine{b: make([]byte, 0, lineCap)}
	}
	ln.b = appendRequestLine(ln.b[:0], t, info, path, remote)
	select {
	case l.lines <- ln:
	default: // not reached: there are no more buffers than queue slots
		l.dropped.Add(1)
		l.release(ln)
	}
}

// release gives a buffer back for reuse.
func (l *AccessLog) release(ln *logLine) {
	select {
	case l.free <- ln:
	default:
		l.made.Add(-1)
	}
}

func (l *AccessLog) run() {
	defer close(l.done)
	batch := make([]byte, 0, batchMax)
	n := 0 // lines in batch
	take := func(ln *logLine) {
		batch = append(batch, ln.b...)
		n++
		l.release(ln)
	}
	flush := func() {
		if len(batch) > 0 {
			if _, err := l.out.Write(batch); err != nil {
				l.dropped.Add(uint64(n))
			}
		}
		batch, n = batch[:0], 0
	}
	full := func() bool { return len(batch) >= batchMax-lineCap }
	// drain writes everything queued and returns: the log is closing.
	drain := func() {
		for {
			select {
			case ln := <-l.lines:
				take(ln)
				if full() {
					flush()
				}
			default:
				flush()
				return
			}
		}
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case ln := <-l.lines:
			take(ln)
		case <-l.stop:
			drain()
			return
		}
		if l.linger > 0 {
			// Let lines gather in the queue for the linger, then take
			// them all: a busy server makes one write per batch, not one
			// per request. The writer sleeps rather than waiting on the
			// queue meanwhile, so a request that queues a line wakes
			// nobody (a wake-up per line would cost a switch per request
			// and push a request's goroutine back in the run queue).
			timer.Reset(l.linger)
			select {
			case <-timer.C:
			case <-l.stop:
				timer.Stop()
				drain()
				return
			}
		}
		// Take what is queued, in batches while it fills them: a backlog
		// is written at once, not one batch per linger.
		for {
			more := true
			for more && !full() {
				select {
				case ln := <-l.lines:
					take(ln)
				default:
					more = false
				}
			}
			flush()
			if !more {
				break
			}
		}
	}
}

// maxPath is how much of a URL path the log keeps (as clip does).
const maxPath = 128

// appendRequestLine encodes one request line, newline included.
func appendRequestLine(b []byte, t time.Time, info RequestInfo, path, remote string) []byte {
	b = append(b, `{"time":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"request","method":`...)
	b = appendJSONString(b, info.Method)
	b = append(b, `,"route":`...)
	b = appendJSONString(b, info.Route)
	b = append(b, `,"path":`...)
	if len(path) > maxPath {
		b = append(b, '"')
		b = appendJSONChars(b, path[:maxPath])
		b = append(b, "…\""...)
	} else {
		b = appendJSONString(b, path)
	}
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(info.Status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, info.Bytes, 10)
	b = append(b, `,"duration_ms":`...)
	// The value slog writes for float64(µs)/1000: encoding/json's form,
	// which is strconv's 'f' form for every value this can take.
	b = strconv.AppendFloat(b, float64(info.Duration.Microseconds())/1000, 'f', -1, 64)
	b = append(b, `,"remote":`...)
	if len(remote) > maxPath {
		b = append(b, '"')
		b = appendJSONChars(b, remote[:maxPath])
		b = append(b, "…\""...)
	} else {
		b = appendJSONString(b, remote)
	}
	if info.ClientKey != "" {
		b = append(b, `,"client_key":`...)
		b = appendJSONString(b, info.ClientKey)
	}
	if info.Lifecycle != "" {
		b = append(b, `,"lifecycle":`...)
		b = appendJSONString(b, info.Lifecycle)
	}
	if info.ID != "" {
		b = append(b, `,"request_id":`...)
		b = appendJSONString(b, info.ID)
	}
	return append(b, "}\n"...)
}

func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendJSONChars(b, s)
	return append(b, '"')
}

// appendJSONChars escapes s as slog's JSON handler does: control
// characters, quote and backslash escaped, invalid UTF-8 replaced by
// U+FFFD, U+2028 and U+2029 escaped.
func appendJSONChars(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}
