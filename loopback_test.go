package tenon_test

import (
	"testing"

	"github.com/tenon-dev/tenon"
)

func TestLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost":          true,
		"LOCALHOST.":         true,
		"127.0.0.1":          true,
		"127.8.9.10":         true,
		"::1":                true,
		"[::1]":              true,
		"::ffff:127.0.0.1":   true,
		"":                   false,
		"app.localhost":      false,
		"localhost.example":  false,
		"128.0.0.1":          false,
		"0.0.0.0":            false,
		"::":                 false,
		"10.0.0.1":           false,
		"acme.atlassian.net": false,
		"127.1":              false,
		"127.0.0.1.nip.io":   false,
	} {
		if got := tenon.LoopbackHost(host); got != want {
			t.Errorf("LoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}
