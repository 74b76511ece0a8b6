package fakeatlassian

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Webhook events the fake fires.
const (
	eventIssueCreated = "jira:issue_created"
	eventIssueUpdated = "jira:issue_updated"
	eventIssueDeleted = "jira:issue_deleted"
)

// webhookQueue tracks deliveries in flight so that tests can wait for
// them and Close can stop them.
type webhookQueue struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	pending int
	idle    chan struct{} // closed while pending == 0
	stopped bool
}

func (q *webhookQueue) init() {
	q.ctx, q.cancel = context.WithCancel(context.Background())
	q.idle = make(chan struct{})
	close(q.idle)
}

// add reserves a slot for a delivery; false after stop.
func (q *webhookQueue) add() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return false
	}
	if q.pending == 0 {
		q.idle = make(chan struct{})
	}
	q.pending++
	q.wg.Add(1)
	return true
}

func (q *webhookQueue) done() {
	q.mu.Lock()
	q.pending--
	if q.pending == 0 {
		close(q.idle)
	}
	q.mu.Unlock()
	q.wg.Done()
}

func (q *webhookQueue) stop() {
	q.mu.Lock()
	q.stopped = true
	q.mu.Unlock()
	q.cancel()
	q.wg.Wait()
}

// WaitWebhooks waits until every queued webhook delivery, retries
// included, has finished, or ctx ends.
func (f *Fake) WaitWebhooks(ctx context.Context) error {
	f.hooks.mu.Lock()
	idle := f.hooks.idle
	f.hooks.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("fakeatlassian: waiting for webhooks: %w", ctx.Err())
	}
}

// delivery is one webhook to one app; its id is stable across retries.
type delivery struct {
	id      string
	site    Site
	appKey  string
	event   string
	baseURL string // the app's
	url     string // absolute, variables substituted
	body    []byte
}

// queueIssueEventLocked sends event to every enabled app of s that
// subscribed to it. Called with f.mu held; deliveries run in goroutines.
func (f *Fake) queueIssueEventLocked(s *siteState, event string, is Issue, changes []changeItem, actor string) {
	var payload map[string]any
	for _, appKey := range s.appOrder {
		a := s.apps[appKey]
		if a.state != AppEnabled {
			continue
		}
		for _, wh := range a.desc.webhooks {
			if wh.Event != event {
				continue
			}
			if payload == nil {
				payload = f.issueEventPayload(s, event, is, changes, actor)
			}
			var body []byte
			if !wh.ExcludeBody {
				var err error
				if body, err = json.Marshal(payload); err != nil {
					f.log.Error("encode webhook payload", "event", event, "err", err)
					return
				}
			}
			d := &delivery{
				id:      f.newUUID(),
				site:    s.info,
				appKey:  appKey,
				event:   event,
				baseURL: a.desc.BaseURL,
				url:     a.desc.BaseURL + substituteIssueVars(wh.URL, s, is),
				body:    body,
			}
			if !f.hooks.add() {
				return
			}
			go f.deliver(d)
		}
	}
}

func (f *Fake) issueEventPayload(s *siteState, event string, is Issue, changes []changeItem, actor string) map[string]any {
	p := map[string]any{
		"timestamp":    f.now().UnixMilli(),
		"webhookEvent": event,
		"issue":        issueJSON(s, &is, 2, nil),
		"user":         userJSON(s, actor),
	}
	switch event {
	case eventIssueCreated:
		p["issue_event_type_name"] = "issue_created"
	case eventIssueUpdated:
		p["issue_event_type_name"] = "issue_generic"
		p["changelog"] = map[string]any{"id": strconv.FormatInt(f.now().UnixNano()%1e9, 10), "items": changes}
	case eventIssueDeleted:
		p["issue_event_type_name"] = "issue_deleted"
	}
	return p
}

// substituteIssueVars fills ${issue.key}, {issue.key} and the like in a
// module or webhook URL. Values are percent-encoded so they cannot
// change the URL's structure.
func substituteIssueVars(u string, s *siteState, is Issue) string {
	vars := map[string]string{
		"issue.key": is.Key, "issue.id": is.ID, "issue.type": is.IssueType,
	}
	if p := s.project(is.ProjectKey); p != nil {
		vars["project.key"], vars["project.id"] = p.Key, p.ID
	}
	return substituteVars(u, vars)
}

// substituteVars replaces ${name} and {name} with the encoded value of
// vars[name], or with "" when the variable is unknown (as Connect does).
func substituteVars(u string, vars map[string]string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(u, '{')
		if i < 0 {
			b.WriteString(u)
			return b.String()
		}
		j := strings.IndexByte(u[i:], '}')
		if j < 0 {
			b.WriteString(u)
			return b.String()
		}
		prefix := u[:i]
		prefix = strings.TrimSuffix(prefix, "$")
		b.WriteString(prefix)
		b.WriteString(encodeRFC3986(vars[u[i+1:i+j]]))
		u = u[i+j+1:]
	}
}

// deliver sends d, retrying as Jira does.
func (f *Fake) deliver(d *delivery) {
	defer f.hooks.done()
	for retry := 0; ; retry++ {
		if retry > 0 {
			t := time.NewTimer(f.retryDelays[retry-1])
			select {
			case <-t.C:
			case <-f.hooks.ctx.Done():
				t.Stop()
				return
			}
		}
		again := f.attemptDelivery(d, retry)
		if !again || retry >= len(f.retryDelays) {
			return
		}
	}
}

// attemptDelivery makes one attempt and reports whether to retry.
func (f *Fake) attemptDelivery(d *delivery, retry int) bool {
	f.mu.Lock()
	s := f.sites[d.site.Name]
	var secret string
	if a := s.apps[d.appKey]; a != nil && a.state == AppEnabled {
		secret = a.sharedSecret
	}
	f.mu.Unlock()
	if secret == "" {
		return false // disabled or uninstalled meanwhile: Jira drops it
	}
	hdr, err := f.webhookHeaders(d, secret, retry)
	if err != nil {
		f.log.Error("sign webhook", "err", err)
		return false
	}
	req, err := http.NewRequestWithContext(f.hooks.ctx, http.MethodPost, d.url, bytes.NewReader(d.body))
	if err != nil {
		f.record(Call{Direction: DirectionOut, Kind: KindWebhook, Site: d.site.Name, App: d.appKey, Method: http.MethodPost,
			URL: d.url, Event: d.event, WebhookID: d.id, Retry: retry, Error: err.Error()}, f.now())
		return false
	}
	req.Header = hdr
	start := f.now()
	call := Call{Direction: DirectionOut, Kind: KindWebhook, Site: d.site.Name, App: d.appKey, Method: http.MethodPost,
		URL: d.url, Event: d.event, WebhookID: d.id, Retry: retry}
	resp, err := f.client.Do(req)
	if err != nil {
		if f.hooks.ctx.Err() != nil {
			return false // closing
		}
		call.Error = err.Error()
		f.record(call, start)
		return true // timeouts and refused connections are retried
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	call.Status = resp.StatusCode
	f.record(call, start)
	return retryableStatus(resp.StatusCode)
}

// retryableStatus is Jira's list: 408, 409, 425, 429 and every 5xx.
func retryableStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return code >= 500
}
