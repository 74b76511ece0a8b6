// Package loadseed fills a store with many installed tenants for load
// tests and measurements. Tenants are deterministic: tenant i has
// ClientKey(i) and Secret(i), so a load generator can sign requests for
// any of them without reading the store.
package loadseed

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/tenon-dev/tenon"
)

// ClientKey is the clientKey of tenant i.
func ClientKey(i int) string { return fmt.Sprintf("load-tenant-%06d", i) }

// Secret is the shared secret of tenant i: derived from its clientKey,
// 64 hex characters, like Atlassian's.
func Secret(i int) string {
	m := hmac.New(sha256.New, []byte("tenon load seed"))
	m.Write([]byte(ClientKey(i)))
	return hex.EncodeToString(m.Sum(nil))
}

// Options describe the tenants.
type Options struct {
	// AppKey is the descriptor key the installs name.
	AppKey string
	// SiteURL returns the product base URL of tenant i. Default
	// https://load-tenant-<i>.atlassian.net.
	SiteURL func(i int) string
	// Progress, when set, is called every 1000 tenants.
	Progress func(done int)
}

// Seed installs tenants 0 to n-1 in store, as verified `installed`
// callbacks would, replacing any earlier record of them.
func Seed(ctx context.Context, store tenon.InstallationStore, n int, opts Options) error {
	for i := range n {
		site := fmt.Sprintf("https://load-tenant-%06d.atlassian.net", i)
		if opts.SiteURL != nil {
			site = opts.SiteURL(i)
		}
		payload, err := json.Marshal(map[string]string{
			"key": opts.AppKey, "clientKey": ClientKey(i), "sharedSecret": Secret(i),
			"baseUrl": site, "productType": "jira", "eventType": "installed",
		})
		if err != nil {
			return err
		}
		in := &tenon.Installation{
			ClientKey: ClientKey(i), AppKey: opts.AppKey, SharedSecret: Secret(i),
			BaseURL: site, ProductType: "jira", Payload: payload,
		}
		if err := store.SaveInstallation(ctx, in); err != nil {
			return fmt.Errorf("loadseed: tenant %d: %w", i, err)
		}
		if opts.Progress != nil && (i+1)%1000 == 0 {
			opts.Progress(i + 1)
		}
	}
	return nil
}
