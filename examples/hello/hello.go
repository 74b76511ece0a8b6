// Package hello is the smallest app built on tenon: one general page that
// greets the verified user of the verified tenant. It shows the shape every
// app has: a descriptor, and handlers that receive a tenon.Principal.
package hello

import (
	_ "embed"
	"fmt"
	"html/template"
	"net/http"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/server"
)

//go:embed atlassian-connect.json
var descriptor []byte

// App is the hello app.
type App struct{}

// New returns the hello app.
func New() *App { return &App{} }

// Descriptor returns the app's atlassian-connect.json.
func (*App) Descriptor() []byte { return descriptor }

var page = template.Must(template.New("hello").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Hello</title></head>
<body><p>Hello {{if .User}}{{.User}}{{else}}anonymous user{{end}} of {{.Site}}.</p></body></html>
`))

// Routes registers the app's page.
func (*App) Routes(s *server.Server) error {
	s.Module("GET /hello", func(w http.ResponseWriter, r *http.Request) error {
		p := tenon.PrincipalFrom(r.Context())
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := page.Execute(w, map[string]string{"User": p.AccountID, "Site": p.Installation.BaseURL}); err != nil {
			return fmt.Errorf("hello: render: %w", err)
		}
		return nil
	})
	return nil
}
