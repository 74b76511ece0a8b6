package cli_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/server"
)

// meApp calls the product as the app and as the user from its routes,
// through the principal only: no client of its own.
type meApp struct{}

func (meApp) Descriptor() []byte {
	return []byte(`{"key": "tenon-me", "name": "Me", "baseUrl": "https://example.invalid",
  "authentication": {"type": "jwt"}, "apiVersion": 1,
  "lifecycle": {"installed": "/installed", "uninstalled": "/uninstalled", "enabled": "/enabled", "disabled": "/disabled"},
  "apiMigrations": {"signed-install": true, "context-qsh": true},
  "scopes": ["READ", "ACT_AS_USER"],
  "modules": {"generalPages": [{"key": "me-page", "name": {"value": "Me"}, "url": "/me"}]}}`)
}

func (meApp) Routes(s *server.Server) error {
	s.Module("GET /me", func(w http.ResponseWriter, r *http.Request) error {
		return server.WriteJSON(w, http.StatusOK, map[string]string{"page": "me"})
	})
	s.API("GET /api/me", func(w http.ResponseWriter, r *http.Request) error {
		p := tenon.PrincipalFrom(r.Context())
		var asUser, asApp struct {
			AccountID string `json:"accountId"`
		}
		if err := p.AsUser(r.Context()).GetJSON(r.Context(), "/rest/api/3/myself", &asUser); err != nil {
			return err
		}
		if err := p.AsApp(r.Context()).GetJSON(r.Context(), "/rest/api/3/myself", &asApp); err != nil {
			return err
		}
		return server.WriteJSON(w, http.StatusOK, map[string]string{"user": asUser.AccountID, "app": asApp.AccountID})
	})
	return nil
}

// dnsRecorder is a resolver that answers nothing and remembers every
// name it was asked for: under dev nothing may need one.
type dnsRecorder struct {
	mu    sync.Mutex
	names []string
}

func (d *dnsRecorder) dial(ctx context.Context, network, address string) (net.Conn, error) {
	d.mu.Lock()
	d.names = append(d.names, address)
	d.mu.Unlock()
	return nil, &net.OpError{Op: "dial", Net: network, Err: errNoDNS}
}

var errNoDNS = &net.DNSError{Err: "DNS is not reachable in this test", IsNotFound: true}

// Under tenon dev a handler's calls as the app and as the user reach the
// fake only: the product and the authorization server are loopback
// addresses, and no name is ever resolved through DNS.
func TestDevCallsOnlyLoopback(t *testing.T) {
	rec := &dnsRecorder{}
	saved := net.DefaultResolver
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: rec.dial}
	t.Cleanup(func() { net.DefaultResolver = saved })

	run := startDevApp(t, t.TempDir(), meApp{}, "--addr", "127.0.0.1:0", "--fake-addr", "127.0.0.1:0")
	body := call(t, "POST", run.fake+"/_fake/sites/dev/apps/tenon-me/context-token", "", `{}`, 200)
	var tok struct{ Token string }
	if err := json.Unmarshal([]byte(body), &tok); err != nil || tok.Token == "" {
		t.Fatalf("context token answer %s: %v", body, err)
	}
	me := call(t, "GET", run.app+"/api/me", tok.Token, "", 200)
	var got struct{ User, App string }
	if err := json.Unmarshal([]byte(me), &got); err != nil {
		t.Fatal(err)
	}
	if got.User == "" || got.App == "" || got.User == got.App {
		t.Fatalf("as the user and as the app: %s", me)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.names) > 0 {
		t.Fatalf("dev resolved names through DNS: %s", strings.Join(rec.names, ", "))
	}
}
