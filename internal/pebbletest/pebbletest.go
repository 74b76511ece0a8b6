// Package pebbletest runs pebble, the ACME test server of Let's Encrypt,
// on loopback for tests that obtain real certificates: a DNS server of
// its own points every name at 127.0.0.1, so pebble validates HTTP-01 and
// TLS-ALPN-01 challenges against the test's own listeners.
//
// The pebble binary is looked up on PATH and in GOPATH/bin (`make tools`
// installs it). Without it tests skip, unless TENON_REQUIRE_PEBBLE=1 (as
// in CI) makes its absence a failure.
package pebbletest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"go/build"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Pebble is a running pebble server.
type Pebble struct {
	// DirectoryURL is the ACME directory.
	DirectoryURL string
	// CARoots trust pebble's own HTTPS endpoints (directory, management);
	// CAFile holds the same root as PEM.
	CARoots *x509.CertPool
	CAFile  string

	mgmtURL string
	stop    func()
}

// Stop ends pebble now, for tests that show something works without the
// CA. It is also done when the test ends.
func (p *Pebble) Stop() { p.stop() }

// Options say where pebble validates challenges.
type Options struct {
	// HTTPPort and TLSPort are the loopback ports pebble connects to for
	// HTTP-01 and TLS-ALPN-01 challenges.
	HTTPPort, TLSPort int
}

// Binary returns the path of the pebble binary, skipping tb when there is
// none (failing it when TENON_REQUIRE_PEBBLE=1).
func Binary(tb testing.TB) string {
	tb.Helper()
	if p, err := exec.LookPath("pebble"); err == nil {
		return p
	}
	for _, dir := range filepath.SplitList(build.Default.GOPATH) {
		p := filepath.Join(dir, "bin", "pebble")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	const why = "pebble is not installed (make tools installs it)"
	if os.Getenv("TENON_REQUIRE_PEBBLE") == "1" {
		tb.Fatalf("pebble is required (TENON_REQUIRE_PEBBLE=1): %s", why)
	}
	tb.Skip(why)
	return ""
}

// Start runs pebble until tb ends.
func Start(tb testing.TB, opts Options) *Pebble {
	tb.Helper()
	bin := Binary(tb)
	dir := tb.TempDir()

	roots, caFile, certFile, keyFile := writeServerCert(tb, dir)
	dnsAddr := startDNS(tb)
	listen, mgmt := freePort(tb), freePort(tb)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":                  listen,
		"managementListenAddress":        mgmt,
		"certificate":                    certFile,
		"privateKey":                     keyFile,
		"httpPort":                       opts.HTTPPort,
		"tlsPort":                        opts.TLSPort,
		"ocspResponderURL":               "",
		"externalAccountBindingRequired": false,
		"keyAlgorithm":                   "ecdsa",
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
	}}
	raw, err := json.Marshal(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgFile, raw, 0o600); err != nil {
		tb.Fatal(err)
	}

	out := &lockedBuffer{}
	cmd := exec.Command(bin, "-config", cfgFile, "-dnsserver", dnsAddr)
	cmd.Env = append(os.Environ(),
		"PEBBLE_VA_NOSLEEP=1",      // validate at once
		"PEBBLE_WFE_NONCEREJECT=0", // no random bad nonces: deterministic runs
		"PEBBLE_AUTHZREUSE=0",      // every order proves control again
	)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start pebble: %v", err)
	}
	// Stop exactly the process we started, by its pid, once.
	stop := sync.OnceFunc(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	tb.Cleanup(func() {
		stop()
		if tb.Failed() {
			tb.Logf("pebble output:\n%s", out.String())
		}
	})

	p := &Pebble{
		DirectoryURL: "https://" + listen + "/dir",
		CARoots:      roots,
		CAFile:       caFile,
		mgmtURL:      "https://" + mgmt,
		stop:         stop,
	}
	client := p.client()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(p.DirectoryURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("pebble did not come up at %s: %v\n%s", p.DirectoryURL, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p
}

func (p *Pebble) client() *http.Client {
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.CARoots}},
	}
}

// IssuerRoots returns the roots of the certificates pebble issues (a new
// one per pebble run), to verify what a server under test serves.
func (p *Pebble) IssuerRoots(tb testing.TB) *x509.CertPool {
	tb.Helper()
	resp, err := p.client().Get(p.mgmtURL + "/roots/0")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		tb.Fatalf("pebble root: %d %v", resp.StatusCode, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(raw) {
		tb.Fatalf("pebble root is not PEM: %q", raw)
	}
	return pool
}

// writeServerCert makes a throwaway CA and a certificate for 127.0.0.1
// and localhost signed by it, for pebble's HTTPS listeners.
func writeServerCert(tb testing.TB, dir string) (pool *x509.CertPool, caFile, certFile, keyFile string) {
	tb.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tenon test ACME server CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		tb.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		tb.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return pool, caFile, certFile, keyFile
}

// freePort returns a loopback address whose port was free a moment ago.
func freePort(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startDNS answers every A query with 127.0.0.1 and every other query
// with no records, over TCP (the transport pebble uses) on loopback,
// until tb ends.
func startDNS(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return // closed at cleanup
			}
			wg.Go(func() { serveDNS(conn) })
		}
	})
	tb.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// serveDNS answers the length-prefixed queries of one TCP connection
// (RFC 1035 §4.2.2).
func serveDNS(conn net.Conn) {
	defer conn.Close()
	for {
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		var n [2]byte
		if _, err := io.ReadFull(conn, n[:]); err != nil {
			return
		}
		q := make([]byte, int(n[0])<<8|int(n[1]))
		if _, err := io.ReadFull(conn, q); err != nil {
			return
		}
		resp, ok := dnsAnswer(q)
		if !ok {
			return
		}
		if _, err := conn.Write(append([]byte{byte(len(resp) >> 8), byte(len(resp))}, resp...)); err != nil {
			return
		}
	}
}

// dnsAnswer builds the response to one DNS query (RFC 1035 §4.1).
func dnsAnswer(q []byte) ([]byte, bool) {
	if len(q) < 12 {
		return nil, false
	}
	// The question name ends with a zero-length label; no compression
	// appears in a query's only question.
	i := 12
	for i < len(q) && q[i] != 0 {
		i += int(q[i]) + 1
	}
	if i+5 > len(q) {
		return nil, false
	}
	question := q[12 : i+5]
	qtype := int(q[i+1])<<8 | int(q[i+2])
	var b bytes.Buffer
	b.Write(q[0:2])                         // id
	b.Write([]byte{0x84 | q[2]&0x01, 0x80}) // QR, AA, RD copied; RA; NOERROR
	b.Write([]byte{0, 1})                   // one question
	if qtype == 1 {                         // A
		b.Write([]byte{0, 1})
	} else {
		b.Write([]byte{0, 0})
	}
	b.Write([]byte{0, 0, 0, 0}) // no authority, no additional
	b.Write(question)
	if qtype == 1 {
		b.Write([]byte{0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1})
	}
	return b.Bytes(), true
}

// lockedBuffer collects pebble's output from its two streams.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// String describes the server, for test logs.
func (p *Pebble) String() string { return fmt.Sprintf("pebble at %s", p.DirectoryURL) }
