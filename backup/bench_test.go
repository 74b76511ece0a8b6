package backup_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/backup"
	"github.com/tenon-dev/tenon/connectjwt"
	"github.com/tenon-dev/tenon/qsh"
	"github.com/tenon-dev/tenon/server"
)

const benchDescriptor = `{"key": "com.example.bench", "name": "bench", "baseUrl": "https://placeholder.example",
  "authentication": {"type": "jwt"}, "lifecycle": {"installed": "/installed", "uninstalled": "/uninstalled"},
  "apiMigrations": {"signed-install": true, "context-qsh": true}, "scopes": ["READ"], "modules": {}}`

// BenchmarkReplicationCost measures what continuous replication costs the
// request paths of a SQLite node: a verified module (iframe) request for a
// cached tenant, which reads nothing from the store, and a browser-API
// request that writes one value. Each runs with replication off and on
// (litestream shipping to a local directory every second).
func BenchmarkReplicationCost(b *testing.B) {
	for _, path := range []string{"module", "write"} {
		for _, replicate := range []bool{false, true} {
			name := path + "/replication-off"
			if replicate {
				name = path + "/replication-on"
			}
			b.Run(name, func(b *testing.B) { benchReplication(b, path == "write", replicate) })
		}
	}
}

func benchReplication(b *testing.B, write, replicate bool) {
	ctx := context.Background()
	dir := b.TempDir()
	db := filepath.Join(dir, "tenon.db")
	kr := testKeyring(b)
	store := openStore(b, db, kr)
	const clientKey, secret = "bench-tenant", "bench-secret-0123456789abcdef0123456789"
	if err := store.SaveInstallation(ctx, &tenon.Installation{ClientKey: clientKey, SharedSecret: secret,
		BaseURL: "https://bench.atlassian.net", ProductType: "jira", Payload: []byte(`{}`)}); err != nil {
		b.Fatal(err)
	}
	if replicate {
		target, _ := backup.ParseTarget(backup.Target{URL: "file://" + filepath.Join(dir, "backups")})
		rep, err := (&backup.SQLite{Path: db, Target: target}).Replicate(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { rep.Close(ctx) })
	}
	keys, err := connectjwt.NewKeyServer("https://keys.invalid", connectjwt.KeyServerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := server.New(server.Config{Descriptor: []byte(benchDescriptor), BaseURL: "https://app.example.test",
		Store: store, InstallKeys: keys, AllowedHosts: []string{"*.atlassian.net"}, Now: time.Now})
	if err != nil {
		b.Fatal(err)
	}
	srv.Module("GET /bench", func(w http.ResponseWriter, r *http.Request) error { return nil })
	var seq atomic.Int64
	srv.API("POST /bench-write", func(w http.ResponseWriter, r *http.Request) error {
		p := tenon.PrincipalFrom(r.Context())
		return store.PutValue(r.Context(), p.ClientKey(), "k-"+strconv.FormatInt(seq.Add(1)%1000, 10), []byte(`{"done":true,"text":"a checklist item"}`))
	})
	now := time.Now()
	var req *http.Request
	if write {
		tok, _ := connectjwt.SignHS256(connectjwt.Claims{Issuer: clientKey, Subject: "u", IssuedAt: now.Unix(),
			ExpiresAt: now.Add(time.Hour).Unix(), QSH: qsh.ContextQSH}, []byte(secret))
		req = httptest.NewRequest(http.MethodPost, "https://app.example.test/bench-write", nil)
		req.Header.Set("Authorization", "JWT "+tok)
	} else {
		query := "cp=%2Fjira&lic=active&xdm_e=https%3A%2F%2Fbench.atlassian.net"
		tok, _ := connectjwt.SignHS256(connectjwt.Claims{Issuer: clientKey, Subject: "u", IssuedAt: now.Unix(),
			ExpiresAt: now.Add(time.Hour).Unix(), QSH: qsh.Hash("GET", "/bench", query, "")}, []byte(secret))
		req = httptest.NewRequest(http.MethodGet, "https://app.example.test/bench?"+query+"&jwt="+tok, nil)
	}
	serve := func() {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code/100 != 2 {
			b.Fatalf("status %d: %s", rec.Code, strings.TrimSpace(rec.Body.String()))
		}
	}
	serve()
	b.ReportAllocs()
	for b.Loop() {
		serve()
	}
}
