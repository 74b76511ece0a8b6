package server_test

import (
	"testing"

	"github.com/tenon-dev/tenon/server"
)

func TestHostMatches(t *testing.T) {
	for _, tc := range []struct {
		glob, host string
		want       bool
	}{
		{"*.atlassian.net", "acme.atlassian.net", true},
		{"*.atlassian.net", "atlassian.net", false},
		{"*.atlassian.net", "a.b.atlassian.net", false},
		{"*.atlassian.net", ".atlassian.net", false},
		{"*.atlassian.net", "acme.atlassian.net.evil.com", false},
		{"*.atlassian.net", "acmeatlassian.net", false},
		{"*.atlassian.net", "acme.atlassian.netx", false},
		{"*.*.example.com", "a.b.example.com", true},
		{"localhost", "localhost", true},
		{"localhost", "localhost.evil.com", false},
		{"127.0.0.1", "127.0.0.1", true},
		{"127.0.0.1", "127.0.0.10", false},
	} {
		if got := server.HostMatches(tc.glob, tc.host); got != tc.want {
			t.Errorf("HostMatches(%q, %q) = %v, want %v", tc.glob, tc.host, got, tc.want)
		}
	}
}

func TestValidateHostGlob(t *testing.T) {
	for _, g := range []string{"*.atlassian.net", "localhost", "*.*.example.com", "127.0.0.1"} {
		if err := server.ValidateHostGlob(g); err != nil {
			t.Errorf("%q: %v", g, err)
		}
	}
	for _, g := range []string{"", "*", "*.*", "a*.atlassian.net", "*.Atlassian.net", "x..net", "host:443", "https://x.net"} {
		if err := server.ValidateHostGlob(g); err == nil {
			t.Errorf("%q accepted", g)
		}
	}
}
