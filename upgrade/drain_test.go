package upgrade_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/upgrade"
)

// startDrainer serves h on a loopback listener through a Drainer. It
// reports each new connection on accepted.
func startDrainer(t *testing.T, h http.Handler) (*upgrade.Drainer, string, chan error, chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{}, 16)
	hs := &http.Server{Handler: h, ConnState: func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			accepted <- struct{}{}
		}
	}}
	d := upgrade.NewDrainer(hs, ln)
	served := make(chan error, 1)
	go func() { served <- d.Serve() }()
	t.Cleanup(func() { hs.Close() })
	return d, ln.Addr().String(), served, accepted
}

// The case http.Server.Shutdown gets wrong: a connection accepted before
// the stop whose request arrives after it is answered, not closed.
func TestDrainerAnswersRequestArrivingAfterStop(t *testing.T) {
	d, addr, served, accepted := startDrainer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "answered")
	}))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	<-accepted // the server holds the connection; no request yet

	stopped := make(chan error, 1)
	go func() { stopped <- d.Stop(context.Background()) }()
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve returned %v, want http.ErrServerClosed", err)
	}
	// The listener is closed: new connections are refused.
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("a new connection was accepted after Stop")
	}
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) with a connection still waiting for its request", err)
	default:
	}

	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the request after Stop was not answered: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "answered" || !resp.Close {
		t.Errorf("answer %d %q, close %v; want 200, the body and Connection: close", resp.StatusCode, body, resp.Close)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

// A request in flight finishes before Stop returns.
func TestDrainerWaitsForRequestsInFlight(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	d, addr, _, _ := startDrainer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "slow answer")
	}))
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr)
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- string(b)
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- d.Stop(context.Background()) }()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) before the request in flight finished", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if body := <-got; body != "slow answer" {
		t.Fatalf("the request in flight got %q", body)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

// When the deadline passes, Stop closes what is left and says so.
func TestDrainerGivesUpAtDeadline(t *testing.T) {
	d, addr, _, accepted := startDrainer(t, http.NotFoundHandler())
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	<-accepted
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := d.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop: %v, want the deadline", err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("the idle connection was not closed: %v", err)
	}
}
