package server_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/forge"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/server"
	"github.com/tenon-dev/tenon/sqlite"
)

// A pure Forge app has no Connect descriptor: the server serves its Forge
// routes and nothing of Connect.
func TestPureForgeWithoutDescriptor(t *testing.T) {
	kr, err := keyring.New(bytes.Repeat([]byte{7}, keyring.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(filepath.Join(t.TempDir(), "tenon.db"), sqlite.Options{SecretBox: kr})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	jwks := jwksServer(t)
	keys, err := forge.NewJWKS(jwks.URL, forge.JWKSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{BaseURL: appBaseURL, Store: store, AllowedHosts: []string{"*.atlassian.net"}, Logger: slog.New(slog.DiscardHandler)}

	// Without Forge, a descriptor is required.
	if _, err := server.New(cfg); err == nil || !strings.Contains(err.Error(), "Config.Descriptor is empty") {
		t.Fatalf("no descriptor and no Forge: %v", err)
	}
	cfg.ForgeAppID, cfg.ForgeKeys, cfg.ForgeOnly = forgeAppID, keys, true
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatalf("pure Forge: %v", err)
	}
	if srv.Descriptor() != nil || srv.AppKey() != "" {
		t.Errorf("descriptor %q, app key %q", srv.Descriptor(), srv.AppKey())
	}
	srv.ForgeRemote("GET /forge/hello", func(w http.ResponseWriter, r *http.Request) error {
		_, err := io.WriteString(w, "hello "+tenon.PrincipalFrom(r.Context()).Forge.CloudID)
		return err
	})
	for _, register := range []func(){
		func() { srv.Module("GET /page", nil) },
		func() { srv.API("/api/x", nil) },
		func() { srv.Webhook("/hooks/x", nil) },
	} {
		func() {
			defer func() {
				if v := recover(); v == nil || !strings.Contains(v.(string), "pure Forge app") {
					t.Errorf("a Connect route on a pure Forge app: %v", v)
				}
			}()
			register()
		}()
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	do := func(method, path, auth string) (int, string) {
		req, _ := http.NewRequest(method, ts.URL+"/app"+path, strings.NewReader("{}")) // appBaseURL's path
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct{ method, path string }{
		{"GET", "/atlassian-connect.json"},
		{"POST", "/installed"},
		{"POST", "/uninstalled"},
	} {
		if status, _ := do(c.method, c.path, ""); status != http.StatusNotFound {
			t.Errorf("%s %s: %d, want 404", c.method, c.path, status)
		}
	}
	if n, err := store.ActiveForgeInstallations(context.Background(), "", 10); err != nil || len(n) != 0 {
		t.Fatalf("refused calls recorded installations: %v %v", n, err)
	}

	// The Forge route works.
	now := time.Now()
	fit := signFIT(t, jwt.MapClaims{
		"iss": "forge/invocation-token", "aud": forgeAppID, "iat": now.Unix(), "nbf": now.Unix(),
		"exp": now.Add(25 * time.Second).Unix(), "jti": "jti-pure",
		"app": map[string]any{
			"id": forgeAppID, "installationId": forgeInst, "apiBaseUrl": forgeAPIBase,
			"environment": map[string]any{"type": "DEVELOPMENT", "id": "ari:cloud:ecosystem::environment/dev"},
			"module":      map[string]any{"type": "jira:issuePanel", "key": "panel"},
		},
		"context": map[string]any{"cloudId": forgeCloud, "siteUrl": siteURL},
	}, forgeKid, installKey(), jwt.SigningMethodRS256)
	if status, body := do("GET", "/forge/hello", "Bearer "+fit); status != http.StatusOK || body != "hello "+forgeCloud {
		t.Errorf("Forge route: %d %s", status, body)
	}
	if status, _ := do("GET", "/forge/hello", ""); status != http.StatusUnauthorized {
		t.Errorf("Forge route without a token: %d", status)
	}
}
