package cli

import (
	"encoding/json"
	"fmt"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/hostclient"
)

// initProducts builds the one product client of the backend, b.Host, on
// the store's token cache, and returns its tenon.ProductClients for the
// server: handlers call the product with p.AsApp(ctx) and p.AsUser(ctx)
// and need build nothing themselves. Under development, product and
// authorization server addresses may be plain http on loopback only (the
// fake), so nothing leaves the machine.
func (b *Backend) initProducts(descriptor []byte, allowHTTP bool) (tenon.ProductClients, error) {
	var d struct {
		Key string `json:"key"`
	}
	if len(descriptor) > 0 {
		if err := json.Unmarshal(descriptor, &d); err != nil {
			return nil, fmt.Errorf("the descriptor is not valid JSON: %w", err)
		}
	}
	opts := hostclient.Options{
		Now:           b.Config.Now,
		AuthServerURL: b.Config.OAuthServerURL,
		Logger:        b.Logger,
		Policy:        hostclient.Policy{Observer: b.Metrics},
	}
	if tc, ok := b.Store.(tenon.TokenCache); ok {
		opts.Tokens = tc
	}
	if fs, ok := b.Store.(tenon.ForgeStore); ok {
		opts.Forge = hostclient.ForgeOptions{Installations: fs, AllowHTTP: allowHTTP}
	}
	b.Host = hostclient.New(d.Key, opts)
	return b.Host.Products(), nil
}
