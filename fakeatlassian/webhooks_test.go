package fakeatlassian_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/fakeatlassian"
)

func TestWebhooksSignedAndRetried(t *testing.T) {
	t.Parallel()
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", "")
	app := newTestApp(t, f, "hooks")
	app.install(site)
	app.answerWebhooks(http.StatusInternalServerError, http.StatusTooManyRequests)

	is, err := f.CreateIssue(site, fakeatlassian.IssueInput{ProjectKey: "DEMO", Summary: "Hook me"})
	if err != nil {
		t.Fatal(err)
	}
	waitWebhooks(t, f)
	calls := app.webhookCalls()
	if len(calls) != 3 {
		t.Fatalf("got %d attempts, want 3 (two failures, one success): %+v", len(calls), calls)
	}
	for i, c := range calls {
		if c.Err != nil {
			t.Errorf("attempt %d: %v", i, c.Err)
		}
		if c.ID == "" || c.ID != calls[0].ID {
			t.Errorf("attempt %d identifier %q, want the stable %q", i, c.ID, calls[0].ID)
		}
		wantRetry := ""
		if i > 0 {
			wantRetry = string(rune('0' + i))
		}
		if c.Retry != wantRetry {
			t.Errorf("attempt %d X-Atlassian-Webhook-Retry = %q, want %q", i, c.Retry, wantRetry)
		}
		if c.Path != "/app/webhook/created" || c.RawQuery != "issue="+is.Key+"&project=DEMO" {
			t.Errorf("attempt %d went to %s?%s", i, c.Path, c.RawQuery)
		}
	}
	b := calls[2].Body
	if b["webhookEvent"] != "jira:issue_created" || b["timestamp"] == nil ||
		b["issue"].(map[string]any)["key"] != is.Key ||
		b["user"].(map[string]any)["accountId"] != site.DefaultAccountID {
		t.Errorf("payload = %v", b)
	}
	if calls[2].Claims["iss"] != site.ClientKey {
		t.Errorf("iss = %v", calls[2].Claims["iss"])
	}

	var statuses []int
	for _, c := range f.Calls() {
		if c.Kind == fakeatlassian.KindWebhook {
			statuses = append(statuses, c.Status)
			if c.WebhookID != calls[0].ID || c.Event != "jira:issue_created" {
				t.Errorf("recorded webhook call %+v", c)
			}
		}
	}
	if len(statuses) != 3 || statuses[0] != 500 || statuses[1] != 429 || statuses[2] != 204 {
		t.Errorf("recorded statuses %v", statuses)
	}
}

func TestWebhookEvents(t *testing.T) {
	t.Parallel()
	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", "")
	app := newTestApp(t, f, "events")
	installed := app.install(site)

	summary := "Changed"
	if _, err := f.UpdateIssue(site, "DEMO-1", fakeatlassian.IssueUpdate{Summary: &summary}); err != nil {
		t.Fatal(err)
	}
	waitWebhooks(t, f)
	// Changes made through REST fire webhooks too, with the acting user.
	if r := asApp(t, installed, site, "DELETE", "/rest/api/3/issue/DEMO-2", nil); r.Status != http.StatusNoContent {
		t.Fatalf("delete: %d", r.Status)
	}
	waitWebhooks(t, f)
	calls := app.webhookCalls()
	if len(calls) != 2 {
		t.Fatalf("%d deliveries: %+v", len(calls), calls)
	}
	up := calls[0].Body
	items := up["changelog"].(map[string]any)["items"].([]any)
	if up["webhookEvent"] != "jira:issue_updated" || items[0].(map[string]any)["field"] != "summary" ||
		items[0].(map[string]any)["toString"] != "Changed" {
		t.Errorf("update payload = %v", up)
	}
	del := calls[1].Body
	if del["webhookEvent"] != "jira:issue_deleted" || del["user"].(map[string]any)["accountId"] != installed.AccountID {
		t.Errorf("delete payload = %v", del)
	}

	// A 4xx other than 408/409/425/429 is not retried.
	app.answerWebhooks(http.StatusBadRequest)
	if _, err := f.CreateIssue(site, fakeatlassian.IssueInput{ProjectKey: "OPS", Summary: "once"}); err != nil {
		t.Fatal(err)
	}
	waitWebhooks(t, f)
	if n := len(app.webhookCalls()); n != 3 {
		t.Errorf("%d deliveries after a 400, want 3", n)
	}

	// Retries stop after the configured delays (3 here): 4 attempts.
	app.answerWebhooks(503, 503, 503, 503, 503)
	if _, err := f.CreateIssue(site, fakeatlassian.IssueInput{ProjectKey: "OPS", Summary: "never"}); err != nil {
		t.Fatal(err)
	}
	waitWebhooks(t, f)
	if n := len(app.webhookCalls()); n != 3+4 {
		t.Errorf("%d deliveries, want 7", n)
	}

	// A disabled app gets nothing.
	if err := f.Disable(t.Context(), site, "events"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.CreateIssue(site, fakeatlassian.IssueInput{ProjectKey: "OPS", Summary: "quiet"}); err != nil {
		t.Fatal(err)
	}
	waitWebhooks(t, f)
	if n := len(app.webhookCalls()); n != 7 {
		t.Errorf("disabled app got deliveries: %d", n)
	}
}

func TestWebhookTimeoutIsRetried(t *testing.T) {
	t.Parallel()
	f := newFake(t, fakeatlassian.Options{HTTPClient: &http.Client{Timeout: 150 * time.Millisecond}})
	site := addSite(t, f, "acme", "")
	app := newTestApp(t, f, "timeout")
	app.install(site)
	app.delayWebhooks(1, 400*time.Millisecond)
	if _, err := f.CreateIssue(site, fakeatlassian.IssueInput{ProjectKey: "DEMO", Summary: "slow"}); err != nil {
		t.Fatal(err)
	}
	waitWebhooks(t, f)
	var attempts []fakeatlassian.Call
	for _, c := range f.Calls() {
		if c.Kind == fakeatlassian.KindWebhook {
			attempts = append(attempts, c)
		}
	}
	if len(attempts) != 2 || attempts[0].Status != 0 || attempts[0].Error == "" || attempts[1].Status != 204 || attempts[1].Retry != 1 {
		t.Errorf("attempts = %+v, want a timeout then a retry that succeeds", attempts)
	}
}

func TestCloseStopsWebhookRetries(t *testing.T) {
	t.Parallel()
	f := fakeatlassian.New(fakeatlassian.Options{WebhookRetryDelays: []time.Duration{time.Hour}})
	if err := f.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	site := addSite(t, f, "acme", "")
	app := newTestApp(t, f, "slow")
	app.install(site)
	app.answerWebhooks(500)
	if _, err := f.CreateIssue(site, fakeatlassian.IssueInput{ProjectKey: "DEMO", Summary: "x"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(app.webhookCalls()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %v with a retry pending", d)
	}
	if _, err := f.CreateIssue(site, fakeatlassian.IssueInput{ProjectKey: "DEMO", Summary: "after close"}); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitWebhooks(t.Context()); err != nil {
		t.Errorf("wait after close: %v", err)
	}
	if !strings.Contains(app.webhookCalls()[0].Path, "created") {
		t.Error("unexpected delivery")
	}
}
