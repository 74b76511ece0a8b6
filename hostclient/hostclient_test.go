package hostclient_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/connectjwt"
	"github.com/tenon-dev/tenon/hostclient"
	"github.com/tenon-dev/tenon/qsh"
)

const (
	appKey = "com.example.checklist"
	secret = "tenant-shared-secret-0123456789abcdef0123456789abcdef"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// product plays the product's side: it verifies every token the way the
// product does, recomputing the qsh from the request as received.
type product struct {
	t        *testing.T
	basePath string
	srv      *httptest.Server

	mu    sync.Mutex
	seen  []seenRequest
	serve http.HandlerFunc // what to answer once a request verified
}

type seenRequest struct {
	method, target string
	auth           string
	claims         connectjwt.Claims
	verifyErr      error
}

func newProduct(t *testing.T, basePath string, serve http.HandlerFunc) *product {
	t.Helper()
	p := &product{t: t, basePath: basePath, serve: serve}
	p.srv = httptest.NewServer(http.HandlerFunc(p.handle))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *product) handle(w http.ResponseWriter, r *http.Request) {
	s := seenRequest{method: r.Method, target: r.RequestURI, auth: r.Header.Get("Authorization")}
	s.claims, s.verifyErr = verify(r, p.basePath)
	p.mu.Lock()
	p.seen = append(p.seen, s)
	p.mu.Unlock()
	if s.verifyErr != nil {
		http.Error(w, s.verifyErr.Error(), http.StatusUnauthorized)
		return
	}
	if p.serve != nil {
		p.serve(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"ok":true}`)
}

func (p *product) requests() []seenRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]seenRequest(nil), p.seen...)
}

func (p *product) installation() *tenon.Installation {
	return &tenon.Installation{
		ClientKey:    "client-1",
		AppKey:       appKey,
		SharedSecret: secret,
		BaseURL:      p.srv.URL + p.basePath,
		State:        tenon.StateEnabled,
	}
}

// verify checks an app token as the product would: HS256 with the shared
// secret, iss = app key, and a qsh over the request as received relative
// to the product's base path.
func verify(r *http.Request, basePath string) (connectjwt.Claims, error) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "JWT ")
	if !ok {
		return connectjwt.Claims{}, errors.New("no JWT authorization")
	}
	tok, err := connectjwt.Parse(raw)
	if err != nil {
		return connectjwt.Claims{}, err
	}
	v := &connectjwt.Verifier{Now: func() time.Time { return testNow }}
	if err := v.VerifyHS256(tok, []byte(secret)); err != nil {
		return tok.Claims, err
	}
	if tok.Claims.Issuer != appKey {
		return tok.Claims, fmt.Errorf("iss %q", tok.Claims.Issuer)
	}
	if want := qsh.FromRequest(r, basePath); tok.Claims.QSH != want {
		return tok.Claims, fmt.Errorf("qsh %q, want %q (canonical %q)", tok.Claims.QSH, want,
			qsh.Canonical(r.Method, strings.SplitN(r.RequestURI, "?", 2)[0], r.URL.RawQuery, basePath))
	}
	return tok.Claims, nil
}

// newClient returns a client on the test clock whose waits between
// attempts return at once.
func newClient(opts hostclient.Options) *hostclient.Client {
	if opts.Now == nil {
		opts.Now = func() time.Time { return testNow }
	}
	if opts.Policy.Now == nil {
		opts.Policy.Now = opts.Now
	}
	if opts.Policy.Sleep == nil {
		opts.Policy.Sleep = noSleep
	}
	return hostclient.New(appKey, opts)
}

// noSleep is a Policy.Sleep that does not wait.
func noSleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

func TestSignedRequestVerifies(t *testing.T) {
	tests := []struct {
		name, basePath, path string
		wantTarget           string // request target the product receives
		wantQSH              string // qsh computed independently of the product's base path
	}{
		{
			name: "jira", path: "/rest/api/3/issue/PROJ-1?fields=summary",
			wantTarget: "/rest/api/3/issue/PROJ-1?fields=summary",
			wantQSH:    qsh.Hash("GET", "/rest/api/3/issue/PROJ-1", "fields=summary", ""),
		},
		{
			name: "confluence base path", basePath: "/wiki", path: "/rest/api/content/123?expand=body.storage",
			wantTarget: "/wiki/rest/api/content/123?expand=body.storage",
			wantQSH:    qsh.Hash("GET", "/rest/api/content/123", "expand=body.storage", ""),
		},
		{
			name: "ampersand in path", path: "/rest/api/3/label/a&b/items",
			wantTarget: "/rest/api/3/label/a&b/items",
			wantQSH:    qsh.Hash("GET", "/rest/api/3/label/a&b/items", "", ""),
		},
		{
			name: "encoded path and repeated query", basePath: "/wiki", path: "/rest/api/space/A%20B?expand=a&expand=b&q=x+y",
			wantTarget: "/wiki/rest/api/space/A%20B?expand=a&expand=b&q=x+y",
			wantQSH:    qsh.Hash("GET", "/rest/api/space/A%20B", "expand=b&expand=a&q=x%20y", ""),
		},
		{
			name: "root", path: "/",
			wantTarget: "/",
			wantQSH:    qsh.Hash("GET", "/", "", ""),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProduct(t, tt.basePath, nil)
			var out struct{ OK bool }
			err := newClient(hostclient.Options{}).AsApp(p.installation()).GetJSON(context.Background(), tt.path, &out)
			if err != nil {
				t.Fatalf("GetJSON: %v", err)
			}
			if !out.OK {
				t.Fatal("response not decoded")
			}
			reqs := p.requests()
			if len(reqs) != 1 {
				t.Fatalf("product saw %d requests, want 1", len(reqs))
			}
			got := reqs[0]
			if got.verifyErr != nil {
				t.Fatalf("product refused the token: %v", got.verifyErr)
			}
			if got.target != tt.wantTarget {
				t.Errorf("target %q, want %q", got.target, tt.wantTarget)
			}
			if got.claims.QSH != tt.wantQSH {
				t.Errorf("qsh %q, want %q", got.claims.QSH, tt.wantQSH)
			}
			if got.claims.IssuedAt != testNow.Unix() || got.claims.ExpiresAt != testNow.Unix()+180 {
				t.Errorf("iat %d exp %d, want %d and +180", got.claims.IssuedAt, got.claims.ExpiresAt, testNow.Unix())
			}
			if got.claims.Subject != "" || len(got.claims.Audience) != 0 || got.claims.Context != nil {
				t.Errorf("unexpected claims on an app token: %+v", got.claims)
			}
		})
	}
}

func TestSendJSON(t *testing.T) {
	p := newProduct(t, "", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "content type", http.StatusUnsupportedMediaType)
			return
		}
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/empty" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"method":%q,"echo":%s}`, r.Method, b)
	})
	tenant := newClient(hostclient.Options{}).AsApp(p.installation())
	var out struct {
		Method string
		Echo   struct{ Value string }
	}
	if err := tenant.SendJSON(context.Background(), http.MethodPut, "/rest/api/3/issue/PROJ-1/properties/x", map[string]string{"value": "v"}, &out); err != nil {
		t.Fatalf("SendJSON: %v", err)
	}
	if out.Method != "PUT" || out.Echo.Value != "v" {
		t.Errorf("out = %+v", out)
	}
	if err := tenant.SendJSON(context.Background(), http.MethodPost, "/empty", struct{}{}, &out); err != nil {
		t.Fatalf("SendJSON to a 204: %v", err)
	}
	for _, r := range p.requests() {
		if r.verifyErr != nil {
			t.Errorf("%s %s: %v", r.method, r.target, r.verifyErr)
		}
	}
}

func TestHeaders(t *testing.T) {
	var ua, custom, auth atomic.Value
	p := newProduct(t, "", func(w http.ResponseWriter, r *http.Request) {
		ua.Store(r.Header.Get("User-Agent"))
		custom.Store(r.Header.Get("X-Custom"))
		auth.Store(r.Header.Get("Authorization"))
	})
	tenant := newClient(hostclient.Options{}).AsApp(p.installation())
	hdr := http.Header{"X-Custom": {"yes"}, "Authorization": {"Bearer caller-supplied"}}
	resp, err := tenant.Do(context.Background(), http.MethodGet, "/x", nil, hdr)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	resp.Body.Close()
	if ua.Load() != hostclient.DefaultUserAgent+" "+appKey || custom.Load() != "yes" {
		t.Errorf("User-Agent %q, X-Custom %q", ua.Load(), custom.Load())
	}
	if a, _ := auth.Load().(string); !strings.HasPrefix(a, "JWT ") {
		t.Errorf("Authorization %q: the client's token must replace the caller's", a)
	}
}

func TestRefusedTargets(t *testing.T) {
	p := newProduct(t, "/wiki", nil)
	tenant := newClient(hostclient.Options{}).AsApp(p.installation())
	for _, path := range []string{
		"",
		"rest/api/3/myself",
		"https://evil.example/rest/api/3/myself",
		"//evil.example/rest/api/3/myself",
		"/\\evil.example/x",
		"/rest/../../admin",
		"/rest/%2e%2e/admin",
		"/rest/./x",
		"/rest/api/3/search#frag",
		"/rest/api/3/search?jql=a b",
		"/rest/api/3/issue/\u00fc",
		"/rest/api/3/issue/x\r\nX-Injected: 1",
		"/rest/api/%zz",
		"@evil.example/x",
	} {
		if _, err := tenant.Do(context.Background(), http.MethodGet, path, nil, nil); err == nil {
			t.Errorf("Do(%q) succeeded; want it refused", path)
		}
	}
	if _, err := tenant.Do(context.Background(), http.MethodGet, "/x", strings.NewReader("body"), nil); err == nil {
		t.Error("GET with a body succeeded; want it refused")
	}
	if _, err := tenant.Do(context.Background(), "get /x", "/x", nil, nil); err == nil {
		t.Error("a malformed method succeeded; want it refused")
	}
	if n := len(p.requests()); n != 0 {
		t.Errorf("the product saw %d requests; refused calls must not be sent", n)
	}
}

func TestUnusableInstallation(t *testing.T) {
	c := newClient(hostclient.Options{})
	for name, in := range map[string]*tenon.Installation{
		"nil":          nil,
		"no secret":    {ClientKey: "c", BaseURL: "https://a.atlassian.net"},
		"uninstalled":  {ClientKey: "c", SharedSecret: secret, BaseURL: "https://a.atlassian.net", State: tenon.StateUninstalled},
		"relative url": {ClientKey: "c", SharedSecret: secret, BaseURL: "a.atlassian.net"},
		"ftp":          {ClientKey: "c", SharedSecret: secret, BaseURL: "ftp://a.atlassian.net"},
		"user info":    {ClientKey: "c", SharedSecret: secret, BaseURL: "https://u:p@a.atlassian.net"},
		"query":        {ClientKey: "c", SharedSecret: secret, BaseURL: "https://a.atlassian.net/?x=1"},
		// Plain http only to a product on this machine.
		"http, not loopback": {ClientKey: "c", SharedSecret: secret, BaseURL: "http://a.atlassian.net"},
		"http, private net":  {ClientKey: "c", SharedSecret: secret, BaseURL: "http://10.0.0.7:8080"},
		"http, .localhost":   {ClientKey: "c", SharedSecret: secret, BaseURL: "http://app.localhost:8080"},
	} {
		err := c.AsApp(in).GetJSON(context.Background(), "/rest/api/3/myself", nil)
		if err == nil {
			t.Errorf("%s: call succeeded; want an error", name)
		} else if strings.HasPrefix(name, "http,") && !strings.Contains(err.Error(), "loopback http") {
			t.Errorf("%s: %v does not say http is for loopback only", name, err)
		}
	}
}

func TestRedirectToOtherOriginIsNotFollowed(t *testing.T) {
	var otherHits atomic.Int32
	var otherAuth atomic.Value
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherHits.Add(1)
		otherAuth.Store(r.Header.Get("Authorization"))
	}))
	defer other.Close()
	p := newProduct(t, "", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/steal", http.StatusFound)
	})
	tenant := newClient(hostclient.Options{}).AsApp(p.installation())

	resp, err := tenant.Do(context.Background(), http.MethodGet, "/rest/api/3/attachment/content/1", nil, nil)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != other.URL+"/steal" {
		t.Errorf("got %d Location %q; want the 302 itself", resp.StatusCode, resp.Header.Get("Location"))
	}
	if n := otherHits.Load(); n != 0 {
		t.Errorf("the other origin got %d requests (Authorization %q)", n, otherAuth.Load())
	}

	err = tenant.GetJSON(context.Background(), "/rest/api/3/attachment/content/1", nil)
	var ae *hostclient.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusFound {
		t.Errorf("GetJSON: %v; want an *APIError with status 302", err)
	}
}

func TestRedirectChangingSchemeIsNotFollowed(t *testing.T) {
	var plainHits atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			plainHits.Add(1)
			return
		}
		// Same host and port, http instead of https.
		http.Redirect(w, r, "http://"+r.Host+"/plain", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	in := &tenon.Installation{ClientKey: "c", SharedSecret: secret, BaseURL: srv.URL, State: tenon.StateEnabled}
	resp, err := newClient(hostclient.Options{HTTPClient: srv.Client()}).AsApp(in).Do(context.Background(), http.MethodGet, "/x", nil, nil)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("status %d; want the 307 returned, not followed", resp.StatusCode)
	}
	if plainHits.Load() != 0 {
		t.Error("the redirect to http was followed")
	}
}

func TestSameOriginRedirectDropsAuthorization(t *testing.T) {
	var firstErr atomic.Value
	var movedAuth atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			movedAuth.Store(r.Header.Get("Authorization"))
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"ok":true}`)
			return
		}
		_, err := verify(r, "")
		firstErr.Store(fmt.Sprint(err))
		http.Redirect(w, r, "/moved", http.StatusMovedPermanently)
	}))
	defer srv.Close()
	in := &tenon.Installation{ClientKey: "c", SharedSecret: secret, BaseURL: srv.URL, State: tenon.StateEnabled}
	if err := newClient(hostclient.Options{}).AsApp(in).GetJSON(context.Background(), "/old", nil); err != nil {
		t.Fatalf("GetJSON: %v", err)
	}
	if e := firstErr.Load(); e != "<nil>" {
		t.Errorf("the first request did not verify: %v", e)
	}
	if a := movedAuth.Load(); a != "" {
		t.Errorf("the redirected request carried Authorization %q", a)
	}
}

// TestErrorMapping: every status becomes the tenon code a handler passes
// on, with typed causes to act on. GETs are retried where the status says
// the product may answer differently later, and only then.
func TestErrorMapping(t *testing.T) {
	tests := []struct {
		status       int
		header       http.Header
		wantCode     string
		wantRetry    time.Duration
		wantInBody   string
		wantAttempts int
	}{
		{400, nil, tenon.EINVALID, 0, "errorMessages", 1},
		{401, nil, tenon.EUNAUTHORIZED, 0, "", 1},
		{403, nil, tenon.EFORBIDDEN, 0, "", 1},
		{404, nil, tenon.ENOTFOUND, 0, "errorMessages", 1},
		{409, nil, tenon.ECONFLICT, 0, "", 1},
		{405, nil, tenon.EINTERNAL, 0, "", 1},
		{429, http.Header{"Retry-After": {"7"}, "Ratelimit-Reason": {"jira-quota-global-based"}}, tenon.EUNAVAILABLE, 7 * time.Second, "", 3},
		// Longer than Policy.MaxRetryAfter: not waited for.
		{429, http.Header{"X-Ratelimit-Reset": {testNow.Add(90 * time.Second).Format(time.RFC3339)}}, tenon.EUNAVAILABLE, 90 * time.Second, "", 1},
		{503, http.Header{"Retry-After": {testNow.Add(2 * time.Minute).Format(http.TimeFormat)}}, tenon.EUNAVAILABLE, 2 * time.Minute, "", 1},
		{503, http.Header{"Retry-After": {"soon"}}, tenon.EUNAVAILABLE, 0, "", 3},
		{502, nil, tenon.EUNAVAILABLE, 0, "", 3},
		{500, nil, tenon.EUNAVAILABLE, 0, "", 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %v", tt.status, tt.header), func(t *testing.T) {
			p := newProduct(t, "", func(w http.ResponseWriter, r *http.Request) {
				for k, vs := range tt.header {
					w.Header()[k] = vs
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				io.WriteString(w, `{"errorMessages":["Issue does not exist or you do not have permission to see it."]}`+strings.Repeat(" ", 4096))
			})
			err := newClient(hostclient.Options{}).AsApp(p.installation()).GetJSON(context.Background(), "/rest/api/3/issue/PROJ-9?fields=summary", nil)
			if got := tenon.ErrorCode(err); got != tt.wantCode {
				t.Errorf("code %q, want %q (err %v)", got, tt.wantCode, err)
			}
			if n := len(p.requests()); n != tt.wantAttempts {
				t.Errorf("the product saw %d attempts, want %d", n, tt.wantAttempts)
			}
			var ae *hostclient.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("no *APIError in %v", err)
			}
			if ae.Status != tt.status || ae.RetryAfter != tt.wantRetry {
				t.Errorf("status %d retry %v, want %d and %v", ae.Status, ae.RetryAfter, tt.status, tt.wantRetry)
			}
			if ae.Path != "/rest/api/3/issue/PROJ-9" {
				t.Errorf("path %q: the query must stay out of errors", ae.Path)
			}
			if !strings.Contains(ae.Body, tt.wantInBody) || len(ae.Body) > 512 {
				t.Errorf("body excerpt %q (%d bytes)", ae.Body, len(ae.Body))
			}
			if msg := tenon.ErrorMessage(err); strings.Contains(msg, "errorMessages") {
				t.Errorf("the caller-facing message %q shows the product's body", msg)
			}
			var wantUntil time.Time
			if tt.wantRetry > 0 {
				wantUntil = testNow.Add(tt.wantRetry)
			}
			var rl *hostclient.RateLimitedError
			var un *hostclient.UnavailableError
			switch {
			case tt.status == 429:
				if !errors.As(err, &rl) || !errors.Is(err, hostclient.ErrRateLimited) {
					t.Fatalf("no *RateLimitedError in %v", err)
				}
				if !rl.Until.Equal(wantUntil) || rl.Reason != tt.header.Get("RateLimit-Reason") {
					t.Errorf("rate limited until %v (%q), want %v", rl.Until, rl.Reason, wantUntil)
				}
			case tt.status >= 500:
				if !errors.As(err, &un) || !errors.Is(err, hostclient.ErrUnavailable) || un.Reason != hostclient.ReasonStatus {
					t.Fatalf("no *UnavailableError in %v", err)
				}
				if !un.Until.Equal(wantUntil) {
					t.Errorf("unavailable until %v, want %v", un.Until, wantUntil)
				}
			default:
				if errors.As(err, &rl) || errors.As(err, &un) {
					t.Errorf("a %d reads as rate limiting or unavailability: %v", tt.status, err)
				}
			}
			if got := errors.Is(err, hostclient.ErrUnauthorized); got != (tt.status == 401) {
				t.Errorf("errors.Is(err, ErrUnauthorized) = %v for %d", got, tt.status)
			}
		})
	}
}

func TestResponseSizeLimit(t *testing.T) {
	const limit = 1024
	p := newProduct(t, "", func(w http.ResponseWriter, r *http.Request) {
		n := limit
		if r.URL.Path == "/big" {
			n = limit + 1
		}
		w.Header().Set("Content-Type", "application/json")
		// A JSON string of exactly n bytes.
		io.WriteString(w, `"`+strings.Repeat("x", n-2)+`"`)
	})
	tenant := newClient(hostclient.Options{MaxResponseBytes: limit}).AsApp(p.installation())

	var s string
	if err := tenant.GetJSON(context.Background(), "/exact", &s); err != nil || len(s) != limit-2 {
		t.Errorf("a body of exactly the limit: len %d, err %v", len(s), err)
	}
	err := tenant.GetJSON(context.Background(), "/big", &s)
	if !errors.Is(err, hostclient.ErrResponseTooLarge) {
		t.Errorf("GetJSON over the limit: %v; want ErrResponseTooLarge", err)
	}
	resp, err := tenant.Do(context.Background(), http.MethodGet, "/big", nil, nil)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); !errors.Is(err, hostclient.ErrResponseTooLarge) {
		t.Errorf("reading past the limit: %v; want ErrResponseTooLarge", err)
	}
}

func TestTransportFailureIsUnavailable(t *testing.T) {
	p := newProduct(t, "", nil)
	in := p.installation()
	p.srv.Close()
	err := newClient(hostclient.Options{}).AsApp(in).GetJSON(context.Background(), "/x", nil)
	if tenon.ErrorCode(err) != tenon.EUNAVAILABLE {
		t.Errorf("closed product: %v; want EUNAVAILABLE", err)
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	p := newProduct(t, "", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	c := newClient(hostclient.Options{HTTPClient: &http.Client{Timeout: 50 * time.Millisecond}})
	start := time.Now()
	err := c.AsApp(p.installation()).GetJSON(context.Background(), "/slow", nil)
	if tenon.ErrorCode(err) != tenon.EUNAVAILABLE {
		t.Errorf("slow product: %v; want EUNAVAILABLE", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the call took %v; the timeout was not applied", d)
	}
}

func TestInstallationIsCopied(t *testing.T) {
	p := newProduct(t, "", nil)
	in := p.installation()
	tenant := newClient(hostclient.Options{}).AsApp(in)
	in.BaseURL = "https://evil.example"
	in.SharedSecret = "changed"
	if err := tenant.GetJSON(context.Background(), "/x", nil); err != nil {
		t.Fatalf("GetJSON after the caller changed its copy: %v", err)
	}
	if tenant.ClientKey() != "client-1" {
		t.Errorf("ClientKey %q", tenant.ClientKey())
	}
}
