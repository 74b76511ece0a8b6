package hostclient_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tenon-dev/tenon/fakeatlassian"
	"github.com/tenon-dev/tenon/hostclient"
	"github.com/tenon-dev/tenon/qsh"
)

// TestHTTPClientSignsForTenant: requests built by a client library from
// BaseURL verify at the product, qsh relative to the base path included.
func TestHTTPClientSignsForTenant(t *testing.T) {
	p := newProduct(t, "/wiki", nil)
	tenant := newClient(hostclient.Options{}).AsApp(p.installation())
	if got, want := tenant.BaseURL(), p.srv.URL+"/wiki"; got != want {
		t.Fatalf("BaseURL %q, want %q", got, want)
	}
	for _, tt := range []struct{ method, target, wantQSH string }{
		{"GET", "/rest/api/content/123?expand=b&expand=a", qsh.Hash("GET", "/rest/api/content/123", "expand=a&expand=b", "")},
		{"DELETE", "/rest/api/content/123", qsh.Hash("DELETE", "/rest/api/content/123", "", "")},
		{"GET", "", qsh.Hash("GET", "/", "", "")},
	} {
		req, _ := http.NewRequest(tt.method, tenant.BaseURL()+tt.target, nil)
		req.Header.Set("Authorization", "Basic c3RvbGVuOmNyZWRz") // a library's own; replaced
		resp, err := tenant.HTTPClient().Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tt.method, tt.target, err)
		}
		resp.Body.Close()
		reqs := p.requests()
		got := reqs[len(reqs)-1]
		if got.verifyErr != nil || got.claims.QSH != tt.wantQSH {
			t.Errorf("%s %s: verify %v, qsh %q want %q", tt.method, tt.target, got.verifyErr, got.claims.QSH, tt.wantQSH)
		}
	}
}

// TestHTTPClientRefusesOtherTargets: the tenant's client signs nothing
// that is not for the tenant, whatever a library builds.
func TestHTTPClientRefusesOtherTargets(t *testing.T) {
	p := newProduct(t, "/wiki", nil)
	var otherHits atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { otherHits.Add(1) }))
	defer other.Close()
	tenant := newClient(hostclient.Options{}).AsApp(p.installation())
	base := p.srv.URL
	for _, tt := range []struct {
		name, method, url string
		body              io.Reader
	}{
		{"another origin", "GET", other.URL + "/wiki/rest/api/content/1", nil},
		{"another host name", "GET", strings.Replace(base, "127.0.0.1", "localhost", 1) + "/wiki/rest/api/content/1", nil},
		{"another scheme", "GET", strings.Replace(base, "http://", "https://", 1) + "/wiki/rest/api/content/1", nil},
		{"outside the base path", "GET", base + "/rest/api/3/myself", nil},
		{"base path prefix of another segment", "GET", base + "/wikis/rest/api/content/1", nil},
		{"dot segments", "GET", base + "/wiki/rest/../../admin", nil},
		{"encoded dot segments", "GET", base + "/wiki/rest/%2e%2e/%2E%2E/admin", nil},
		{"GET with a body", "GET", base + "/wiki/rest/api/content/1", strings.NewReader("x")},
		{"Host header of another site", "GET", base + "/wiki/rest/api/content/1", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, tt.url, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(tt.name, "Host header") {
				req.Host = "other-site.atlassian.net"
			}
			if resp, err := tenant.HTTPClient().Do(req); err == nil {
				resp.Body.Close()
				t.Fatalf("sent; want refused")
			}
		})
	}
	if n := len(p.requests()); n != 0 {
		t.Errorf("the product saw %d requests", n)
	}
	if n := otherHits.Load(); n != 0 {
		t.Errorf("the other origin saw %d requests", n)
	}
	// A refusal is the caller's mistake and does not count against the
	// site: a proper call still goes out.
	if err := tenant.GetJSON(context.Background(), "/rest/api/content/1", nil); err != nil {
		t.Errorf("a proper call after the refusals: %v", err)
	}
}

// TestHTTPClientRedirects: through a library too, a redirect to another
// origin is not followed and one on the origin carries no credential.
func TestHTTPClientRedirects(t *testing.T) {
	var otherHits atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { otherHits.Add(1) }))
	defer other.Close()
	p := newProduct(t, "", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away":
			http.Redirect(w, r, other.URL+"/steal", http.StatusFound)
		case "/old":
			http.Redirect(w, r, "/moved", http.StatusFound)
		}
	})
	tenant := newClient(hostclient.Options{}).AsApp(p.installation())
	resp, err := tenant.HTTPClient().Get(tenant.BaseURL() + "/away")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || otherHits.Load() != 0 {
		t.Errorf("redirect away: %d, other origin hit %d times", resp.StatusCode, otherHits.Load())
	}
	// The product helper refuses unsigned requests with 401, so the
	// followed redirect to /moved must arrive without a token.
	resp, err = tenant.HTTPClient().Get(tenant.BaseURL() + "/old")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	reqs := p.requests()
	last := reqs[len(reqs)-1]
	if last.target != "/moved" || last.auth != "" {
		t.Errorf("followed redirect: %s with Authorization %q, want /moved without", last.target, last.auth)
	}
}

// TestHTTPClientAsUserOnConfluence: a library acting as a user on a
// Confluence site, whose base URL has the /wiki path.
func TestHTTPClientAsUserOnConfluence(t *testing.T) {
	fs := newFakeSite(t, "docs", fakeatlassian.ProductConfluence, nil, "READ", "ACT_AS_USER")
	c := hostclient.New(appKey, hostclient.Options{AuthServerURL: fs.fake.AuthServerURL()})
	tenant := c.AsUser(fs.in, fs.site.DefaultAccountID)
	req, _ := http.NewRequestWithContext(context.Background(), "GET", tenant.BaseURL()+"/rest/api/user/current", nil)
	resp, err := tenant.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), fs.site.DefaultAccountID) {
		t.Fatalf("got %d %s", resp.StatusCode, body)
	}
	if tenant.AccountID() != fs.site.DefaultAccountID {
		t.Errorf("AccountID %q", tenant.AccountID())
	}
	// The token endpoint failing typed through the library's error.
	_, err = c.AsUser(fs.in, "557058:unknown").HTTPClient().Get(tenant.BaseURL() + "/rest/api/user/current")
	var te *hostclient.TokenError
	if !errors.As(err, &te) || !errors.Is(err, hostclient.ErrUnauthorized) {
		t.Errorf("unknown user through the library: %v", err)
	}
}
