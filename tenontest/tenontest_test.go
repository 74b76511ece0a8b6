package tenontest_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tenon-dev/tenon/examples/hello"
	"github.com/tenon-dev/tenon/fakeatlassian"
	"github.com/tenon-dev/tenon/tenontest"
)

func TestStartInstallsAndSigns(t *testing.T) {
	env := tenontest.Start(t, hello.New(), tenontest.Options{})
	if _, err := env.Backend.Store.Installation(t.Context(), env.Site.ClientKey); err != nil {
		t.Fatalf("the install did not reach the store: %v", err)
	}
	res := env.Page("hello", fakeatlassian.FrameOptions{})
	if res.Status != http.StatusOK || !strings.Contains(res.Body, env.Site.DefaultAccountID) {
		t.Fatalf("the signed page answered %s", res)
	}
	// The same page without the fake's signature is refused.
	if res := env.Do(http.MethodGet, env.BaseURL+"/hello", nil, nil); res.Status != http.StatusUnauthorized {
		t.Fatalf("an unsigned request answered %s, want 401", res)
	}
	// A context token is not accepted on a module route.
	if res := env.APIWithToken(http.MethodGet, "/hello", env.ContextToken(fakeatlassian.FrameOptions{}), nil); res.Status != http.StatusUnauthorized {
		t.Fatalf("a context token on a module page answered %s, want 401", res)
	}
}
