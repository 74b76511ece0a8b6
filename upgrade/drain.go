package upgrade

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Drainer serves an http.Server on one listener and stops it without
// dropping a request it accepted: the parent's side of an upgrade, and
// the end of every graceful stop.
//
// http.Server.Shutdown alone is not enough: a connection accepted just
// before it, whose request arrives just after, is closed unanswered. So
// Stop first closes the listener and waits for the accept loop to end
// (on a socket shared with a successor, the kernel now hands new
// connections to the successor only), then turns keep-alives off, so
// every HTTP/1 connection is closed after answering the request it is
// serving or about to read, and waits until those are gone. Only then
// does it call Shutdown, which sends HTTP/2 connections their GOAWAY and
// waits for the rest.
//
// One race remains, the one inherent in HTTP/1.1 keep-alive: a client
// that sends a request on an idle connection at the moment the server
// closes it sees the connection closed, and retries only if the request
// is idempotent (as Go's and browsers' clients do).
type Drainer struct {
	hs      *http.Server
	ln      net.Listener
	served  chan struct{} // closed when Serve returned
	closing atomic.Bool

	mu      sync.Mutex
	conns   map[net.Conn]bool // open connections; true once known to be HTTP/2
	changed chan struct{}
}

// NewDrainer prepares hs to be served on ln and drained. It chains a
// ConnState hook onto hs, so call it before serving and do not replace
// hs.ConnState afterwards.
func NewDrainer(hs *http.Server, ln net.Listener) *Drainer {
	d := &Drainer{hs: hs, ln: ln, served: make(chan struct{}), conns: map[net.Conn]bool{}, changed: make(chan struct{}, 1)}
	prev := hs.ConnState
	hs.ConnState = func(c net.Conn, s http.ConnState) {
		d.track(c, s)
		if prev != nil {
			prev(c, s)
		}
	}
	return d
}

func (d *Drainer) track(c net.Conn, s http.ConnState) {
	d.mu.Lock()
	switch s {
	case http.StateNew:
		d.conns[c] = false
	case http.StateActive:
		if _, ok := d.conns[c]; ok && isHTTP2(c) {
			d.conns[c] = true
		}
	case http.StateClosed, http.StateHijacked:
		delete(d.conns, c)
	}
	d.mu.Unlock()
	select {
	case d.changed <- struct{}{}:
	default:
	}
}

func isHTTP2(c net.Conn) bool {
	tc, ok := c.(interface {
		ConnectionState() tls.ConnectionState
	})
	return ok && tc.ConnectionState().NegotiatedProtocol == "h2"
}

// http1Open counts open connections not known to speak HTTP/2.
func (d *Drainer) http1Open() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, h2 := range d.conns {
		if !h2 {
			n++
		}
	}
	return n
}

// Serve serves until Stop, and then returns http.ErrServerClosed, like
// http.Server.Serve after Shutdown.
func (d *Drainer) Serve() error {
	defer close(d.served)
	err := d.hs.Serve(d.ln)
	if d.closing.Load() && errors.Is(err, net.ErrClosed) {
		return http.ErrServerClosed
	}
	return err
}

// Stop stops accepting, lets the requests in flight finish and shuts the
// server down. When ctx ends first it closes every connection and
// returns ctx's error.
func (d *Drainer) Stop(ctx context.Context) error {
	d.closing.Store(true)
	if err := d.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	select {
	case <-d.served:
	case <-ctx.Done():
	}
	d.hs.SetKeepAlivesEnabled(false)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for d.http1Open() > 0 && ctx.Err() == nil {
		select {
		case <-d.changed:
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	if err := d.hs.Shutdown(ctx); err != nil {
		_ = d.hs.Close()
		return err
	}
	return nil
}
