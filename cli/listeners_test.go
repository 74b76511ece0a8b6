package cli_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite" // raw reads of the store's file

	"github.com/tenon-dev/tenon/cli"
	"github.com/tenon-dev/tenon/examples/checklist"
	"github.com/tenon-dev/tenon/internal/pebbletest"
	"github.com/tenon-dev/tenon/keyring"
)

func TestEdgeConfig(t *testing.T) {
	base := []string{"--secret-key-file", "k"}
	ok := func(args ...string) *cli.Config {
		t.Helper()
		cfg, err := cli.LoadConfig(append(append([]string{}, base...), args...), env(nil), io.Discard)
		if err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		return cfg
	}
	cfg := ok("--base-url", "https://app.example.com")
	if cfg.AdminAddr != "127.0.0.1:9090" || cfg.HTTPAddr != "" || cfg.Addr != ":8080" || len(cfg.Domains) != 0 {
		t.Errorf("defaults without domains: admin %q, http %q, addr %q, domains %q", cfg.AdminAddr, cfg.HTTPAddr, cfg.Addr, cfg.Domains)
	}
	cfg = ok("--base-url", "https://app.example.com", "--domains", "App.Example.com, www.example.com", "--admin-addr", "off")
	if cfg.Addr != ":443" || cfg.HTTPAddr != ":80" || cfg.AdminAddr != "" || strings.Join(cfg.Domains, ",") != "app.example.com,www.example.com" {
		t.Errorf("with domains: addr %q, http %q, admin %q, domains %q", cfg.Addr, cfg.HTTPAddr, cfg.AdminAddr, cfg.Domains)
	}
	if cfg.ACMECA != "https://acme-v02.api.letsencrypt.org/directory" {
		t.Errorf("default CA %q", cfg.ACMECA)
	}
	cfg = ok("--base-url", "https://app.example.com", "--domains", "app.example.com", "--addr", ":8443", "--http-addr", "off")
	if cfg.Addr != ":8443" || cfg.HTTPAddr != "" {
		t.Errorf("explicit addresses: addr %q, http %q", cfg.Addr, cfg.HTTPAddr)
	}
	cfg = ok("--base-url", "https://app.example.com", "--trusted-proxies", "10.0.0.0/8, 192.0.2.7")
	if strings.Join(cfg.TrustedProxies, "|") != "10.0.0.0/8|192.0.2.7" {
		t.Errorf("trusted proxies %q", cfg.TrustedProxies)
	}

	bad := []struct {
		name string
		args []string
		want string
	}{
		{"base URL on another name", []string{"--base-url", "https://other.example.com", "--domains", "app.example.com"}, "not among --domains"},
		{"plain-HTTP base URL with domains", []string{"--environment", "development", "--install-keys-url", "http://127.0.0.1:1", "--base-url", "http://app.example.com", "--domains", "app.example.com"}, "must be https with --domains"},
		{"wildcard domain", []string{"--base-url", "https://app.example.com", "--domains", "*.example.com"}, "wildcard"},
		{"IP domain", []string{"--base-url", "https://app.example.com", "--domains", "192.0.2.1"}, "not an IP address"},
		{"plain-HTTP CA", []string{"--base-url", "https://app.example.com", "--domains", "app.example.com", "--acme-ca", "http://ca.example.com/dir"}, "--acme-ca"},
		{"same port twice", []string{"--base-url", "https://app.example.com", "--domains", "app.example.com", "--addr", ":80"}, "need their own ports"},
		{"http-addr without domains", []string{"--base-url", "https://app.example.com", "--http-addr", ":80"}, "only applies with --domains"},
		{"bad proxy", []string{"--base-url", "https://app.example.com", "--trusted-proxies", "10.0.0.0/8,proxy.example.com"}, "--trusted-proxies"},
		{"bad admin address", []string{"--base-url", "https://app.example.com", "--admin-addr", "9090"}, "--admin-addr"},
		{"bad email", []string{"--base-url", "https://app.example.com", "--domains", "app.example.com", "--acme-email", "ops at example"}, "--acme-email"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cli.LoadConfig(append(append([]string{}, base...), tc.args...), env(nil), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// serving is a backend started by startServe.
type serving struct {
	b     *cli.Backend
	logs  *syncBuffer
	admin string // address of the admin listener
	stop  func()
}

// startServe resolves args as `tenon serve` does and serves the checklist
// app on ln. Listeners the backend opens itself go through listen when it
// returns one.
func startServe(t *testing.T, ln net.Listener, args []string, listen func(addr string) net.Listener) *serving {
	t.Helper()
	dir := t.TempDir()
	key, err := keyring.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "secret.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// No drain delay: one node, no load balancer to wait for.
	args = append([]string{"--db", filepath.Join(dir, "tenon.db"), "--secret-key-file", keyFile, "--admin-addr", "127.0.0.1:0", "--drain-delay", "0"}, args...)
	cfg, err := cli.LoadConfig(args, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s := &serving{logs: &syncBuffer{}}
	logger := slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(context.Background())
	s.b, err = cli.Open(ctx, cfg, checklist.New(checklist.Options{}), logger)
	if err != nil {
		t.Fatal(err)
	}
	adminCh := make(chan string, 1)
	s.b.Listen = func(network, addr string) (net.Listener, error) {
		if l := listen(addr); l != nil {
			return l, nil
		}
		l, err := net.Listen(network, addr)
		if err == nil && addr == "127.0.0.1:0" {
			adminCh <- l.Addr().String()
		}
		return l, err
	}
	done := make(chan error, 1)
	go func() { done <- s.b.ServeListener(ctx, ln) }()
	select {
	case s.admin = <-adminCh:
	case err := <-done:
		t.Fatalf("serve ended at once: %v\n%s", err, s.logs.String())
	case <-time.After(30 * time.Second):
		t.Fatal("no admin listener")
	}
	stopped := false
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		s.b.Close()
	}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("server logs:\n%s", s.logs.String())
		}
	})
	return s
}

func fetch(t *testing.T, client *http.Client, method, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// logLine returns the request log line with request id id.
func logLine(t *testing.T, logs, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sc := bufio.NewScanner(strings.NewReader(logs))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil && m["msg"] == "request" && m["request_id"] == id {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no request line with id %q", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestServeHTTPS is the end-to-end test of automatic HTTPS: `tenon serve`
// with --domains obtains a certificate from a local ACME server (pebble),
// validated for real on loopback, and serves the app over HTTPS with it;
// plain HTTP redirects; readiness waits for the certificate; metrics and
// the store show it.
func TestServeHTTPS(t *testing.T) {
	const domain = "app.tenon.test"
	tlsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsPort, httpPort := tlsLn.Addr().(*net.TCPAddr).Port, httpLn.Addr().(*net.TCPAddr).Port
	pebble := pebbletest.Start(t, pebbletest.Options{HTTPPort: httpPort, TLSPort: tlsPort})
	origin := "https://" + domain + ":" + strconv.Itoa(tlsPort)
	s := startServe(t, tlsLn, []string{
		"--base-url", origin,
		"--addr", tlsLn.Addr().String(),
		"--http-addr", httpLn.Addr().String(),
		"--domains", domain,
		"--acme-ca", pebble.DirectoryURL,
		"--acme-ca-roots", pebble.CAFile,
		"--acme-email", "ops@tenon.test",
	}, func(addr string) net.Listener {
		if addr == httpLn.Addr().String() {
			return httpLn
		}
		return nil
	})

	// Readiness waits for the certificate.
	admin := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, body := fetch(t, admin, "GET", "http://"+s.admin+"/readyz")
		if resp.StatusCode == 200 {
			if !strings.Contains(body, "[+] certificate ok") || !strings.Contains(body, "[+] store ok") {
				t.Errorf("readyz: %q", body)
			}
			break
		}
		if !strings.Contains(body, "[-] certificate failed") {
			t.Fatalf("not ready for another reason: %q", body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate in time: %q", body)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The app over HTTPS, with a certificate pebble issued for the domain.
	roots := pebble.IssuerRoots(t)
	dial := func(target string) func(context.Context, string, string) (net.Conn, error) {
		return func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, target)
		}
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots},
		DialContext:       dial(tlsLn.Addr().String()),
		ForceAttemptHTTP2: true,
	}}
	resp, body := fetch(t, client, "GET", origin+"/atlassian-connect.json")
	if resp.StatusCode != 200 || !strings.Contains(body, `"baseUrl": "`+origin+`"`) && !strings.Contains(body, `"baseUrl":"`+origin+`"`) {
		t.Fatalf("descriptor over HTTPS: %d %s", resp.StatusCode, body)
	}
	if resp.ProtoMajor != 2 {
		t.Errorf("served over %s, want HTTP/2", resp.Proto)
	}
	leaf := resp.TLS.PeerCertificates[0]
	if err := leaf.VerifyHostname(domain); err != nil {
		t.Errorf("certificate: %v", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: domain, Intermediates: pool(resp.TLS.PeerCertificates[1:])}); err != nil {
		t.Errorf("certificate does not chain to pebble's root: %v", err)
	}
	id := resp.Header.Get("X-Request-Id")
	line := logLine(t, s.logs.String(), id)
	if line["route"] != "GET /atlassian-connect.json" || line["status"] != 200.0 {
		t.Errorf("request log line: %v", line)
	}
	if resp, body := fetch(t, client, "GET", origin+"/readyz"); resp.StatusCode != 200 || !strings.HasSuffix(body, "ready\n") {
		t.Errorf("public readyz: %d %q", resp.StatusCode, body)
	}

	// Plain HTTP redirects to the HTTPS origin.
	plain := &http.Client{Timeout: 10 * time.Second,
		Transport:     &http.Transport{DialContext: dial(httpLn.Addr().String())},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _ = fetch(t, plain, "GET", "http://"+domain+"/atlassian-connect.json?x=1")
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != origin+"/atlassian-connect.json?x=1" {
		t.Errorf("plain HTTP: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// Metrics on the admin listener.
	_, metricsText := fetch(t, admin, "GET", "http://"+s.admin+"/metrics")
	for _, want := range []string{
		`tenon_http_request_duration_seconds_count{code="200",method="GET",route="GET /atlassian-connect.json"} 1`,
		`tenon_tls_certificate_expiry_timestamp_seconds{domain="app.tenon.test"}`,
		`tenon_tenants{state="enabled"} 0`,
		`tenon_store_connections{pool="writer",state="idle"}`,
		`tenon_build_info{`,
	} {
		if !strings.Contains(metricsText, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// The certificate and its private key are in the store, sealed.
	dbPath := s.b.Config.DB
	s.stop()
	db, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT key, value FROM kv`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
		if strings.Contains(v, "PRIVATE KEY") || strings.Contains(v, "BEGIN CERTIFICATE") {
			t.Errorf("%s is stored in plain text", k)
		}
	}
	joined := strings.Join(keys, "\n")
	if !strings.Contains(joined, domain+".key") || !strings.Contains(joined, domain+".crt") {
		t.Errorf("the store lacks the certificate and key; keys:\n%s", joined)
	}
	if strings.Contains(s.logs.String(), "PRIVATE KEY") {
		t.Error("a private key is in the logs")
	}
}

func pool(certs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// Behind a proxy: only a trusted proxy's X-Forwarded-For and X-Request-Id
// reach the request log; anyone else's are ignored.
func TestServeBehindProxy(t *testing.T) {
	for _, tc := range []struct {
		name      string
		trusted   string
		remote    string
		requestID bool // the proxy's X-Request-Id is kept
	}{
		{"trusted proxy", "127.0.0.1", "203.0.113.9", true},
		{"untrusted peer", "10.0.0.0/8", "127.0.0.1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			s := startServe(t, ln, []string{"--base-url", "https://app.example.com", "--trusted-proxies", tc.trusted},
				func(string) net.Listener { return nil })
			client := &http.Client{Timeout: 10 * time.Second}
			const proxyID = "proxy-request-0123456789"
			resp, _ := fetch(t, client, "GET", "http://"+ln.Addr().String()+"/atlassian-connect.json",
				"X-Forwarded-For", "203.0.113.9", "X-Forwarded-Proto", "https", "X-Request-Id", proxyID)
			id := resp.Header.Get("X-Request-Id")
			if resp.StatusCode != 200 || id == "" {
				t.Fatalf("status %d, id %q", resp.StatusCode, id)
			}
			if (id == proxyID) != tc.requestID {
				t.Errorf("request id %q; proxy's kept: %v, want %v", id, id == proxyID, tc.requestID)
			}
			if line := logLine(t, s.logs.String(), id); line["remote"] != tc.remote {
				t.Errorf("logged remote %v, want %s", line["remote"], tc.remote)
			}
			for _, path := range []string{"/livez", "/readyz"} {
				if resp, body := fetch(t, client, "GET", "http://"+ln.Addr().String()+path); resp.StatusCode != 200 {
					t.Errorf("%s: %d %q", path, resp.StatusCode, body)
				}
			}
		})
	}
}

// Readiness turns 503 on both listeners when a registered check fails,
// with the reason only on the admin listener.
func TestServeReadinessHook(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := startServe(t, ln, []string{"--base-url", "https://app.example.com"}, func(string) net.Listener { return nil })
	client := &http.Client{Timeout: 10 * time.Second}
	s.b.Health.RegisterState("gate", func() error { return errGate })
	resp, body := fetch(t, client, "GET", "http://"+ln.Addr().String()+"/readyz")
	if resp.StatusCode != 503 || !strings.Contains(body, "[-] gate failed\n") || strings.Contains(body, "closed for") {
		t.Errorf("public readyz: %d %q", resp.StatusCode, body)
	}
	resp, body = fetch(t, client, "GET", "http://"+s.admin+"/readyz")
	if resp.StatusCode != 503 || !strings.Contains(body, "[-] gate failed: closed for the test") {
		t.Errorf("admin readyz: %d %q", resp.StatusCode, body)
	}
	if resp, _ := fetch(t, client, "GET", "http://"+ln.Addr().String()+"/livez"); resp.StatusCode != 200 {
		t.Errorf("livez while not ready: %d", resp.StatusCode)
	}
	// Metrics are not on the public listener.
	if resp, _ := fetch(t, client, "GET", "http://"+ln.Addr().String()+"/metrics"); resp.StatusCode != 404 {
		t.Errorf("public /metrics: %d, want 404", resp.StatusCode)
	}
}

type gateError struct{}

func (gateError) Error() string { return "closed for the test" }

var errGate = gateError{}
