package hostclient

import (
	"context"
	"io"
	"net/http"
)

// ReportAccountsPath is the personal data reporting API: for a Connect
// tenant relative to its baseUrl, signed as the app; for a Forge
// installation at the root of api.atlassian.com, with the system token
// (scope report:personal-data).
const ReportAccountsPath = "/app/report-accounts/"

// ReportAccounts posts one batch of the personal data reporting API
// (body: {"accounts":[{"accountId","updatedAt"}]}) for the tenant, on the
// path its kind of installation uses, and returns the answer as Do does.
// POST is sent once: a 429 comes back as the response, for the caller to
// honour its Retry-After.
func (t *Tenant) ReportAccounts(ctx context.Context, body io.Reader) (*http.Response, error) {
	target := t
	if t.err == nil && t.clientKey == "" {
		// A Forge installation's base is …/ex/<product>/<cloudId>; the
		// API is at the root of the same origin.
		root := *t
		root.basePath = ""
		root.hc = &http.Client{Transport: &tenantTransport{t: &root}, CheckRedirect: checkRedirect}
		target = &root
	}
	return target.Do(ctx, http.MethodPost, ReportAccountsPath, body, http.Header{"Content-Type": {"application/json"}})
}
