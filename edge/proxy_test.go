package edge_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tenon-dev/tenon/edge"
)

// seen is what the app handler saw of a request.
type seen struct {
	RemoteIP  string
	Host      string
	Forwarded map[string]string
}

func echo(w http.ResponseWriter, r *http.Request) {
	s := seen{Host: r.Host, Forwarded: map[string]string{}}
	s.RemoteIP, _, _ = net.SplitHostPort(r.RemoteAddr)
	for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", "X-Real-Ip", "X-Request-Id"} {
		if v := r.Header.Values(h); len(v) > 0 {
			s.Forwarded[h] = strings.Join(v, "|")
		}
	}
	_ = json.NewEncoder(w).Encode(s)
}

func through(t *testing.T, trusted []string, header map[string]string) seen {
	t.Helper()
	tp, err := edge.ParseTrustedProxies(trusted)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(tp.Handler(http.HandlerFunc(echo)))
	defer ts.Close()
	req, err := http.NewRequest("GET", ts.URL+"/page", nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s seen
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	return s
}

var spoofed = map[string]string{
	"X-Forwarded-For":   "203.0.113.9",
	"X-Forwarded-Proto": "https",
	"X-Forwarded-Host":  "evil.example",
	"Forwarded":         "for=203.0.113.9;proto=https",
	"X-Real-Ip":         "203.0.113.9",
	"X-Request-Id":      "chosen-by-the-client",
}

// A peer that is not a trusted proxy cannot claim another address, host
// or scheme: every forwarding header is gone before the app runs.
func TestUntrustedPeerForwardingIgnored(t *testing.T) {
	for name, trusted := range map[string][]string{
		"no proxies":          nil,
		"other network":       {"10.0.0.0/8"},
		"other address, IPv6": {"::2", "192.0.2.1"},
		"blank configuration": {"", " "},
	} {
		t.Run(name, func(t *testing.T) {
			s := through(t, trusted, spoofed)
			if s.RemoteIP != "127.0.0.1" {
				t.Errorf("client address %q, want the peer's 127.0.0.1", s.RemoteIP)
			}
			if !strings.HasPrefix(s.Host, "127.0.0.1:") {
				t.Errorf("host %q, want the request's own", s.Host)
			}
			if len(s.Forwarded) > 0 {
				t.Errorf("forwarding headers reached the app: %v", s.Forwarded)
			}
		})
	}
}

func TestTrustedProxyForwarding(t *testing.T) {
	tests := []struct {
		name      string
		trusted   []string
		header    map[string]string
		remote    string
		host      string // "" means the request's own
		forwarded map[string]string
	}{
		{
			name:    "client address, host and scheme from the proxy",
			trusted: []string{"127.0.0.0/8"},
			header:  map[string]string{"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.example.com", "X-Request-Id": "abc-123"},
			remote:  "203.0.113.9", host: "app.example.com",
			forwarded: map[string]string{"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "app.example.com", "X-Request-Id": "abc-123"},
		},
		{
			// The client wrote the left entry; the proxy appended the
			// address it saw. The rightmost untrusted entry wins.
			name:    "forged entry on the left",
			trusted: []string{"127.0.0.1"},
			header:  map[string]string{"X-Forwarded-For": "6.6.6.6, 203.0.113.9"},
			remote:  "203.0.113.9",
		},
		{
			name:    "chain of trusted proxies",
			trusted: []string{"127.0.0.1", "10.0.0.0/8"},
			header:  map[string]string{"X-Forwarded-For": "6.6.6.6, 203.0.113.9, 10.1.2.3"},
			remote:  "203.0.113.9",
		},
		{
			name:    "malformed nearest entry: the proxy itself is the client",
			trusted: []string{"127.0.0.1"},
			header:  map[string]string{"X-Forwarded-For": "203.0.113.9, not-an-ip"},
			remote:  "127.0.0.1",
		},
		{
			name:    "IPv6 client",
			trusted: []string{"127.0.0.1"},
			header:  map[string]string{"X-Forwarded-For": "2001:db8::7"},
			remote:  "2001:db8::7",
		},
		{
			name:      "bad scheme and host are dropped",
			trusted:   []string{"127.0.0.1"},
			header:    map[string]string{"X-Forwarded-Proto": "javascript", "X-Forwarded-Host": "evil host/x"},
			remote:    "127.0.0.1",
			forwarded: map[string]string{"X-Forwarded-Host": "evil host/x"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := through(t, tc.trusted, tc.header)
			if s.RemoteIP != tc.remote {
				t.Errorf("client address %q, want %q", s.RemoteIP, tc.remote)
			}
			if tc.host == "" && !strings.HasPrefix(s.Host, "127.0.0.1:") || tc.host != "" && s.Host != tc.host {
				t.Errorf("host %q, want %q", s.Host, tc.host)
			}
			for k, v := range tc.forwarded {
				if s.Forwarded[k] != v {
					t.Errorf("%s = %q, want %q", k, s.Forwarded[k], v)
				}
			}
			if _, ok := s.Forwarded["X-Forwarded-Proto"]; ok && tc.header["X-Forwarded-Proto"] == "javascript" {
				t.Error("a bad X-Forwarded-Proto reached the app")
			}
		})
	}
}

func TestParseTrustedProxies(t *testing.T) {
	for _, bad := range []string{"nonsense", "10.0.0.0/33", "300.1.1.1", "10.0.0.0/8/1"} {
		if _, err := edge.ParseTrustedProxies([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	tp, err := edge.ParseTrustedProxies([]string{"10.0.0.0/8", "::1", "192.0.2.7"})
	if err != nil || tp.Empty() {
		t.Fatalf("%v %v", tp, err)
	}
	if p, _ := edge.ParseTrustedProxies(nil); !p.Empty() {
		t.Error("nil list is not empty")
	}
}

func TestRedirectHTTPS(t *testing.T) {
	h := edge.RedirectHTTPS([]string{"App.Example.com"}, "8443")
	ts := httptest.NewServer(h)
	defer ts.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tests := []struct {
		host, path string
		status     int
		location   string
	}{
		{"app.example.com", "/page?jwt=x&y=1", 308, "https://app.example.com:8443/page?jwt=x&y=1"},
		{"APP.example.com:80", "/", 308, "https://app.example.com:8443/"},
		{"evil.example", "/page", 404, ""},
		{"app.example.com.evil.example", "/", 404, ""},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest("POST", ts.URL+tc.path, nil)
		req.Host = tc.host
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Location") != tc.location {
			t.Errorf("%s%s: %d %q, want %d %q", tc.host, tc.path, resp.StatusCode, resp.Header.Get("Location"), tc.status, tc.location)
		}
	}
	// The default port is left out of the URL.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "http://app.example.com/x", nil)
	edge.RedirectHTTPS([]string{"app.example.com"}, "443").ServeHTTP(rec, req)
	if got := rec.Header().Get("Location"); got != "https://app.example.com/x" {
		t.Errorf("Location %q", got)
	}
}

func TestCleanDomains(t *testing.T) {
	got, err := edge.CleanDomains([]string{" App.Example.com. ", "app.example.com", "", "b.example.org"})
	if err != nil || strings.Join(got, ",") != "app.example.com,b.example.org" {
		t.Errorf("CleanDomains = %q, %v", got, err)
	}
	for _, bad := range [][]string{nil, {""}, {"*.example.com"}, {"127.0.0.1"}, {"localhost"}, {"exa mple.com"}, {"-a.example.com"}, {"a_b.example.com"}} {
		if _, err := edge.CleanDomains(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
