package hostclient_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/hostclient"
)

// recorder answers every request at once and keeps the last URL sent.
type recorder struct {
	mu   sync.Mutex
	sent *url.URL
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	u := *req.URL
	r.sent = &u
	r.mu.Unlock()
	return canned{}.RoundTrip(req)
}

func (r *recorder) take() *url.URL {
	r.mu.Lock()
	defer r.mu.Unlock()
	u := r.sent
	r.sent = nil
	return u
}

// FuzzPathStaysUnderBase: whatever path a caller passes, a request that is
// sent goes to the tenant's origin under its base path, and its path,
// decoded as often as a product or proxy might, has no dot segment,
// backslash or control character and no slash the caller did not write.
// Anything else is refused with EINVALID and not sent.
func FuzzPathStaysUnderBase(f *testing.F) {
	for _, tt := range refusedPaths {
		f.Add(tt.path)
	}
	for _, p := range []string{"/rest/api/3/myself", "/rest/api/content/100%25", "/x?jql=a%2Fb", "/a%252e%252e"} {
		f.Add(p)
	}
	rec := &recorder{}
	c := hostclient.New(appKey, hostclient.Options{HTTPClient: &http.Client{Transport: rec},
		Policy: hostclient.Policy{MaxAttempts: 1, BreakerThreshold: -1}})
	in := &tenon.Installation{ClientKey: "client-1", SharedSecret: secret, BaseURL: "https://docs.atlassian.net/wiki",
		State: tenon.StateEnabled}
	tenant := c.AsApp(in)
	f.Fuzz(func(t *testing.T, path string) {
		resp, err := tenant.Do(context.Background(), http.MethodGet, path, nil, nil)
		sent := rec.take()
		if err != nil {
			if tenon.ErrorCode(err) != tenon.EINVALID {
				t.Fatalf("Do(%q): %v; want EINVALID or success", path, err)
			}
			if sent != nil {
				t.Fatalf("Do(%q) was refused but sent %s", path, sent)
			}
			return
		}
		resp.Body.Close()
		if sent == nil || sent.Host != "docs.atlassian.net" || sent.Scheme != "https" {
			t.Fatalf("Do(%q) sent to %v", path, sent)
		}
		wire := sent.EscapedPath()
		rel, ok := strings.CutPrefix(wire, "/wiki/")
		if !ok && wire != "/wiki" {
			t.Fatalf("Do(%q) sent path %q outside /wiki", path, wire)
		}
		for seg := range strings.SplitSeq(rel, "/") {
			s := seg
			for range 3 {
				d, err := url.PathUnescape(s)
				if err != nil {
					break
				}
				s = d
				head, _, _ := strings.Cut(s, ";")
				if head == "." || head == ".." || strings.ContainsAny(s, "/\\") ||
					strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
					t.Fatalf("Do(%q) sent segment %q, which decodes to %q", path, seg, s)
				}
			}
		}
	})
}
