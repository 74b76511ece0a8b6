package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/connectjwt"
	"github.com/tenon-dev/tenon/internal/pgtest"
	"github.com/tenon-dev/tenon/qsh"
)

// TestPostgresOutage runs `tenon serve` on a private PostgreSQL server,
// stops the server under light load and expects every tenant route to
// answer 503 with Retry-After and a message for a person — none hangs,
// none answers 500 — and /readyz to say why. When the server returns,
// the same process serves again without a restart, with every write it
// acknowledged before the outage and none of those it refused.
func TestPostgresOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary and a PostgreSQL server")
	}
	srv := pgtest.Start(t, pgtest.Options{})
	dsn := srv.CreateDatabase("tenon")
	bin := buildBinary(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret.key")
	if out, err := exec.Command(bin, "keygen", "-o", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	priv, keys := installKeyServer(t)
	addr, admin := freeAddr(t), freeAddr(t)
	baseURL := "http://" + addr
	p := startServer(t, bin, []string{
		"--addr", addr, "--admin-addr", admin, "--base-url", baseURL, "--environment", "development",
		"--db", dsn, "--secret-key-file", keyFile,
		"--install-keys-url", keys.URL, "--log-level", "error",
	}, baseURL)

	const clientKey = "outage-tenant"
	secret := strings.Repeat("o", 40)
	if status, page := signedInstall(t, baseURL, clientKey, secret, "http://127.0.0.1:1/s/outage", priv); status/100 != 2 {
		t.Fatalf("install answered %d %s\n%s", status, page, p.stderr.String())
	}
	// Acknowledged work: items whose 201 the client saw.
	var acked []string
	for i := range 5 {
		text := fmt.Sprintf("before the outage %d", i)
		if status, page := send(t, "POST", baseURL+"/api/checklists/DEMO-1/items", contextToken(t, clientKey, secret),
			[]byte(fmt.Sprintf(`{"text":%q}`, text))); status != 201 {
			t.Fatalf("add an item: %d %s", status, page)
		}
		acked = append(acked, text)
	}
	firstItem := itemIDs(t, baseURL, clientKey, secret)[0]

	// One request of every kind a tenant sends: the browser API, the
	// issue panel (HTML), a webhook, and an install.
	client := &http.Client{Timeout: 2 * time.Second}
	type target struct {
		name string
		req  func() *http.Request
		html bool
	}
	api := func(method, path, body string) func() *http.Request {
		return func() *http.Request {
			req, _ := http.NewRequest(method, baseURL+path, strings.NewReader(body))
			req.Header.Set("Authorization", contextToken(t, clientKey, secret))
			req.Header.Set("Content-Type", "application/json")
			return req
		}
	}
	signed := func(method, path, query, body string) *http.Request {
		now := time.Now()
		tok, err := connectjwt.SignHS256(connectjwt.Claims{
			Issuer: clientKey, IssuedAt: now.Unix(), ExpiresAt: now.Add(3 * time.Minute).Unix(),
			QSH: qsh.Hash(method, path, query, ""),
		}, []byte(secret))
		if err != nil {
			t.Error(err)
		}
		req, _ := http.NewRequest(method, baseURL+path+"?"+query, strings.NewReader(body))
		req.Header.Set("Authorization", "JWT "+tok)
		return req
	}
	targets := []target{
		{"GET checklist", api("GET", "/api/checklists/DEMO-1", ""), false},
		{"POST item", api("POST", "/api/checklists/DEMO-1/items", `{"text":"refused in the outage"}`), false},
		{"PATCH item", api("PATCH", "/api/checklists/DEMO-1/items/"+firstItem, `{"text":"changed in the outage"}`), false},
		{"DELETE item", api("DELETE", "/api/checklists/DEMO-1/items/"+firstItem, ""), false},
		{"GET panel", func() *http.Request {
			req := signed("GET", "/panel", "issueKey=DEMO-1&lic=active", "")
			req.Header.Set("Accept", "text/html")
			return req
		}, true},
		{"POST webhook", func() *http.Request {
			req := signed("POST", "/webhooks/issue-deleted", "issueKey=DEMO-2",
				fmt.Sprintf(`{"timestamp":%d,"webhookEvent":"jira:issue_deleted","issue":{"key":"DEMO-2"}}`, time.Now().UnixMilli()))
			req.Header.Set("Content-Type", "application/json")
			return req
		}, false},
	}

	srv.Stop(pgtest.Fast)
	stopped := time.Now()

	// Light load: a few clients, a bounded number of rounds each.
	type answer struct {
		target     string
		status     int
		retryAfter string
		body       string
		err        error
		took       time.Duration
	}
	const clients, rounds = 3, 4
	var mu sync.Mutex
	var answers []answer
	var firstAt time.Duration
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for range rounds {
				for _, tg := range targets {
					start := time.Now()
					resp, err := client.Do(tg.req())
					a := answer{target: tg.name, err: err, took: time.Since(start)}
					if err == nil {
						b, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						a.status, a.retryAfter, a.body = resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
					}
					mu.Lock()
					if firstAt == 0 && a.status == http.StatusServiceUnavailable {
						firstAt = time.Since(stopped)
					}
					answers = append(answers, a)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	// An install of a new site is refused the same way.
	if status, page := signedInstall(t, baseURL, "outage-new-tenant", secret, "http://127.0.0.1:1/s/new", priv); status != 503 {
		t.Errorf("install during the outage answered %d %s, want 503", status, page)
	}

	var tooks []time.Duration
	bad := 0
	for _, a := range answers {
		tooks = append(tooks, a.took)
		switch {
		case a.err != nil:
			t.Errorf("%s: no answer within the client's 2 s: %v", a.target, a.err)
		case a.status != http.StatusServiceUnavailable || a.retryAfter == "":
			t.Errorf("%s: %d, Retry-After %q: %.200s", a.target, a.status, a.retryAfter, a.body)
		case !strings.Contains(a.body, " again"):
			t.Errorf("%s: 503 without a message saying what to do: %.300s", a.target, a.body)
		case strings.Contains(a.body, "127.0.0.1") || strings.Contains(a.body, "postgres") || strings.Contains(a.body, "dial"):
			t.Errorf("%s: 503 shows internal detail: %.300s", a.target, a.body)
		default:
			continue
		}
		if bad++; bad > 5 {
			t.Fatalf("too many wrong answers during the outage\n%s", p.stderr.String())
		}
	}
	for _, tg := range targets {
		if !tg.html {
			continue
		}
		for _, a := range answers {
			if a.target == tg.name && !strings.Contains(a.body, "<html") {
				t.Errorf("%s: the 503 for a browser is not a page: %.200s", a.target, a.body)
				break
			}
		}
	}
	slices.Sort(tooks)
	t.Logf("PostgreSQL stopped: first 503 %v after the stop; %d answers, median %v, slowest %v",
		firstAt.Round(time.Millisecond), len(answers), tooks[len(tooks)/2].Round(time.Millisecond), tooks[len(tooks)-1].Round(time.Millisecond))

	// /readyz says which check fails and why, without connection detail.
	for _, probe := range []string{baseURL, "http://" + admin} {
		status, body := get(t, client, probe+"/readyz")
		if status != 503 || !strings.Contains(body, "[-] store failed") {
			t.Errorf("%s/readyz during the outage: %d %q", probe, status, body)
		}
		if !strings.Contains(body, "cannot be reached") {
			t.Errorf("%s/readyz does not explain the failure: %q", probe, body)
		}
		if strings.Contains(body, "password") {
			t.Errorf("%s/readyz: %q", probe, body)
		}
		t.Logf("%s/readyz during the outage: %d %q", probe, status, body)
	}

	srv.Start()
	restarted := time.Now()
	var served time.Duration
	refusedAfter := 0
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := client.Do(targets[0].req())
		if err != nil {
			refusedAfter++
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			served = time.Since(restarted)
			break
		}
		refusedAfter++
	}
	if served == 0 {
		t.Fatalf("the process did not serve again within 30 s of PostgreSQL's return\n%s", p.stderr.String())
	}
	t.Logf("PostgreSQL back: serving again %v after it accepted connections (%d failed answers before)",
		served.Round(time.Millisecond), refusedAfter)

	// Everything acknowledged is there; nothing refused is.
	texts := itemTexts(t, baseURL, clientKey, secret)
	if !slices.Equal(texts, acked) {
		t.Errorf("items after the outage %q, want exactly the %d acknowledged %q", texts, len(acked), acked)
	}
	// And the same process takes writes again, readiness too.
	if status, page := send(t, "POST", baseURL+"/api/checklists/DEMO-1/items", contextToken(t, clientKey, secret),
		[]byte(`{"text":"after the outage"}`)); status != 201 {
		t.Errorf("add an item after the outage: %d %s", status, page)
	}
	var ready int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if ready, _ = get(t, client, baseURL+"/readyz"); ready == 200 {
			break
		}
	}
	if ready != 200 {
		t.Errorf("/readyz after the outage: %d", ready)
	}
	if p.cmd.ProcessState != nil {
		t.Errorf("the server process exited: %v", p.cmd.ProcessState)
	}
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type checklistItem struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

func checklistItems(t *testing.T, baseURL, clientKey, secret string) []checklistItem {
	t.Helper()
	status, page := send(t, "GET", baseURL+"/api/checklists/DEMO-1", contextToken(t, clientKey, secret), nil)
	if status != 200 {
		t.Fatalf("read the checklist: %d %s", status, page)
	}
	var doc struct {
		Items []checklistItem `json:"items"`
	}
	if err := json.Unmarshal(page, &doc); err != nil {
		t.Fatalf("checklist %s: %v", page, err)
	}
	return doc.Items
}

func itemIDs(t *testing.T, baseURL, clientKey, secret string) []string {
	t.Helper()
	var ids []string
	for _, it := range checklistItems(t, baseURL, clientKey, secret) {
		ids = append(ids, it.ID)
	}
	if len(ids) == 0 {
		t.Fatal("the checklist has no items")
	}
	return ids
}

func itemTexts(t *testing.T, baseURL, clientKey, secret string) []string {
	t.Helper()
	var texts []string
	for _, it := range checklistItems(t, baseURL, clientKey, secret) {
		texts = append(texts, it.Text)
	}
	return texts
}
