package e2e_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/cli"
	"github.com/tenon-dev/tenon/examples/checklist"
	"github.com/tenon-dev/tenon/fakeatlassian"
	"github.com/tenon-dev/tenon/hostclient"
	"github.com/tenon-dev/tenon/keyring"
)

// The migration from Connect to Forge: one backend serves the Connect app
// and its Forge successor, and a site's checklist is the same whichever
// way it is written or read. Both stores.

func TestForgeMigrationSQLite(t *testing.T) {
	testForgeMigration(t, func(t *testing.T, dir string) string { return filepath.Join(dir, "tenon.db") })
}

func TestForgeMigrationPostgreSQL(t *testing.T) {
	testForgeMigration(t, postgresDB)
}

// postgresDB returns a DSN of a fresh schema of the test database,
// dropped at cleanup. Without TENON_TEST_POSTGRES_DSN the test is skipped,
// unless TENON_REQUIRE_POSTGRES=1 makes that a failure.
func postgresDB(t *testing.T, _ string) string {
	t.Helper()
	unavailable := func(why string) {
		if os.Getenv("TENON_REQUIRE_POSTGRES") == "1" {
			t.Fatalf("PostgreSQL is required (TENON_REQUIRE_POSTGRES=1): %s", why)
		}
		t.Skipf("PostgreSQL tests skipped: %s", why)
	}
	base := os.Getenv("TENON_TEST_POSTGRES_DSN")
	if base == "" {
		unavailable("TENON_TEST_POSTGRES_DSN is not set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		unavailable("cannot connect: " + err.Error())
	}
	defer conn.Close(ctx)
	var b [8]byte
	rand.Read(b[:])
	schema := "tenon_e2e_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	if !strings.HasPrefix(base, "postgres://") && !strings.HasPrefix(base, "postgresql://") {
		t.Fatalf("TENON_TEST_POSTGRES_DSN must be a postgres:// URL for the command line's store choice")
	}
	return base + sep + "search_path=" + schema
}

// newForgeEnv starts the fake and the checklist backend with Forge
// configured against the fake's JWKS and app id, on the store db gives.
func newForgeEnv(t *testing.T, db func(*testing.T, string) string, opts ...func(*forgeEnvOptions)) *env {
	t.Helper()
	dir := t.TempDir()
	dsn := db(t, dir)
	logs := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs of the fake and the app:\n%s", logs.String())
		}
	})
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var o forgeEnvOptions
	for _, f := range opts {
		f(&o)
	}
	fake := fakeatlassian.New(fakeatlassian.Options{
		Now:                o.now,
		Logger:             logger.With("component", "fake"),
		WebhookRetryDelays: []time.Duration{10 * time.Millisecond, 20 * time.Millisecond},
	})
	if err := fake.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("start the fake: %v", err)
	}
	keyFile := filepath.Join(dir, "secret.key")
	line, err := keyring.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	appURL := "http://" + ln.Addr().String()
	app := checklist.New(checklist.Options{AllJSURL: fake.URL() + "/atlassian-connect/all.js", Logger: logger.With("component", "checklist")})
	cfg := &cli.Config{
		Addr:            ln.Addr().String(),
		BaseURL:         appURL,
		DB:              dsn,
		Environment:     "development",
		InstallKeysURL:  fake.KeyServerURL(),
		SecretKeyFile:   keyFile,
		LogLevel:        "debug",
		ShutdownTimeout: 5 * time.Second,
		ForgeAppID:      fake.ForgeAppID(),
		ForgeJWKSURL:    fake.ForgeJWKSURL(),
		ForgeOnly:       o.forgeOnly,
		Now:             o.now,
	}
	b, err := cli.Open(context.Background(), cfg, app, logger.With("component", "tenon"))
	if err != nil {
		ln.Close()
		fake.Close()
		t.Fatalf("open the backend: %v", err)
	}
	if !b.Server.ForgeEnabled() {
		t.Fatal("the backend does not serve Forge")
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- b.ServeListener(ctx, ln) }()
	t.Cleanup(func() {
		fake.Close()
		stop()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("the backend did not shut down within 10s")
		}
		if err := b.Close(); err != nil {
			t.Errorf("close the backend: %v", err)
		}
	})
	return &env{t: t, fake: fake, backend: b, appURL: appURL, appKey: b.Server.AppKey(), client: &http.Client{Timeout: 15 * time.Second}}
}

// forgeEnvOptions vary newForgeEnv: one clock for the fake and the
// backend, and the pure Forge mode.
type forgeEnvOptions struct {
	now       func() time.Time
	forgeOnly bool
}

// invoke calls the Forge front end's invokeRemote on the checklist of
// issue and decodes the answer, which must have wantStatus.
func invoke(e *env, site *fakeatlassian.Site, method, issue, path string, in any, wantStatus int) checklist.Checklist {
	e.t.Helper()
	var body json.RawMessage
	if in != nil {
		body, _ = json.Marshal(in)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := e.fake.InvokeRemote(ctx, site, fakeatlassian.ForgeInvocation{
		Method: method, Path: "/forge/checklists/" + issue + path, Body: body, IssueKey: issue, ModuleKey: "checklist-panel",
	})
	if err != nil {
		e.t.Fatalf("invokeRemote %s %s: %v", method, issue, err)
	}
	if resp.Status != wantStatus {
		e.t.Fatalf("invokeRemote %s %s%s: status %d, want %d: %s", method, issue, path, resp.Status, wantStatus, resp.Body)
	}
	var c checklist.Checklist
	if err := json.Unmarshal(resp.Body, &c); err != nil {
		e.t.Fatalf("decode %s: %v", resp.Body, err)
	}
	return c
}

func testForgeMigration(t *testing.T, db func(*testing.T, string) string) {
	e := newForgeEnv(t, db)
	ctx := context.Background()

	t.Run("ConnectThenForge", func(t *testing.T) {
		e := e.withT(t)
		site := e.addSite("acme", fakeatlassian.ProductJira)
		e.install(site)
		tok := e.contextToken(site, issueKey)
		if c := e.checklist(e.api(http.MethodPost, tok, issueKey, "/items", map[string]string{"text": "written through Connect"}), http.StatusCreated); len(c.Items) != 1 {
			t.Fatalf("Connect add: %v", itemTexts(c))
		}
		// The vendor ships the Forge successor; the site installs it.
		inst, err := e.fake.InstallForge(site, fakeatlassian.ForgeInstallOptions{RemoteBaseURL: e.appURL})
		if err != nil {
			t.Fatal(err)
		}
		if c := invoke(e, site, http.MethodGet, issueKey, "", nil, http.StatusOK); strings.Join(itemTexts(c), "|") != "written through Connect" {
			t.Fatalf("Forge reads %v, want the checklist written through Connect", itemTexts(c))
		}
		invoke(e, site, http.MethodPost, issueKey, "/items", map[string]string{"text": "written through Forge"}, http.StatusCreated)
		c := e.checklist(e.api(http.MethodGet, tok, issueKey, "", nil), http.StatusOK)
		if got := strings.Join(itemTexts(c), "|"); got != "written through Connect|written through Forge" {
			t.Fatalf("Connect reads %q after the Forge write", got)
		}

		// The installation is recorded and linked to the Connect tenant.
		fs := e.backend.Store.(tenon.ForgeStore)
		rec, err := fs.ForgeInstallation(ctx, inst.InstallationID)
		if err != nil || rec.ClientKey != site.ClientKey || rec.CloudID != site.CloudID || rec.APIBaseURL != inst.APIBaseURL {
			t.Fatalf("recorded installation %+v, %v", rec, err)
		}
		// The system token Forge sent is cached: work after the request
		// calls the product with it.
		client := hostclient.New(e.appKey, hostclient.Options{
			Tokens: e.backend.Store.(tenon.TokenCache),
			Forge:  hostclient.ForgeOptions{Installations: fs, AllowHTTP: true},
		})
		call, err := client.ForgeAsApp(ctx, inst.InstallationID)
		if err != nil {
			t.Fatalf("ForgeAsApp after the request: %v", err)
		}
		var issue struct {
			Key string `json:"key"`
		}
		if err := call.GetJSON(ctx, "/rest/api/3/issue/"+issueKey+"?fields=summary", &issue); err != nil || issue.Key != issueKey {
			t.Fatalf("product call with the cached system token: %+v, %v", issue, err)
		}

		// Forge's issue-deleted event, queued and processed, empties it for
		// Connect too.
		resp, err := e.fake.SendForgeEvent(ctx, site, fakeatlassian.ForgeEventOptions{
			Path: checklist.ForgeEventPath, EventType: "avi:jira:deleted:issue",
			Payload: map[string]any{"issue": map[string]any{"key": issueKey, "id": "10000"}},
		})
		if err != nil || resp.Status != http.StatusAccepted {
			t.Fatalf("event: %+v, %v", resp, err)
		}
		for deadline := time.Now().Add(15 * time.Second); ; {
			c := e.checklist(e.api(http.MethodGet, tok, issueKey, "", nil), http.StatusOK)
			if len(c.Items) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the Forge event was not processed: %v", itemTexts(c))
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	t.Run("ForgeThenConnect", func(t *testing.T) {
		e := e.withT(t)
		site := e.addSite("globex", fakeatlassian.ProductJira)
		if _, err := e.fake.InstallForge(site, fakeatlassian.ForgeInstallOptions{RemoteBaseURL: e.appURL}); err != nil {
			t.Fatal(err)
		}
		invoke(e, site, http.MethodPost, issueKey, "/items", map[string]string{"text": "written through Forge first"}, http.StatusCreated)
		// The Connect app arrives later on the same site: the data follows.
		e.install(site)
		c := e.checklist(e.api(http.MethodGet, e.contextToken(site, issueKey), issueKey, "", nil), http.StatusOK)
		if got := strings.Join(itemTexts(c), "|"); got != "written through Forge first" {
			t.Fatalf("Connect reads %q, want the checklist written through Forge", got)
		}
		if c := invoke(e, site, http.MethodGet, issueKey, "", nil, http.StatusOK); len(c.Items) != 1 {
			t.Fatalf("Forge reads %v after the link", itemTexts(c))
		}
	})

	t.Run("ForgeTokensAreVerified", func(t *testing.T) {
		e := e.withT(t)
		site, err := e.fake.Site("acme")
		if err != nil {
			t.Fatal(err)
		}
		// A token of another app (another aud), from the fake's own keys.
		other := "ari:cloud:ecosystem::app/00000000-0000-4000-8000-000000000001"
		if _, err := e.fake.InstallForge(site, fakeatlassian.ForgeInstallOptions{AppID: other, RemoteBaseURL: e.appURL}); err != nil {
			t.Fatal(err)
		}
		resp, err := e.fake.InvokeRemote(ctx, site, fakeatlassian.ForgeInvocation{AppID: other, Path: "/forge/checklists/" + issueKey, IssueKey: issueKey})
		if err != nil || resp.Status != http.StatusUnauthorized {
			t.Fatalf("another app's token: %+v, %v", resp, err)
		}
	})
}
