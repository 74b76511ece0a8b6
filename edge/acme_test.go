package edge_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/edge"
	"github.com/tenon-dev/tenon/internal/pebbletest"
)

// node is one process serving HTTPS with automatic certificates: an HTTPS
// and a plain-HTTP listener on loopback, like :443 and :80 in production.
type node struct {
	mgr      *edge.Manager
	tlsLn    net.Listener
	httpLn   net.Listener
	storage  *edge.Storage
	logs     *syncBuffer
	shutdown func()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func port(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }

// startNode serves "hello from <domain>" over HTTPS on tlsLn with
// certificates managed by opts, and HTTP-01 answers plus redirects on
// httpLn.
func startNode(t *testing.T, tlsLn, httpLn net.Listener, dbPath string, opts edge.ACMEOptions) *node {
	t.Helper()
	n := &node{tlsLn: tlsLn, httpLn: httpLn, logs: &syncBuffer{}}
	var err error
	n.storage, err = edge.NewStorage(openStoreAt(t, dbPath, nil), edge.StorageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	opts.Storage = n.storage
	opts.Logger = slog.New(slog.NewJSONHandler(n.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n.mgr, err = edge.NewManager(opts)
	if err != nil {
		t.Fatal(err)
	}
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello from "+r.TLS.ServerName)
	})
	errLog := slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn)
	hs := &http.Server{Handler: app, TLSConfig: n.mgr.TLSConfig(), ReadHeaderTimeout: 5 * time.Second, ErrorLog: errLog}
	plain := &http.Server{Handler: n.mgr.HTTPHandler(edge.RedirectHTTPS(opts.Domains, "443")), ReadHeaderTimeout: 5 * time.Second, ErrorLog: errLog}
	var wg sync.WaitGroup
	wg.Go(func() { _ = hs.ServeTLS(tlsLn, "", "") })
	wg.Go(func() { _ = plain.Serve(httpLn) })
	ctx, cancel := context.WithCancel(context.Background())
	if err := n.mgr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	n.shutdown = sync.OnceFunc(func() {
		cancel()
		n.mgr.Stop()
		_ = hs.Close()
		_ = plain.Close()
		wg.Wait()
		_ = n.storage.Close(context.Background())
	})
	t.Cleanup(func() {
		n.shutdown()
		if t.Failed() {
			t.Logf("node logs:\n%s", n.logs.String())
		}
	})
	return n
}

// waitReady waits until the node has its certificates.
func (n *node) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := n.mgr.Ready(context.Background())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get fetches path over HTTPS from the node as domain, trusting only roots.
func (n *node) get(t *testing.T, domain string, roots *x509.CertPool) (string, *x509.Certificate) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: domain},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, n.tlsLn.Addr().String())
		},
		ForceAttemptHTTP2: true,
	}}
	resp, err := client.Get("https://" + domain + "/")
	if err != nil {
		t.Fatalf("HTTPS to %s: %v", domain, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("HTTPS to %s: %d %s", domain, resp.StatusCode, body)
	}
	return string(body), resp.TLS.PeerCertificates[0]
}

// TestObtainCertificate obtains certificates from a local ACME server with
// each challenge type, serves HTTPS with them, and shows a second node on
// the same store serving the same certificate without asking the CA.
func TestObtainCertificate(t *testing.T) {
	for _, tc := range []struct {
		name      string
		domain    string
		challenge string // the only challenge type left enabled
	}{
		{"HTTP-01", "http01.tenon.test", "http-01"},
		{"TLS-ALPN-01", "alpn.tenon.test", "tls-alpn-01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tlsLn, httpLn := listen(t), listen(t)
			pebble := pebbletest.Start(t, pebbletest.Options{HTTPPort: port(httpLn), TLSPort: port(tlsLn)})
			opts := edge.ACMEOptions{Domains: []string{tc.domain}, CA: pebble.DirectoryURL, CARoots: pebble.CARoots}
			if tc.challenge == "http-01" {
				opts.HTTPAddr = httpLn.Addr().String()
			} else {
				opts.TLSAddr = tlsLn.Addr().String()
			}
			db := filepath.Join(t.TempDir(), "tenon.db")
			n := startNode(t, tlsLn, httpLn, db, opts)
			if err := n.mgr.Ready(context.Background()); err == nil {
				t.Fatal("ready before any certificate was obtained")
			}
			n.waitReady(t)
			roots := pebble.IssuerRoots(t)
			body, cert := n.get(t, tc.domain, roots)
			if body != "hello from "+tc.domain || cert.Subject.CommonName != tc.domain && (len(cert.DNSNames) == 0 || cert.DNSNames[0] != tc.domain) {
				t.Fatalf("served %q with a certificate for %v", body, cert.DNSNames)
			}
			if exp := n.mgr.Expiry()[tc.domain]; !exp.Equal(cert.NotAfter) {
				t.Errorf("Expiry = %v, served certificate expires %v", exp, cert.NotAfter)
			}
			if !strings.Contains(n.logs.String(), tc.challenge) {
				t.Errorf("logs do not mention solving %s", tc.challenge)
			}

			// A second node on the same store: with the first gone and
			// the CA down, it still serves the stored certificate.
			n.shutdown()
			pebble.Stop()
			tlsLn2, httpLn2 := listen(t), listen(t)
			opts.Domains = []string{tc.domain}
			opts.HTTPAddr, opts.TLSAddr = httpLn2.Addr().String(), tlsLn2.Addr().String()
			n2 := startNode(t, tlsLn2, httpLn2, db, opts)
			n2.waitReady(t)
			_, cert2 := n2.get(t, tc.domain, roots)
			if !cert2.Equal(cert) {
				t.Error("the second node serves another certificate than the one stored by the first")
			}
		})
	}
}

// A name the node has no certificate for gets no certificate at all: no
// default certificate, no on-demand issuance for names sent by clients.
func TestUnknownServerNameRefused(t *testing.T) {
	tlsLn, httpLn := listen(t), listen(t)
	n := startNode(t, tlsLn, httpLn, filepath.Join(t.TempDir(), "tenon.db"), edge.ACMEOptions{
		Domains: []string{"app.tenon.test"},
		CA:      "https://127.0.0.1:1/dir", // never reached in this test
		TLSAddr: tlsLn.Addr().String(),
	})
	conn, err := tls.Dial("tcp", n.tlsLn.Addr().String(), &tls.Config{ServerName: "other.tenon.test", InsecureSkipVerify: true})
	if err == nil {
		conn.Close()
		t.Fatal("handshake for an unmanaged name succeeded")
	}
}
