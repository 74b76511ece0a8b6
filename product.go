package tenon

import (
	"context"
	"io"
	"net/http"
)

// ProductAPI is the product of one tenant (Jira, Confluence), called as
// the app or as a user. Paths are relative to the tenant's product:
// "/rest/api/3/issue/PROJ-1" (the tenant's baseUrl for Connect, the
// installation's apiBaseUrl for Forge). Every call is authorized for that
// one tenant and may go nowhere else. hostclient.Tenant implements it;
// see that package for the errors calls return.
type ProductAPI interface {
	// GetJSON GETs path and decodes the JSON answer into v.
	GetJSON(ctx context.Context, path string, v any) error
	// SendJSON sends in as JSON with method and decodes the answer into
	// out (nil: the answer is discarded).
	SendJSON(ctx context.Context, method, path string, in, out any) error
	// Do sends one request; the caller closes the response body.
	Do(ctx context.Context, method, path string, body io.Reader, hdr http.Header) (*http.Response, error)
	// HTTPClient is an *http.Client that authorizes every request, for
	// client libraries of the product's API.
	HTTPClient() *http.Client
}

// ProductClients makes the ProductAPIs of verified principals: the server
// is given one (the command line wires hostclient's, with the persistent
// token cache), and Principal.AsApp and AsUser use it. Implementations are
// safe for concurrent use; a principal that cannot call (no product
// client configured, no token) gets a ProductAPI whose calls fail with
// the reason.
type ProductClients interface {
	AsApp(ctx context.Context, p *Principal) ProductAPI
	AsUser(ctx context.Context, p *Principal) ProductAPI
}

// BindProducts gives p the product clients its AsApp and AsUser use. Only
// code that built p from a verified request (the server) should call it.
func BindProducts(p *Principal, c ProductClients) { p.products = c }

// AsApp returns the principal's product, called as the app: a Connect JWT
// signed with the tenant's shared secret, or the Forge app system token
// (the one of this call, else the newest one cached for the
// installation, for jobs long after the call).
func (p *Principal) AsApp(ctx context.Context) ProductAPI {
	if p.products == nil {
		return unconfigured{}
	}
	return p.products.AsApp(ctx, p)
}

// AsUser returns the principal's product, called as its user
// (p.AccountID): an OAuth 2.0 token from the JWT-bearer grant for Connect
// (scope ACT_AS_USER), the Forge user token otherwise.
func (p *Principal) AsUser(ctx context.Context) ProductAPI {
	if p.products == nil {
		return unconfigured{}
	}
	return p.products.AsUser(ctx, p)
}

// unconfigured is the ProductAPI of a principal without product clients.
type unconfigured struct{}

func errUnconfigured() error {
	return Errorf(EINTERNAL, "The app cannot call the product: no product client is configured (server.Config.Products).")
}

func (unconfigured) GetJSON(context.Context, string, any) error { return errUnconfigured() }
func (unconfigured) SendJSON(context.Context, string, string, any, any) error {
	return errUnconfigured()
}
func (unconfigured) Do(context.Context, string, string, io.Reader, http.Header) (*http.Response, error) {
	return nil, errUnconfigured()
}
func (unconfigured) HTTPClient() *http.Client {
	return &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, errUnconfigured() })}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
