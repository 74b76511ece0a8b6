package hostclient_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/fakeatlassian"
	"github.com/tenon-dev/tenon/hostclient"
)

// refusedPaths are paths the one request path never sends, with what the
// refusal must say.
var refusedPaths = []struct {
	name, path, why string
	// builtByClient: through HTTPClient the path is legitimate, since a URL a
	// library builds is encoded (non-ASCII) or cut (the fragment) on its
	// way to the wire.
	builtByClient bool
}{
	{"empty", "", "must start with '/'", false},
	{"relative", "rest/api/3/myself", "must start with '/'", false},
	{"absolute URL", "https://evil.example/rest/api/3/myself", "without a scheme or host of its own", false},
	{"user info", "@evil.example/x", "must start with '/'", false},
	{"network path", "//evil.example/rest/api/3/myself", "names another host", false},
	{"dot dot", "/rest/api/3/../../admin", "dot segment", false},
	{"dot", "/rest/./api/3/myself", "dot segment", false},
	{"trailing dot dot", "/rest/api/3/..", "dot segment", false},
	{"encoded dot dot", "/rest/%2e%2e/admin", "dot segment", false},
	{"encoded dot dot, mixed case", "/rest/%2e%2E/admin", "dot segment", false},
	{"encoded dot dot, upper case", "/rest/%2E%2E/admin", "dot segment", false},
	{"half-encoded dot dot", "/rest/.%2e/admin", "dot segment", false},
	{"half-encoded dot dot, other half", "/rest/%2E./admin", "dot segment", false},
	{"encoded dot", "/rest/%2e/admin", "dot segment", false},
	{"double-encoded dot dot", "/rest/%252e%252E/admin", "dot segment", false},
	{"dot dot with a path parameter", "/rest/..;x/admin", "dot segment", false},
	{"encoded slash climbing out", "/rest/api/3/..%2F..%2Fadmin", "encoded slash", false},
	{"encoded slash, lower case", "/rest/api/3/issue/a%2fb", "encoded slash", false},
	{"double-encoded slash", "/rest/api/3/issue/a%252Fb", "encoded slash", false},
	{"backslash", "/rest\\..\\admin", "backslash", false},
	{"backslash host", "/\\evil.example/x", "backslash", false},
	{"backslash in the query", "/rest/api/3/search?jql=a\\b", "backslash", false},
	{"encoded backslash", "/rest/%5C..%5Cadmin", "encoded backslash", false},
	{"encoded backslash, lower case", "/rest/api/3/issue/a%5cb", "encoded backslash", false},
	{"CR LF", "/rest/api/3/issue/x\r\nX-Injected: 1", "control character", false},
	{"NUL", "/rest/api/3/issue/x\x00", "control character", false},
	{"tab", "/rest/api/3/issue/x\ty", "control character", false},
	{"DEL", "/rest/api/3/issue/x\x7f", "control character", false},
	{"control character in the query", "/rest/api/3/search?jql=a\nb", "control character", false},
	{"encoded NUL", "/rest/api/3/issue/x%00", "encoded control character", false},
	{"encoded LF", "/rest/api/3/issue/x%0A", "encoded control character", false},
	{"encoded CR, lower case", "/rest/api/3/issue/x%0d", "encoded control character", false},
	{"encoded US", "/rest/api/3/issue/x%1F", "encoded control character", false},
	{"encoded DEL", "/rest/api/3/issue/x%7f", "encoded control character", false},
	{"double-encoded NUL", "/rest/api/3/issue/x%2500", "encoded control character", false},
	{"overlong dot dot", "/rest/%c0%ae%c0%ae/admin", "not UTF-8", false},
	{"malformed escape", "/rest/api/%zz", "malformed percent-escape", false},
	{"truncated escape", "/rest/api/3/issue/x%2", "malformed percent-escape", false},
	{"fragment", "/rest/api/3/search#frag", "fragment", true},
	{"space", "/rest/api/3/search?jql=a b", "percent-encoded", false},
	{"non-ASCII", "/rest/api/3/issue/\u00fc", "percent-encoded", true},
}

// pathRefuser is one way to call a product, with a count of every request
// its product (and token server) received.
type pathRefuser struct {
	name     string
	tenant   *hostclient.Tenant
	requests func() int
}

func pathRefusers(t *testing.T) []pathRefuser {
	t.Helper()
	// Connect, on a Confluence site of the fake: its baseUrl ends in /wiki.
	fs := newFakeSite(t, "docs", fakeatlassian.ProductConfluence, nil, "READ", "ACT_AS_USER")
	connect := hostclient.New(appKey, hostclient.Options{AuthServerURL: fs.fake.AuthServerURL()})
	fs.fake.ResetCalls()
	fakeCalls := func() int {
		n := 0
		for _, c := range fs.fake.Calls() {
			if c.Direction == fakeatlassian.DirectionIn {
				n++
			}
		}
		return n
	}
	// Forge, against an api.atlassian.com stand-in.
	p := newForgeProduct(t, "system-token")
	forge := forgeClient(hostclient.Options{})
	forgeCalls := func() int { return len(p.requests()) }
	return []pathRefuser{
		{"Connect as app", connect.AsApp(fs.in), fakeCalls},
		{"Connect as user", connect.AsUser(fs.in, fs.site.DefaultAccountID), fakeCalls},
		{"Forge system token", forge.ForgeCall(forgeContext(p.base()), false), forgeCalls},
		{"Forge user token", forge.ForgeCall(forgeContext(p.base()), true), forgeCalls},
	}
}

// TestRefusedPathsAreNeverSent: for every way of calling, each path of
// refusedPaths fails with EINVALID and a message saying why, through Do and
// through HTTPClient, and neither the product nor the token server sees a
// request.
func TestRefusedPathsAreNeverSent(t *testing.T) {
	const prefix = "The request to the product was refused before it was sent: "
	for _, r := range pathRefusers(t) {
		t.Run(r.name, func(t *testing.T) {
			ctx := context.Background()
			before := r.requests() // the proper calls of the ways tested before
			for _, tt := range refusedPaths {
				_, err := r.tenant.Do(ctx, http.MethodGet, tt.path, nil, nil)
				msg := tenon.ErrorMessage(err)
				if tenon.ErrorCode(err) != tenon.EINVALID || !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, tt.why) {
					t.Errorf("Do, %s (%q): code %q, message %q; want EINVALID saying %q", tt.name, tt.path, tenon.ErrorCode(err), msg, tt.why)
				}
				if err := r.tenant.SendJSON(ctx, http.MethodPost, tt.path, map[string]string{"a": "b"}, nil); tenon.ErrorCode(err) != tenon.EINVALID {
					t.Errorf("SendJSON, %s (%q): %v; want EINVALID", tt.name, tt.path, err)
				}
				// A library builds its URL from BaseURL; what it cannot
				// parse it cannot send either. The base URL itself is a
				// proper target there.
				u, perr := url.Parse(r.tenant.BaseURL() + tt.path)
				if perr != nil || tt.builtByClient || tt.path == "" {
					continue
				}
				resp, err := r.tenant.HTTPClient().Do(&http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}})
				if err == nil {
					resp.Body.Close()
				}
				if tenon.ErrorCode(err) != tenon.EINVALID || !strings.HasPrefix(tenon.ErrorMessage(err), prefix) {
					t.Errorf("HTTPClient, %s (%q): %v; want EINVALID", tt.name, tt.path, err)
				}
			}
			if n := r.requests() - before; n != 0 {
				t.Errorf("the product saw %d requests; refused calls must not be sent", n)
			}
			// A refusal is the caller's mistake and leaves the site alone:
			// a proper call still goes out.
			if _, err := r.tenant.Do(ctx, http.MethodGet, "/rest/api/3/myself", nil, nil); err != nil {
				t.Errorf("a proper call after the refusals: %v", err)
			}
			if n := r.requests() - before; n == 0 {
				t.Error("the proper call after the refusals was not sent")
			}
		})
	}
}

// TestPathsThatLookCloseAreSent: what resembles a refused path but is
// plain data goes out byte for byte, signed for exactly that path.
func TestPathsThatLookCloseAreSent(t *testing.T) {
	for _, path := range []string{
		"/rest/api/3/issue/a..b",
		"/rest/api/3/issue/...",
		"/rest/api/3/issue/%2e%2e%2e",
		"/rest/api/3/issue/.hidden",
		"/rest/api/3/issue/v1.0",
		"/rest/api/content/100%25",
		"/rest/api/content/100%2541",
		"/rest/api/3/issue/%C3%A9",
		"/rest/api/3/issue/a;b",
		"/rest/api/3/search?jql=summary~%22a%2Fb%5C%22%22%0AORDER%20BY%20key",
		"/rest/api/3/search?next=../x",
	} {
		p := newProduct(t, "/wiki", nil)
		if err := newClient(hostclient.Options{}).AsApp(p.installation()).GetJSON(context.Background(), path, nil); err != nil {
			t.Errorf("%q: %v", path, err)
			continue
		}
		got := p.requests()
		if len(got) != 1 || got[0].target != "/wiki"+path || got[0].verifyErr != nil {
			t.Errorf("%q: the product saw %+v", path, got)
		}
	}
}
