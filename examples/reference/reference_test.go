package reference_test

import (
	"html"
	"net/http"
	"strings"
	"testing"

	"github.com/tenon-dev/tenon/cli"
	"github.com/tenon-dev/tenon/examples/reference"
	"github.com/tenon-dev/tenon/fakeatlassian"
	"github.com/tenon-dev/tenon/tenontest"
)

var _ cli.App = (*reference.App)(nil)

func TestPageReadsTheStoredValue(t *testing.T) {
	env := tenontest.Start(t, reference.New(), tenontest.Options{})
	frame := fakeatlassian.FrameOptions{IssueKey: "DEMO-1"}

	// Before the value is stored, the page says it is missing.
	if res := env.Page("reference-page", frame); res.Status != http.StatusNotFound {
		t.Fatalf("page without a value: %s, want 404", res)
	}
	if res := env.API(http.MethodPut, "/api/reference-value", map[string]string{"greeting": "Hello <b>there</b>"}); res.Status != http.StatusNoContent {
		t.Fatalf("store the value: %s", res)
	}
	res := env.Page("reference-page", frame)
	if res.Status != http.StatusOK {
		t.Fatalf("page: %s", res)
	}
	for _, want := range []string{
		html.EscapeString("Hello <b>there</b>"),
		"Site: " + html.EscapeString(env.Site.BaseURL),
		"User: " + html.EscapeString(env.Site.DefaultAccountID),
	} {
		if !strings.Contains(res.Body, want) {
			t.Errorf("page lacks %q:\n%s", want, res.Body)
		}
	}
	if strings.Contains(res.Body, "<b>") {
		t.Errorf("the greeting is not escaped:\n%s", res.Body)
	}
}

func TestValueIsChecked(t *testing.T) {
	env := tenontest.Start(t, reference.New(), tenontest.Options{})
	for name, body := range map[string]any{
		"not an object": []int{1},
		"empty":         map[string]string{"greeting": ""},
		"too long":      map[string]string{"greeting": strings.Repeat("x", reference.MaxGreeting+1)},
	} {
		if res := env.API(http.MethodPut, "/api/reference-value", body); res.Status != http.StatusBadRequest {
			t.Errorf("%s: %s, want 400", name, res)
		}
	}
	// An unsigned request reaches neither route.
	if res := env.Do(http.MethodGet, env.BaseURL+"/reference?issueKey=DEMO-1", nil, nil); res.Status != http.StatusUnauthorized {
		t.Errorf("unsigned page: %s, want 401", res)
	}
	if res := env.Do(http.MethodPut, env.BaseURL+"/api/reference-value", http.Header{"Content-Type": {"application/json"}}, strings.NewReader(`{"greeting":"x"}`)); res.Status != http.StatusUnauthorized {
		t.Errorf("unsigned store: %s, want 401", res)
	}
}
