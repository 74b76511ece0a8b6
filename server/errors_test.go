package server_test

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/server"
)

// TestUnavailableSaysWhenToRetry: a dependency that is down answers 503
// with Retry-After and the error's own message, in JSON and in HTML,
// never its cause; other statuses carry no Retry-After, and one a
// handler set (maintenance, a product's own) is kept.
func TestUnavailableSaysWhenToRetry(t *testing.T) {
	err := tenon.WrapError(tenon.EUNAVAILABLE, "The app's database cannot be reached right now; try again in a moment.",
		errors.New("dial tcp 127.0.0.1:5432: connect: connection refused (password=hunter2)"))
	for _, accept := range []string{"application/json", "text/html"} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("Accept", accept)
		server.WriteError(rec, req, err)
		body := rec.Body.String()
		if rec.Code != 503 {
			t.Errorf("%s: status %d, want 503", accept, rec.Code)
		}
		if got := rec.Header().Get("Retry-After"); got != "5" {
			t.Errorf("%s: Retry-After %q, want 5", accept, got)
		}
		if !strings.Contains(body, "cannot be reached right now") {
			t.Errorf("%s: body lacks the message: %s", accept, body)
		}
		for _, leak := range []string{"hunter2", "5432", "dial"} {
			if strings.Contains(body, leak) {
				t.Errorf("%s: body shows the cause (%q): %s", accept, leak, body)
			}
		}
		if !strings.HasPrefix(rec.Header().Get("Content-Type"), accept) {
			t.Errorf("%s: Content-Type %q", accept, rec.Header().Get("Content-Type"))
		}
	}

	rec := httptest.NewRecorder()
	server.WriteError(rec, httptest.NewRequest("GET", "/", nil), tenon.Errorf(tenon.EINTERNAL, "Internal error."))
	if rec.Code != 500 || rec.Header().Get("Retry-After") != "" {
		t.Errorf("500: status %d, Retry-After %q, want none", rec.Code, rec.Header().Get("Retry-After"))
	}

	rec = httptest.NewRecorder()
	rec.Header().Set("Retry-After", "120")
	server.WriteError(rec, httptest.NewRequest("GET", "/", nil), err)
	if got := rec.Header().Get("Retry-After"); got != "120" {
		t.Errorf("a Retry-After already set became %q, want 120 kept", got)
	}
}
