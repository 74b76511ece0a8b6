package main

import (
	"strings"
	"testing"
)

func TestPageSize(t *testing.T) {
	for _, size := range []int{330, 1000} {
		p := Page(size)
		if len(p) != size || !strings.HasPrefix(string(p), "<!doctype html>") || !strings.HasSuffix(string(p), "</html>\n") {
			t.Errorf("Page(%d) has %d bytes: %q", size, len(p), p)
		}
	}
	if p := Page(1); !strings.HasSuffix(string(p), "</html>\n") || strings.Contains(string(p), "x") {
		t.Errorf("Page(1) = %q, want the bare frame", p)
	}
}
