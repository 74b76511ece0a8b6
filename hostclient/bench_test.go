package hostclient_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/hostclient"
)

// The benchmarks measure what the client adds to an outbound call, on a
// transport that answers at once without a network: building and checking
// the request, the JWT (HS256, qsh), the Resilience's bookkeeping. The
// network round trip to a product (tens of milliseconds) dwarfs all of it.

const benchPath = "/rest/api/3/issue/PROJ-123?fields=summary,status&expand=names"

// canned answers every request with a small JSON body, and the token
// endpoint with a token.
type canned struct{}

func (canned) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	body := `{"key":"PROJ-123","fields":{"summary":"s"}}`
	if strings.HasSuffix(r.URL.Path, "/oauth2/token") {
		body = `{"access_token":"tok","expires_in":900,"token_type":"bearer"}`
	}
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
}

func benchInstallation() *tenon.Installation {
	return &tenon.Installation{ClientKey: "client-1", SharedSecret: secret, BaseURL: "https://acme.atlassian.net",
		ProductType: "jira", OAuthClientID: "oauth-1", State: tenon.StateEnabled}
}

func benchDo(b *testing.B, tenant *hostclient.Tenant) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := tenant.Do(ctx, http.MethodGet, benchPath, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// BenchmarkUnsignedBaseline is the same call through a plain http.Client:
// what any Go code pays to send it.
func BenchmarkUnsignedBaseline(b *testing.B) {
	hc := &http.Client{Transport: canned{}}
	b.ReportAllocs()
	for b.Loop() {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "https://acme.atlassian.net"+benchPath, nil)
		if err != nil {
			b.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// BenchmarkDoAsApp: a call signed as the app, through the Resilience.
func BenchmarkDoAsApp(b *testing.B) {
	c := hostclient.New(appKey, hostclient.Options{HTTPClient: &http.Client{Transport: canned{}}})
	benchDo(b, c.AsApp(benchInstallation()))
}

// BenchmarkDoAsAppParallel: the same from every core, one site.
func BenchmarkDoAsAppParallel(b *testing.B) {
	c := hostclient.New(appKey, hostclient.Options{HTTPClient: &http.Client{Transport: canned{}},
		Policy: hostclient.Policy{MaxConcurrent: -1}})
	tenant := c.AsApp(benchInstallation())
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			resp, err := tenant.Do(ctx, http.MethodGet, benchPath, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// BenchmarkDoAsUserCached: a call as a user whose token is in memory.
func BenchmarkDoAsUserCached(b *testing.B) {
	c := hostclient.New(appKey, hostclient.Options{HTTPClient: &http.Client{Transport: canned{}},
		AuthServerURL: "https://auth.example"})
	tenant := c.AsUser(benchInstallation(), "557058:user", "READ")
	if resp, err := tenant.Do(context.Background(), http.MethodGet, benchPath, nil, nil); err != nil {
		b.Fatal(err)
	} else {
		resp.Body.Close()
	}
	benchDo(b, tenant)
}

// BenchmarkAsApp: binding the client to the tenant of a request.
func BenchmarkAsApp(b *testing.B) {
	c := hostclient.New(appKey, hostclient.Options{})
	in := benchInstallation()
	b.ReportAllocs()
	for b.Loop() {
		if c.AsApp(in) == nil {
			b.Fatal("nil")
		}
	}
}

// BenchmarkResilienceRoundTrip: the Resilience alone around a transport.
func BenchmarkResilienceRoundTrip(b *testing.B) {
	rt := hostclient.NewResilience(hostclient.Policy{}).Wrap(canned{})
	req, _ := http.NewRequest(http.MethodGet, "https://acme.atlassian.net"+benchPath, nil)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := rt.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}
