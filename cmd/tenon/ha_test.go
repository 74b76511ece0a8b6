package main_test

import (
	"bytes"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/connectjwt"
	"github.com/tenon-dev/tenon/internal/pgtest"
	"github.com/tenon-dev/tenon/qsh"
)

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// startHAProxy runs HAProxy with the recipe's configuration
// (deploy/ha/haproxy.cfg) in front of the nodes at a and b.
func startHAProxy(t *testing.T, listen, a, b string) {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if os.Getenv("TENON_REQUIRE_HAPROXY") == "1" {
			t.Fatal("HAProxy is required (TENON_REQUIRE_HAPROXY=1) but haproxy is not on PATH (apt-get install haproxy)")
		}
		t.Skip("haproxy is not installed (apt-get install haproxy); the failover test needs it in front of the two nodes")
	}
	// The recipe's own file, on the test's ports.
	raw, err := os.ReadFile("../../deploy/ha/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(raw)
	for _, r := range []struct{ old, new string }{
		{"/etc/haproxy/errors/tenon-503.http", mustAbs(t, "../../deploy/ha/tenon-503.http")},
		{"bind :8000", "bind " + listen},
		{"server node1 10.0.0.11:8080", "server node1 " + a},
		{"server node2 10.0.0.12:8080", "server node2 " + b},
	} {
		if !strings.Contains(cfg, r.old) {
			t.Fatalf("deploy/ha/haproxy.cfg has no %q", r.old)
		}
		cfg = strings.Replace(cfg, r.old, r.new, 1)
	}
	cfgFile := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "-db", "-f", cfgFile)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start haproxy: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
}

// haResult is one answer of the load.
type haResult struct {
	kind       string // install, write, webhook
	key        string // the tenant, item text or webhook identifier
	at         time.Time
	took       time.Duration
	status     int
	retryAfter string
	body       string
	err        error
}

// TestFailover is the two-node recipe under load: two `tenon serve`
// processes behind HAProxy share a PostgreSQL primary that waits for its
// synchronous standby. Under an open-model load of installs, item
// writes and webhooks the test crashes the primary, promotes the standby
// (as pg_auto_failover's monitor would), then SIGKILLs one node. Every
// install, write and webhook acknowledged is found afterwards; during
// the failover the answers are 503 with Retry-After, never 500, and none
// outlasts the client's deadline; the service is back within 10 s of the
// promotion; every acknowledged webhook is processed exactly once.
func TestFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary, two PostgreSQL servers and HAProxy")
	}
	proxyAddr, addrA, addrB := freeAddr(t), freeAddr(t), freeAddr(t)
	baseURL := "http://" + proxyAddr
	startHAProxy(t, proxyAddr, addrA, addrB)

	primary := pgtest.Start(t, pgtest.Options{})
	primary.CreateDatabase("tenon")
	standby := primary.StartStandby("standby1")
	primary.Synchronous("standby1")
	dsn := fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/tenon?sslmode=disable&target_session_attrs=read-write&connect_timeout=2",
		primary.Port(), standby.Port())

	bin := buildBinary(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret.key")
	if out, err := exec.Command(bin, "keygen", "-o", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	priv, keys := installKeyServer(t)
	node := func(addr string) *proc {
		return startServer(t, bin, []string{
			"--addr", addr, "--admin-addr", "off", "--base-url", baseURL, "--environment", "development",
			"--db", dsn, "--secret-key-file", keyFile, "--job-poll", "200ms",
			"--install-keys-url", keys.URL, "--log-level", "error",
		}, "http://"+addr)
	}
	nodeA, nodeB := node(addrA), node(addrB)
	waitServed(t, baseURL+"/readyz", 30*time.Second)

	const clientKey = "ha-tenant"
	secret := strings.Repeat("h", 40)
	if status, page := signedInstall(t, baseURL, clientKey, secret, "http://127.0.0.1:1/s/ha", priv); status/100 != 2 {
		t.Fatalf("install answered %d %s", status, page)
	}
	// The issues the webhooks delete, each with an item to remove.
	const rate, hooks = 45, 250 // requests a second, webhooks at most
	for i := range hooks {
		if status, page := send(t, "POST", fmt.Sprintf("%s/api/checklists/HOOK-%d/items", baseURL, i),
			contextToken(t, clientKey, secret), []byte(`{"text":"remove me"}`)); status != 201 {
			t.Fatalf("add an item to HOOK-%d: %d %s", i, status, page)
		}
	}

	client := &http.Client{Timeout: 5 * time.Second} // the request deadline
	var mu sync.Mutex
	var results []haResult
	var wg sync.WaitGroup
	stop := make(chan struct{})
	fire := func(n int) {
		defer wg.Done()
		var r haResult
		var req *http.Request
		switch n % 3 {
		case 0:
			r.kind, r.key = "install", fmt.Sprintf("ha-install-%d", n)
			req = installHTTPRequest(t, baseURL, r.key, secret, priv)
		case 1:
			// A checklist holds 100 items: 20 writes each.
			r.kind, r.key = "write", fmt.Sprintf("LOAD-%d written under load %d", n/60, n)
			req, _ = http.NewRequest("POST", fmt.Sprintf("%s/api/checklists/LOAD-%d/items", baseURL, n/60), strings.NewReader(fmt.Sprintf(`{"text":%q}`, r.key)))
			req.Header.Set("Authorization", contextToken(t, clientKey, secret))
			req.Header.Set("Content-Type", "application/json")
		default:
			i := n / 3
			if i >= hooks {
				return
			}
			r.kind, r.key = "webhook", fmt.Sprintf("c0ffee00-0000-4000-8000-%012d", i)
			req = webhookRequest(t, baseURL, clientKey, secret, fmt.Sprintf("HOOK-%d", i), r.key)
		}
		r.at = time.Now()
		resp, err := client.Do(req)
		r.took, r.err = time.Since(r.at), err
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			r.status, r.retryAfter, r.body = resp.StatusCode, resp.Header.Get("Retry-After"), string(b)
		}
		mu.Lock()
		results = append(results, r)
		mu.Unlock()
	}
	// Open model: requests arrive at the rate whatever the answers take.
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		for n := 0; n < 60*rate; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			wg.Add(1)
			go fire(n)
		}
	}()
	firstSuccess := func(kind string, after time.Time) time.Time {
		mu.Lock()
		defer mu.Unlock()
		var first time.Time
		for _, r := range results {
			if r.kind == kind && r.status/100 == 2 && r.at.After(after) && (first.IsZero() || r.at.Before(first)) {
				first = r.at
			}
		}
		return first
	}

	time.Sleep(2 * time.Second)
	crashed := time.Now()
	primary.Stop(pgtest.Immediate)
	time.Sleep(time.Second) // the monitor's detection time
	standby.Promote()
	promoted := time.Now()
	var back time.Time
	for deadline := promoted.Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		w := firstSuccess("write", promoted)
		if i := firstSuccess("install", promoted); !w.IsZero() && !i.IsZero() {
			back = w
			if i.After(w) {
				back = i
			}
			break
		}
	}
	if back.IsZero() {
		close(stop)
		<-loadDone
		wg.Wait()
		t.Fatalf("installs and writes did not succeed again within 10 s of the promotion\nnode a:\n%s\nnode b:\n%s", nodeA.stderr, nodeB.stderr)
	}
	time.Sleep(2 * time.Second)
	killed := time.Now()
	kill(t, nodeA)
	time.Sleep(3 * time.Second)
	close(stop)
	<-loadDone
	wg.Wait()

	// Every answer: 2xx; during the failover 503 with Retry-After; no
	// 500, no answer past the deadline. A request in flight on the
	// killed node when it died is answered 502 by the proxy: counted.
	counts := map[string]int{}
	inFlightKilled, failoverRefused := 0, 0
	var slowest time.Duration
	for _, r := range results {
		slowest = max(slowest, r.took)
		answered := r.at.Add(r.took)
		switch {
		case r.err != nil && !r.at.Before(killed.Add(-client.Timeout)) && r.at.Before(killed.Add(time.Second)) && !isTimeout(r.err):
			// The proxy closed the connection of a request that was on the
			// killed node: in flight, like a 502.
			inFlightKilled++
		case r.err != nil:
			t.Errorf("%s %s at %v: no answer within the deadline: %v", r.kind, r.key, r.at.Sub(crashed), r.err)
		case r.status/100 == 2:
			counts[r.kind]++
		case r.status == http.StatusServiceUnavailable:
			if r.retryAfter == "" || !strings.Contains(r.body, " again") {
				t.Errorf("%s: 503 without Retry-After or a message: %q %.200s", r.kind, r.retryAfter, r.body)
			}
			// The failover window: from the crash until the proxy has
			// seen the nodes ready again, which its health checks learn
			// within (fall + rise) × inter after the first success.
			if answered.Before(crashed) || r.at.After(back.Add(proxyHealthLag)) {
				t.Errorf("%s %s at %v: 503 outside the failover: %.200s", r.kind, r.key, r.at.Sub(crashed), r.body)
			}
			failoverRefused++
		case r.status == http.StatusBadGateway && !r.at.Before(killed.Add(-client.Timeout)) && r.at.Before(killed.Add(time.Second)):
			inFlightKilled++
		default:
			t.Errorf("%s %s at %v: %d %.300s", r.kind, r.key, r.at.Sub(crashed), r.status, r.body)
		}
	}
	if inFlightKilled > rate {
		t.Errorf("%d requests failed when a node was killed; only those in flight on it may", inFlightKilled)
	}
	t.Logf("%d requests at %d/s: %v acknowledged; %d refused with 503 during the failover, %d lost in flight on the killed node; slowest answer %v",
		len(results), rate, counts, failoverRefused, inFlightKilled, slowest.Round(time.Millisecond))
	t.Logf("primary crashed at 0; promoted at %v; installs and writes succeed again %v after the promotion",
		promoted.Sub(crashed).Round(time.Millisecond), back.Sub(promoted).Round(time.Millisecond))

	// Nothing acknowledged is lost.
	newDSN := standby.DSN("tenon")
	var wantTexts []string
	for _, r := range results {
		if r.status/100 != 2 {
			continue
		}
		switch r.kind {
		case "install":
			if status, page := send(t, "GET", baseURL+"/api/checklists/DEMO-1", contextToken(t, r.key, secret), nil); status != 200 {
				t.Errorf("acknowledged install of %s lost: %d %s", r.key, status, page)
			}
		case "write":
			wantTexts = append(wantTexts, r.key)
		}
	}
	got := map[string][]string{}
	for _, w := range wantTexts {
		issue, _, _ := strings.Cut(w, " ")
		if _, ok := got[issue]; !ok {
			got[issue] = []string{}
			for _, it := range checklistItemsOf(t, baseURL, clientKey, secret, issue) {
				got[issue] = append(got[issue], it.Text)
			}
		}
		if !slices.Contains(got[issue], w) {
			t.Errorf("acknowledged write %q lost", w)
		}
	}
	// Every acknowledged webhook: one job, done, its effect visible.
	var ackedHooks []haResult
	for _, r := range results {
		if r.kind == "webhook" && r.status/100 == 2 {
			ackedHooks = append(ackedHooks, r)
		}
	}
	// A job the killed node had claimed comes back when its lease ends
	// (the handler timeout plus jobs.LeaseMargin), and the survivor does
	// it then: wait for the latest lease, bounded.
	var jobs []tenon.Job
	deadline := time.Now().Add(30 * time.Second)
	for ; ; time.Sleep(100 * time.Millisecond) {
		jobs = crashJobs(t, newDSN, keyFile)
		pending := 0
		for _, j := range jobs {
			if j.State != tenon.JobDone {
				pending++
				if end := j.RunAt.Add(10 * time.Second); end.After(deadline) && end.Before(time.Now().Add(2*time.Minute)) {
					deadline = end
				}
			}
		}
		if pending == 0 || time.Now().After(deadline) {
			break
		}
	}
	attempts := map[int]int{}
	for _, h := range ackedHooks {
		var mine []tenon.Job
		for _, j := range jobs {
			if strings.Contains(j.DedupeKey, h.key) {
				mine = append(mine, j)
			}
		}
		if len(mine) != 1 || mine[0].State != tenon.JobDone {
			t.Errorf("acknowledged webhook %s: %d jobs %+v, want one done", h.key, len(mine), mine)
			continue
		}
		attempts[mine[0].Attempts]++
		issue := "HOOK-" + strings.TrimLeft(h.key[len(h.key)-12:], "0")
		if issue == "HOOK-" {
			issue = "HOOK-0"
		}
		for _, it := range checklistItemsOf(t, baseURL, clientKey, secret, issue) {
			t.Errorf("acknowledged webhook %s processed, but %s still has %q", h.key, issue, it.Text)
		}
	}
	t.Logf("%d acknowledged webhooks, each one job done; jobs by attempts: %v", len(ackedHooks), attempts)
	if nodeB.cmd.ProcessState != nil {
		t.Errorf("the surviving node exited: %v", nodeB.cmd.ProcessState)
	}
}

func waitServed(t *testing.T, url string, limit time.Duration) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(url)
		if err != nil {
			last = err.Error()
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			return
		}
		last = resp.Status
	}
	t.Fatalf("%s did not answer 200 within %v: %s", url, limit, last)
}

// proxyHealthLag is how long after the first successful request the
// proxy may still answer 503 for want of a ready node: its checks mark a
// node down after fall × inter and up again after rise × inter
// (deploy/ha/haproxy.cfg: inter 500ms fall 2 rise 2), with one interval
// to spare for the check in progress.
const proxyHealthLag = 2500 * time.Millisecond

// isTimeout reports whether err is a client timeout: a request that got
// no answer in time, never counted as one lost with a killed node.
func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

// installHTTPRequest is a signed `installed` callback as a request, for
// the load generator.
func installHTTPRequest(t *testing.T, baseURL, clientKey, secret string, priv *rsa.PrivateKey) *http.Request {
	auth, body := installRequest(t, baseURL, clientKey, secret, "http://127.0.0.1:1/s/"+clientKey, priv)
	req, _ := http.NewRequest("POST", baseURL+"/installed", bytes.NewReader(body))
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/json")
	return req
}

func webhookRequest(t *testing.T, baseURL, clientKey, secret, issue, id string) *http.Request {
	query := "issueKey=" + issue
	now := time.Now()
	tok, err := connectjwt.SignHS256(connectjwt.Claims{
		Issuer: clientKey, IssuedAt: now.Unix(), ExpiresAt: now.Add(3 * time.Minute).Unix(),
		QSH: qsh.Hash("POST", "/webhooks/issue-deleted", query, ""),
	}, []byte(secret))
	if err != nil {
		t.Error(err)
	}
	body := fmt.Sprintf(`{"timestamp":%d,"webhookEvent":"jira:issue_deleted","issue":{"key":%q}}`, now.UnixMilli(), issue)
	req, _ := http.NewRequest("POST", baseURL+"/webhooks/issue-deleted?"+query, strings.NewReader(body))
	req.Header.Set("Authorization", "JWT "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Atlassian-Webhook-Identifier", id)
	return req
}

func checklistItemsOf(t *testing.T, baseURL, clientKey, secret, issue string) []checklistItem {
	t.Helper()
	status, page := send(t, "GET", baseURL+"/api/checklists/"+issue, contextToken(t, clientKey, secret), nil)
	if status != 200 {
		t.Fatalf("read the checklist of %s: %d %s", issue, status, page)
	}
	var doc struct {
		Items []checklistItem `json:"items"`
	}
	if err := json.Unmarshal(page, &doc); err != nil {
		t.Fatalf("checklist %s: %v", page, err)
	}
	return doc.Items
}
