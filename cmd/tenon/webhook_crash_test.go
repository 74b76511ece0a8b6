package main_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/connectjwt"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/postgres"
	"github.com/tenon-dev/tenon/qsh"
	"github.com/tenon-dev/tenon/sqlite"
)

// TestAcknowledgedWebhooksSurviveSIGKILL acknowledges webhooks on a node
// that only queues them (--job-workers 0, as a web node next to worker
// nodes runs), kills it with SIGKILL right after the last 204, and
// restarts it with workers on the same database. Every acknowledged event
// must then be processed exactly once: its job done after exactly one
// claim (each claim counts an attempt), its effect — the deleted issue's
// checklist is gone — visible through the app, and the redelivery of an
// acknowledged event dropped as a duplicate.
func TestAcknowledgedWebhooksSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	t.Run("SQLite", func(t *testing.T) {
		webhookCrash(t, bin, func(dir string) string { return filepath.Join(dir, "tenon.db") })
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		webhookCrash(t, bin, func(string) string { return crashSchema(t) })
	})
}

func webhookCrash(t *testing.T, bin string, db func(dir string) string) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret.key")
	if out, err := exec.Command(bin, "keygen", "-o", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	priv, keys := installKeyServer(t)
	addr := freeAddr(t)
	baseURL := "http://" + addr
	dsn := db(dir)
	args := []string{
		"--addr", addr, "--base-url", baseURL, "--environment", "development",
		"--db", dsn, "--secret-key-file", keyFile,
		"--install-keys-url", keys.URL, "--log-level", "warn",
	}
	p := startServer(t, bin, append(args, "--job-workers", "0"), baseURL)

	const clientKey = "webhook-crash-tenant"
	secret := strings.Repeat("w", 40)
	crashInstall(t, p, baseURL, clientKey, secret, priv)
	issues := []string{"DEMO-1", "DEMO-2", "DEMO-3", "DEMO-4", "DEMO-5", "DEMO-6"}
	ctxTok := contextToken(t, clientKey, secret)
	for _, issue := range issues {
		if status, page := send(t, "POST", baseURL+"/api/checklists/"+issue+"/items", ctxTok, []byte(`{"text":"remove me"}`)); status != 201 {
			t.Fatalf("add an item to %s: %d %s", issue, status, page)
		}
	}

	// Jira deletes the issues: one webhook each, with its identifier,
	// and the first one delivered twice (Jira did not hear our answer).
	hook := func(issue, id string, retry int) {
		t.Helper()
		query := "issueKey=" + issue
		now := time.Now()
		tok, err := connectjwt.SignHS256(connectjwt.Claims{
			Issuer: clientKey, IssuedAt: now.Unix(), ExpiresAt: now.Add(3 * time.Minute).Unix(),
			QSH: qsh.Hash("POST", "/webhooks/issue-deleted", query, ""),
		}, []byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf(`{"timestamp":%d,"webhookEvent":"jira:issue_deleted","issue":{"key":%q}}`, now.UnixMilli(), issue)
		req, _ := http.NewRequest("POST", baseURL+"/webhooks/issue-deleted?"+query, strings.NewReader(body))
		req.Header.Set("Authorization", "JWT "+tok)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Atlassian-Webhook-Identifier", id)
		if retry > 0 {
			req.Header.Set("X-Atlassian-Webhook-Retry", strconv.Itoa(retry))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("webhook for %s answered %d\n%s", issue, resp.StatusCode, p.stderr.String())
		}
	}
	for i, issue := range issues {
		hook(issue, fmt.Sprintf("b1c2d3e4-0000-4000-8000-%012d", i), 0)
	}
	hook(issues[0], "b1c2d3e4-0000-4000-8000-000000000000", 1)
	kill(t, p) // acknowledged: kill at once

	// In the store: one pending job per event, none started.
	jobs := crashJobs(t, dsn, keyFile)
	if len(jobs) != len(issues) {
		t.Fatalf("%d jobs stored after the acknowledgements, want %d (one per event, the redelivery dropped)", len(jobs), len(issues))
	}
	for _, j := range jobs {
		if j.State != tenon.JobPending || j.Attempts != 0 {
			t.Fatalf("job %d before the restart: %s after %d attempts, want pending and untouched", j.ID, j.State, j.Attempts)
		}
	}

	// Restart with workers: every event is processed, once.
	p = startServer(t, bin, args, baseURL)
	deadline := time.Now().Add(30 * time.Second)
	for {
		jobs = crashJobs(t, dsn, keyFile)
		done := 0
		for _, j := range jobs {
			if j.State == tenon.JobDone {
				done++
			}
		}
		if done == len(issues) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart %d of %d events were processed: %+v\n%s", done, len(issues), jobs, p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, j := range jobs {
		if j.Attempts != 1 || j.LastError != "" {
			t.Errorf("job %d was claimed %d times (last error %q), want exactly once", j.ID, j.Attempts, j.LastError)
		}
	}
	for _, issue := range issues {
		status, page := send(t, "GET", baseURL+"/api/checklists/"+issue, ctxTok, nil)
		if status != 200 || strings.Contains(string(page), "remove me") {
			t.Errorf("%s's checklist after processing: %d %s", issue, status, page)
		}
	}
}

// crashJobs reads the queue of the app's webhook straight from the
// database, as `tenon jobs list` does.
func crashJobs(t *testing.T, dsn, keyFile string) []tenon.Job {
	t.Helper()
	box, err := keyring.Load(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	var admin interface {
		tenon.JobAdmin
		Close() error
	}
	if strings.HasPrefix(dsn, "postgres") {
		admin, err = postgres.Open(context.Background(), dsn, postgres.Options{SecretBox: box})
	} else {
		admin, err = sqlite.Open(dsn, sqlite.Options{SecretBox: box})
	}
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	jobs, err := admin.Jobs(context.Background(), tenon.JobFilter{Queue: "webhook:jira:issue_deleted"})
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

func crashInstall(t *testing.T, p *proc, baseURL, clientKey, secret string, priv *rsa.PrivateKey) {
	t.Helper()
	if status, page := signedInstall(t, baseURL, clientKey, secret, "http://127.0.0.1:1/s/crash", priv); status/100 != 2 {
		t.Fatalf("install answered %d %s\n%s", status, page, p.stderr.String())
	}
}

// crashSchema returns a DSN for a fresh schema in the test database,
// dropped at the end; the test is skipped without one, unless
// TENON_REQUIRE_POSTGRES=1.
func crashSchema(t *testing.T) string {
	t.Helper()
	base := os.Getenv("TENON_TEST_POSTGRES_DSN")
	if base == "" {
		if os.Getenv("TENON_REQUIRE_POSTGRES") == "1" {
			t.Fatal("PostgreSQL is required (TENON_REQUIRE_POSTGRES=1) but TENON_TEST_POSTGRES_DSN is not set")
		}
		t.Skip("TENON_TEST_POSTGRES_DSN is not set")
	}
	if !strings.HasPrefix(base, "postgres://") && !strings.HasPrefix(base, "postgresql://") {
		t.Skip("this test needs TENON_TEST_POSTGRES_DSN as a postgres:// URL, the form `tenon serve --db` takes")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var r [8]byte
	rand.Read(r[:])
	schema := "tenon_crash_" + hex.EncodeToString(r[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema
}
