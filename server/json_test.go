package server_test

import (
	"math"
	"net/http/httptest"
	"testing"

	"github.com/tenon-dev/tenon/server"
)

func TestWriteJSON(t *testing.T) {
	rec := httptest.NewRecorder()
	if err := server.WriteJSON(rec, 201, map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 201 || rec.Body.String() != "{\"n\":1}\n" || rec.Header().Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("got %d %q %q", rec.Code, rec.Body.String(), rec.Header().Get("Content-Type"))
	}

	rec = httptest.NewRecorder()
	if err := server.WriteJSON(rec, 200, math.Inf(1)); err == nil {
		t.Fatal("an unencodable value gave no error")
	}
	if rec.Body.Len() != 0 || rec.Header().Get("Content-Type") != "" {
		t.Fatalf("something was written for an unencodable value: %q", rec.Body.String())
	}
}
