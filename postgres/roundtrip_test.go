package postgres_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"

	"github.com/tenon-dev/tenon/storetest"
)

// messageCounter is a TCP proxy in front of PostgreSQL that reads the
// frontend messages the store sends and counts them by type while
// counting is on.
type messageCounter struct {
	ln       net.Listener
	target   string
	mu       sync.Mutex
	counting bool
	counts   map[byte]int
}

func startMessageCounter(t *testing.T, target string) *messageCounter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &messageCounter{ln: ln, target: target, counts: map[byte]int{}}
	t.Cleanup(func() { ln.Close() })
	go m.accept()
	return m
}

func (m *messageCounter) accept() {
	for {
		client, err := m.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", m.target)
		if err != nil {
			client.Close()
			continue
		}
		go func() {
			io.Copy(client, server)
			client.Close()
		}()
		go func() {
			m.read(io.TeeReader(client, server))
			server.Close()
		}()
	}
}

// read follows the frontend message stream: a startup message without a
// type byte, then messages of one type byte and a length that counts
// itself.
func (m *messageCounter) read(r io.Reader) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return
	}
	if _, err := io.CopyN(io.Discard, r, int64(binary.BigEndian.Uint32(hdr[:4]))-4); err != nil {
		return
	}
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		m.mu.Lock()
		if m.counting {
			m.counts[hdr[0]]++
		}
		m.mu.Unlock()
		if _, err := io.CopyN(io.Discard, r, int64(binary.BigEndian.Uint32(hdr[1:]))-4); err != nil {
			return
		}
	}
}

func (m *messageCounter) count(on bool) map[byte]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.counting = on
	got := m.counts
	m.counts = map[byte]int{}
	return got
}

// TestGetValueIsOneRoundTrip reads values through a proxy that counts
// what the store sends: each read is one Bind, Execute and Sync of a
// statement prepared once — one round trip, with no Parse, no BEGIN or
// COMMIT and no ping.
func TestGetValueIsOneRoundTrip(t *testing.T) {
	dsn := MustSchema(t)
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		t.Skipf("TENON_TEST_POSTGRES_DSN is not a URL with a host: %v", err)
	}
	proxy := startMessageCounter(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	s := MustOpenDSN(t, u.String(), nil)
	ctx := context.Background()
	in := storetest.NewInstallation("tenant-a")
	if err := s.SaveInstallation(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := s.PutValue(ctx, in.ClientKey, "settings", json.RawMessage(`{"theme":"dark"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetValue(ctx, in.ClientKey, "settings"); err != nil { // prepares the statement
		t.Fatal(err)
	}

	const reads = 50
	proxy.count(true)
	for range reads {
		if v, err := s.GetValue(ctx, in.ClientKey, "settings"); err != nil || string(v) != `{"theme":"dark"}` {
			t.Fatalf("GetValue = %s, %v", v, err)
		}
	}
	got := proxy.count(false)
	want := map[byte]int{'B': reads, 'E': reads, 'S': reads}
	for typ, n := range got {
		if want[typ] != n {
			t.Errorf("%d reads sent %d messages of type %q, want %d (all: %v)", reads, n, typ, want[typ], got)
		}
	}
	for typ, n := range want {
		if got[typ] != n {
			t.Errorf("%d reads sent %d messages of type %q, want %d", reads, got[typ], typ, n)
		}
	}
}
