package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/connectjwt"
	"github.com/tenon-dev/tenon/jobs"
	"github.com/tenon-dev/tenon/qsh"
	"github.com/tenon-dev/tenon/server"
	"github.com/tenon-dev/tenon/sqlite"
)

// queuedDescriptor declares the webhooks of the queued-webhook tests.
// issue_created is the synchronous route every env mounts.
const queuedDescriptor = `{
  "key": "com.example.tenon-test",
  "baseUrl": "https://placeholder.example",
  "authentication": {"type": "jwt"},
  "lifecycle": {"installed": "/installed", "uninstalled": "/uninstalled", "enabled": "/enabled", "disabled": "/disabled"},
  "apiMigrations": {"signed-install": true},
  "modules": {
    "webhooks": [
      {"event": "jira:issue_created", "url": "/hooks/issue?id={issue.id}"},
      {"event": "jira:issue_updated", "url": "/queued/issue?key=${issue.key}&project={project.key}"},
      {"event": "jira:issue_deleted", "url": "/queued/shared"},
      {"event": "comment_created", "url": "/queued/shared"},
      {"event": "jira:worklog_updated", "url": "/queued/worklog"}
    ]
  }
}`

const (
	hookSecretA = "hook-secret-a-0123456789abcdef0123456789abcdef"
	hookSecretB = "hook-secret-b-0123456789abcdef0123456789abcdef"
)

// delivery is what an EventHandler saw.
type delivery struct {
	p  *tenon.Principal
	ev *server.Event
}

// queuedEnv is an env with the queued descriptor, whose job runner only
// looks for work when woken (no polling), so tests decide when it runs.
type queuedEnv struct {
	*env
	got chan delivery
	mu  sync.Mutex
	err error // returned by the handler
}

func newQueuedEnv(t *testing.T, opts ...envOption) *queuedEnv {
	t.Helper()
	opts = append([]envOption{func(c *server.Config) {
		c.Descriptor = []byte(queuedDescriptor)
		c.Jobs = jobs.Options{PollInterval: time.Hour, StatsInterval: time.Hour, Rand: func() float64 { return 0 }}
	}}, opts...)
	q := &queuedEnv{env: newEnv(t, opts...), got: make(chan delivery, 100)}
	handler := func(ctx context.Context, p *tenon.Principal, ev *server.Event) error {
		if tenon.PrincipalFrom(ctx) != p {
			return errors.New("the context does not carry the principal")
		}
		q.got <- delivery{p: p, ev: ev}
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.err
	}
	q.srv.OnWebhook("jira:issue_updated", handler)
	q.srv.OnWebhook("jira:issue_deleted", handler)
	q.srv.OnWebhook("comment_created", handler)
	return q
}

func (q *queuedEnv) failWith(err error) {
	q.mu.Lock()
	q.err = err
	q.mu.Unlock()
}

// run starts Server.Run until the test ends.
func (q *queuedEnv) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.srv.Run(ctx) }()
	q.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				q.t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			q.t.Errorf("Run did not return")
		}
	})
}

// hook posts a webhook to pathQuery signed for clientKey, the token in
// the Authorization header as Jira sends it; header holds name, value
// pairs.
func (q *queuedEnv) hook(clientKey, secret, pathQuery, body string, header ...string) response {
	q.t.Helper()
	tok := q.tenantToken(clientKey, secret, http.MethodPost, pathQuery)
	return q.request(http.MethodPost, pathQuery, tok, strings.NewReader(body), append([]string{"Content-Type", "application/json"}, header...)...)
}

func (q *queuedEnv) jobs(queue string) []tenon.Job {
	q.t.Helper()
	list, err := q.store.Jobs(context.Background(), tenon.JobFilter{Queue: queue})
	if err != nil {
		q.t.Fatal(err)
	}
	return list
}

func (q *queuedEnv) next() delivery {
	q.t.Helper()
	select {
	case d := <-q.got:
		return d
	case <-time.After(15 * time.Second):
		q.t.Fatal("no event reached the handler")
		return delivery{}
	}
}

func (q *queuedEnv) waitJob(id int64, what string, cond func(tenon.Job) bool) tenon.Job {
	q.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		list, err := q.store.Jobs(context.Background(), tenon.JobFilter{AfterID: id - 1, Limit: 1})
		if err != nil {
			q.t.Fatal(err)
		}
		if len(list) == 1 && cond(list[0]) {
			return list[0]
		}
		if time.Now().After(deadline) {
			q.t.Fatalf("job %d never became %s: %+v", id, what, list)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestQueuedWebhookIsStoredThenProcessed(t *testing.T) {
	q := newQueuedEnv(t)
	q.install("client-a", hookSecretA)
	body := `{"webhookEvent":"jira:issue_updated","issue":{"key":"PROJ-7","fields":{"summary":"<b>hi</b> & bye"}}}`
	r := q.hook("client-a", hookSecretA, "/queued/issue?key=PROJ-7&project=PROJ", body,
		"X-Atlassian-Webhook-Identifier", "0f4c7e2a-1b2c-4d5e-8f90-123456789abc",
		"X-Atlassian-Webhook-Retry", "2")
	if r.status != http.StatusNoContent {
		t.Fatalf("status %d, want 204: %s", r.status, r.body)
	}
	// Acknowledged before any processing: the event is in the store.
	list := q.jobs(server.WebhookQueue("jira:issue_updated"))
	if len(list) != 1 || list[0].State != tenon.JobPending || list[0].ClientKey != "client-a" {
		t.Fatalf("stored jobs: %+v; want one pending job of client-a", list)
	}
	if bytes.Contains(list[0].Payload, []byte("jwt")) || bytes.Contains(list[0].Payload, []byte(hookSecretA)) {
		t.Errorf("the stored event contains the token or the secret: %s", list[0].Payload)
	}
	select {
	case d := <-q.got:
		t.Fatalf("the handler ran before Run: %+v", d.ev)
	default:
	}

	q.run()
	d := q.next()
	ev := d.ev
	switch {
	case ev.Name != "jira:issue_updated" || ev.ID != "0f4c7e2a-1b2c-4d5e-8f90-123456789abc" || ev.Retry != 2:
		t.Errorf("event %q, id %q, retry %d", ev.Name, ev.ID, ev.Retry)
	case ev.RawQuery != "key=PROJ-7&project=PROJ" || ev.Query.Get("key") != "PROJ-7":
		t.Errorf("query %q", ev.RawQuery)
	case ev.Attempt != 1 || ev.JobID != list[0].ID || !ev.ReceivedAt.Equal(q.clock.Now()):
		t.Errorf("attempt %d, job %d, received %v", ev.Attempt, ev.JobID, ev.ReceivedAt)
	}
	var decoded map[string]any
	if err := json.Unmarshal(ev.Body, &decoded); err != nil || !strings.Contains(string(ev.Body), "<b>hi</b> & bye") {
		t.Errorf("body %s (%v)", ev.Body, err)
	}
	p := d.p
	if p.ClientKey() != "client-a" || p.AccountID != "557058:user-1" || p.Kind != tenon.TokenWebhook {
		t.Errorf("principal: site %q, account %q, kind %q", p.ClientKey(), p.AccountID, p.Kind)
	}
	if err := p.Data().Put(context.Background(), "k", 1); err != nil {
		t.Errorf("the principal's data: %v", err)
	}
	q.waitJob(list[0].ID, "done", func(j tenon.Job) bool { return j.State == tenon.JobDone })
}

func TestQueuedWebhookDeduplicates(t *testing.T) {
	q := newQueuedEnv(t)
	q.install("client-a", hookSecretA)
	q.install("client-b", hookSecretB)
	send := func(clientKey, secret, id string) {
		t.Helper()
		var hdr []string
		if id != "" {
			hdr = []string{"X-Atlassian-Webhook-Identifier", id}
		}
		if r := q.hook(clientKey, secret, "/queued/issue?key=P-1", `{}`, hdr...); r.status != http.StatusNoContent {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	}
	send("client-a", hookSecretA, "hook-1")
	send("client-a", hookSecretA, "hook-1") // Jira retried: acknowledged, dropped
	send("client-b", hookSecretB, "hook-1") // another site's identifier space
	send("client-a", hookSecretA, "hook-2")
	send("client-a", hookSecretA, "") // no identifier: no deduplication
	send("client-a", hookSecretA, "")
	got := map[string]int{}
	for _, j := range q.jobs(server.WebhookQueue("jira:issue_updated")) {
		got[j.ClientKey]++
	}
	if got["client-a"] != 4 || got["client-b"] != 1 {
		t.Errorf("stored jobs per site: %v; want client-a 4, client-b 1", got)
	}
}

func TestQueuedWebhookRefusals(t *testing.T) {
	q := newQueuedEnv(t, func(c *server.Config) { c.MaxBodyBytes = 1024 })
	q.install("client-a", hookSecretA)
	q.install("client-gone", hookSecretB)
	if _, err := q.store.SetState(context.Background(), "client-gone", tenon.StateUninstalled); err != nil {
		t.Fatal(err)
	}
	q.srv.InvalidateTenant("")
	const path = "/queued/issue?key=P-1"
	good := q.tenantToken("client-a", hookSecretA, http.MethodPost, path)
	json := []string{"Content-Type", "application/json"}
	tests := []struct {
		name   string
		send   func() response
		status int
	}{
		{"no token", func() response { return q.request(http.MethodPost, path, "", strings.NewReader(`{}`), json...) }, 401},
		{"a browser context token", func() response {
			return q.request(http.MethodPost, path, q.contextToken("client-a", hookSecretA, ""), strings.NewReader(`{}`), json...)
		}, 401},
		{"a token for another query", func() response {
			return q.request(http.MethodPost, "/queued/issue?key=P-2", good, strings.NewReader(`{}`), json...)
		}, 401},
		{"a token for GET", func() response {
			return q.request(http.MethodPost, path, q.tenantToken("client-a", hookSecretA, http.MethodGet, path), strings.NewReader(`{}`), json...)
		}, 401},
		{"a token signed with another secret", func() response {
			return q.request(http.MethodPost, path, q.tenantToken("client-a", hookSecretB, http.MethodPost, path), strings.NewReader(`{}`), json...)
		}, 401},
		{"an expired token", func() response {
			tok := q.tenantToken("client-a", hookSecretA, http.MethodPost, path, func(c *connectjwt.Claims) {
				c.IssuedAt, c.ExpiresAt = c.IssuedAt-3600, c.IssuedAt-1800
			})
			return q.request(http.MethodPost, path, tok, strings.NewReader(`{}`), json...)
		}, 401},
		{"an uninstalled site", func() response { return q.hook("client-gone", hookSecretB, path, `{}`) }, 401},
		{"an unknown site", func() response { return q.hook("client-x", hookSecretA, path, `{}`) }, 401},
		{"alg none", func() response {
			c := connectjwt.Claims{Issuer: "client-a", IssuedAt: q.clock.Now().Unix(), ExpiresAt: q.clock.Now().Add(time.Minute).Unix(),
				QSH: qsh.Hash(http.MethodPost, basePath+"/queued/issue", "key=P-1", basePath)}
			return q.request(http.MethodPost, path, unsignedToken(`{"alg":"none","typ":"JWT"}`, c, ""), strings.NewReader(`{}`), json...)
		}, 401},
		{"a body that is not JSON", func() response { return q.hook("client-a", hookSecretA, path, `{"issue":`) }, 400},
		{"a body over the limit", func() response {
			return q.hook("client-a", hookSecretA, path, `{"x":"`+strings.Repeat("a", 2048)+`"}`)
		}, 413},
		{"an identifier with spaces", func() response {
			return q.hook("client-a", hookSecretA, path, `{}`, "X-Atlassian-Webhook-Identifier", "a b")
		}, 400},
		{"an identifier too long", func() response {
			return q.hook("client-a", hookSecretA, path, `{}`, "X-Atlassian-Webhook-Identifier", strings.Repeat("i", 201))
		}, 400},
		{"a retry header that is no number", func() response {
			return q.hook("client-a", hookSecretA, path, `{}`, "X-Atlassian-Webhook-Retry", "many")
		}, 400},
		{"GET", func() response { return q.request(http.MethodGet, path, good, nil) }, 405},
		{"an event declared but not handled", func() response { return q.hook("client-a", hookSecretA, "/queued/worklog", `{}`) }, 404},
		{"a shared url without webhookEvent", func() response { return q.hook("client-a", hookSecretA, "/queued/shared", `{"issue":{}}`) }, 400},
		{"a shared url naming an unhandled event", func() response {
			return q.hook("client-a", hookSecretA, "/queued/shared", `{"webhookEvent":"jira:worklog_updated"}`)
		}, 400},
	}
	for _, tt := range tests {
		if r := tt.send(); r.status != tt.status {
			t.Errorf("%s: status %d, want %d (%s)", tt.name, r.status, tt.status, r.body)
		}
	}
	if list, err := q.store.Jobs(context.Background(), tenon.JobFilter{}); err != nil || len(list) != 0 {
		t.Errorf("refused deliveries were stored: %d jobs, %v", len(list), err)
	}
}

func TestQueuedWebhookSharedURLAndEmptyBody(t *testing.T) {
	q := newQueuedEnv(t)
	q.install("client-a", hookSecretA)
	q.run()
	if r := q.hook("client-a", hookSecretA, "/queued/shared", `{"webhookEvent":"comment_created","comment":{"id":"1"}}`); r.status != 204 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if d := q.next(); d.ev.Name != "comment_created" {
		t.Errorf("event %q, want comment_created", d.ev.Name)
	}
	// A webhook with excludeBody sends nothing; the query says it all.
	if r := q.hook("client-a", hookSecretA, "/queued/issue?key=P-9", ""); r.status != 204 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if d := q.next(); d.ev.Body != nil || d.ev.Query.Get("key") != "P-9" {
		t.Errorf("body %q, query %q", d.ev.Body, d.ev.RawQuery)
	}
}

func TestQueuedWebhookSiteStates(t *testing.T) {
	q := newQueuedEnv(t)
	q.install("client-a", hookSecretA)
	q.install("client-b", hookSecretB)
	ctx := context.Background()
	send := func(clientKey, secret string) int64 {
		t.Helper()
		if r := q.hook(clientKey, secret, "/queued/issue?key=P-1", `{}`); r.status != 204 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		list := q.jobs(server.WebhookQueue("jira:issue_updated"))
		return list[len(list)-1].ID
	}
	gone := send("client-a", hookSecretA)
	waiting := send("client-b", hookSecretB)
	// After the acknowledgement, one site uninstalls and one disables.
	if _, err := q.store.SetState(ctx, "client-a", tenon.StateUninstalled); err != nil {
		t.Fatal(err)
	}
	if _, err := q.store.SetState(ctx, "client-b", tenon.StateDisabled); err != nil {
		t.Fatal(err)
	}
	q.srv.InvalidateTenant("")
	q.run()
	q.waitJob(gone, "dropped", func(j tenon.Job) bool { return j.State == tenon.JobDone })
	j := q.waitJob(waiting, "retried", func(j tenon.Job) bool { return j.State == tenon.JobPending && j.Attempts == 1 })
	if !strings.Contains(j.LastError, "disabled") {
		t.Errorf("LastError %q, want it to say the app is disabled", j.LastError)
	}
	select {
	case d := <-q.got:
		t.Fatalf("the handler ran for site %s, which is not enabled", d.p.ClientKey())
	default:
	}
	// Enabled again: the event runs at its next attempt.
	if _, err := q.store.SetState(ctx, "client-b", tenon.StateEnabled); err != nil {
		t.Fatal(err)
	}
	q.srv.InvalidateTenant("")
	q.clock.Advance(time.Hour)
	q.srv.Enqueue(ctx, "wake", tenon.NewJob{Payload: json.RawMessage(`{}`)}) // any local enqueue wakes the runner
	if d := q.next(); d.p.ClientKey() != "client-b" {
		t.Errorf("processed for %q, want client-b", d.p.ClientKey())
	}
	q.waitJob(waiting, "done", func(j tenon.Job) bool { return j.State == tenon.JobDone && j.Attempts == 2 })
}

func TestQueuedWebhookInvalidEventIsDeadLetter(t *testing.T) {
	q := newQueuedEnv(t)
	q.install("client-a", hookSecretA)
	q.failWith(tenon.Errorf(tenon.EINVALID, "The event names no issue."))
	q.run()
	if r := q.hook("client-a", hookSecretA, "/queued/issue", `{}`); r.status != 204 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	q.next()
	id := q.jobs(server.WebhookQueue("jira:issue_updated"))[0].ID
	j := q.waitJob(id, "dead", func(j tenon.Job) bool { return j.State == tenon.JobDead })
	if j.Attempts != 1 || !strings.Contains(j.LastError, "names no issue") {
		t.Errorf("dead letter: attempts %d, LastError %q", j.Attempts, j.LastError)
	}
}

// failingQueue is a store whose queue is down.
type failingQueue struct{ *sqlite.Store }

func (failingQueue) Enqueue(context.Context, string, tenon.NewJob) (int64, bool, error) {
	return 0, false, errors.New("disk I/O error at /var/lib/tenon/tenon.db")
}

func TestQueuedWebhookNotStoredIsNotAcknowledged(t *testing.T) {
	q := newQueuedEnv(t, func(c *server.Config) { c.Queue = failingQueue{c.Store.(*sqlite.Store)} })
	q.install("client-a", hookSecretA)
	r := q.hook("client-a", hookSecretA, "/queued/issue", `{}`)
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503 so the product sends it again", r.status)
	}
	if strings.Contains(r.body, "/var/lib") || strings.Contains(q.logs.String(), hookSecretA) {
		t.Errorf("the answer leaks the internal error (%s) or the log a secret", r.body)
	}
}

// An event the descriptor does not declare is no panic: it is collected,
// listed among the routes without a pattern, mounts nothing, and Run
// refuses to start.
func TestOnWebhookUndeclaredEventCollected(t *testing.T) {
	q := newQueuedEnv(t)
	if err := q.srv.SetupError(); err != nil {
		t.Fatalf("setup error before the mistake: %v", err)
	}
	nop := func(context.Context, *tenon.Principal, *server.Event) error { return nil }
	q.srv.OnWebhook("jira:version_released", nop)
	err := q.srv.SetupError()
	if err == nil || !strings.Contains(err.Error(), `OnWebhook("jira:version_released"): the descriptor declares no webhook for this event`) {
		t.Fatalf("SetupError = %v", err)
	}
	var found bool
	for _, rt := range q.srv.Routes() {
		if rt.Event == "jira:version_released" {
			found = rt.Kind == "webhook" && rt.Pattern == ""
		}
	}
	if !found {
		t.Errorf("routes %+v lack the undeclared event", q.srv.Routes())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := q.srv.Run(ctx); err == nil || !strings.Contains(err.Error(), "declares no webhook") {
		t.Errorf("Run with a setup error: %v", err)
	}
}

func TestRoutesListsRegistrations(t *testing.T) {
	q := newQueuedEnv(t)
	want := map[string]string{ // pattern → kind
		"POST /queued/issue":  "webhook",
		"POST /queued/shared": "webhook",
	}
	for _, rt := range q.srv.Routes() {
		if k, ok := want[rt.Pattern]; ok && k == rt.Kind && rt.Event != "" {
			delete(want, rt.Pattern)
		}
	}
	for p := range want {
		t.Errorf("Routes lacks %s: %+v", p, q.srv.Routes())
	}
}

// storeWithoutQueue hides the queue methods of a store.
type storeWithoutQueue struct{ tenon.Store }

func TestOnWebhookMistakesPanic(t *testing.T) {
	mustPanic := func(what, want string, f func()) {
		t.Helper()
		defer func() {
			v := recover()
			if v == nil || !strings.Contains(fmt.Sprint(v), want) {
				t.Errorf("%s: panic %v, want one mentioning %q", what, v, want)
			}
		}()
		f()
	}
	q := newQueuedEnv(t)
	nop := func(context.Context, *tenon.Principal, *server.Event) error { return nil }
	mustPanic("a second handler", "already registered", func() { q.srv.OnWebhook("jira:issue_updated", nop) })

	e := newEnv(t, func(c *server.Config) {
		c.Descriptor = []byte(queuedDescriptor)
		c.Store = storeWithoutQueue{c.Store}
	})
	mustPanic("a store without a queue", "tenon.JobQueue", func() { e.srv.OnWebhook("jira:issue_updated", nop) })
	if _, _, err := e.srv.Enqueue(context.Background(), "q", tenon.NewJob{Payload: json.RawMessage(`{}`)}); tenon.ErrorCode(err) != tenon.EUNAVAILABLE {
		t.Errorf("Enqueue without a queue: %v, want EUNAVAILABLE", err)
	}
	// Run still follows installations and returns with its context.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.srv.Run(ctx); err != nil {
		t.Errorf("Run without a queue: %v", err)
	}
}

// bothObserver implements the request observer and tenon.Observer, as
// the metrics package does.
type bothObserver struct {
	mu     sync.Mutex
	queues map[string]tenon.QueueStats
}

func (o *bothObserver) ObserveRequest(server.RequestInfo)  {}
func (o *bothObserver) ObserveOutbound(tenon.OutboundCall) {}
func (o *bothObserver) ObserveQueue(st tenon.QueueStats) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.queues[st.Queue] = st
}

func TestHandleJobsAndQueueStats(t *testing.T) {
	obs := &bothObserver{queues: map[string]tenon.QueueStats{}}
	q := newQueuedEnv(t, func(c *server.Config) {
		c.Observer = obs
		c.Jobs.StatsInterval = time.Millisecond
	})
	done := make(chan string, 1)
	q.srv.HandleJobs("app:report", func(ctx context.Context, j tenon.Job) error {
		done <- string(j.Payload)
		return nil
	}, jobs.MaxAttempts(3))
	q.run()
	if _, created, err := q.srv.Enqueue(context.Background(), "app:report", tenon.NewJob{Payload: json.RawMessage(`{"month":"2026-02"}`)}); err != nil || !created {
		t.Fatalf("Enqueue: %v, %v", created, err)
	}
	select {
	case p := <-done:
		if p != `{"month":"2026-02"}` {
			t.Errorf("payload %s", p)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the job did not run")
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		obs.mu.Lock()
		_, report := obs.queues["app:report"]
		_, hooks := obs.queues[server.WebhookQueue("jira:issue_updated")]
		obs.mu.Unlock()
		if report && hooks {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Config.Observer got no queue statistics")
		}
		time.Sleep(time.Millisecond)
	}
}
