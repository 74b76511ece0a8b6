// Package reference is the app of tenon's performance reference workload
// (docs/PERFORMANCE.md): one module page that reads one tenant-data value
// and prints the verified tenant's base URL and the user's account id.
// It calls no product API, so a measurement of it is the cost of a
// verified request with one store read and nothing else. A browser-API
// route stores the value, once per tenant, before the load starts.
package reference

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"strings"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/server"
)

//go:embed atlassian-connect.json
var descriptor []byte

// Key is the tenant-data key the page reads.
const Key = "reference"

// MaxGreeting bounds the stored greeting, in bytes.
const MaxGreeting = 200

// Value is what the page reads for its tenant.
type Value struct {
	Greeting string `json:"greeting"`
}

// App is the reference app.
type App struct{}

// New returns the reference app.
func New() *App { return &App{} }

// Descriptor returns the app's atlassian-connect.json.
func (*App) Descriptor() []byte { return descriptor }

// Routes registers the page and the route that stores its value.
func (*App) Routes(s *server.Server) error {
	s.Module("GET /reference", page)
	s.API("PUT /api/reference-value", putValue)
	return nil
}

// page reads the tenant's value and prints it with who is calling. A
// tenant whose value was never stored gets the store's not-found error.
func page(w http.ResponseWriter, r *http.Request) error {
	p := tenon.PrincipalFrom(r.Context())
	var v Value
	if err := p.Data().Get(r.Context(), Key, &v); err != nil {
		return fmt.Errorf("reference: read the value: %w", err)
	}
	var b strings.Builder
	b.Grow(512)
	b.WriteString(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Reference</title></head><body><p>`)
	b.WriteString(html.EscapeString(v.Greeting))
	b.WriteString(`</p><p>Site: `)
	b.WriteString(html.EscapeString(p.Installation.BaseURL))
	b.WriteString(`</p><p>User: `)
	b.WriteString(html.EscapeString(p.AccountID))
	b.WriteString("</p></body></html>\n")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, err := io.WriteString(w, b.String())
	return err
}

// putValue stores the tenant's value: {"greeting": "..."}.
func putValue(w http.ResponseWriter, r *http.Request) error {
	var v Value
	if err := json.NewDecoder(r.Body).Decode(&v); err != nil {
		return tenon.WrapError(tenon.EINVALID, "The body must be a JSON object with a greeting.", err)
	}
	if v.Greeting == "" || len(v.Greeting) > MaxGreeting {
		return tenon.Errorf(tenon.EINVALID, "The greeting must have 1 to %d bytes.", MaxGreeting)
	}
	p := tenon.PrincipalFrom(r.Context())
	if err := p.Data().Put(r.Context(), Key, v); err != nil {
		return fmt.Errorf("reference: store the value: %w", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
