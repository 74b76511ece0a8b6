package fakeatlassian

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// PreparedRequest is a request the product would send to an app, built
// and signed but not sent: for a load generator that sends it itself at a
// rate of its choosing. Each one is fresh (new token, new identifiers), as
// the product sends them.
type PreparedRequest struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
}

// WebhookRequest builds the delivery of event to the app on site, about
// issueKey, as the product sends it when the issue changes: the app's
// webhook URL with the issue's variables, an HS256 token with the qsh of
// the request, a new X-Atlassian-Webhook-Identifier and the event's
// payload. The app must be enabled and subscribed to event. Nothing in the
// fake changes: the issue is not touched.
func (f *Fake) WebhookRequest(site *Site, appKey, event, issueKey string) (PreparedRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.siteLocked(site)
	if err != nil {
		return PreparedRequest{}, err
	}
	a := s.apps[appKey]
	if a == nil || a.state != AppEnabled {
		return PreparedRequest{}, fmt.Errorf("%w: no enabled app %q on site %q", ErrNotFound, appKey, s.info.Name)
	}
	is := s.issue(issueKey)
	if is == nil {
		return PreparedRequest{}, fmt.Errorf("%w: issue %q on site %q", ErrNotFound, issueKey, s.info.Name)
	}
	snap := cloneIssue(is)
	for _, wh := range a.desc.webhooks {
		if wh.Event != event {
			continue
		}
		var body []byte
		if !wh.ExcludeBody {
			if body, err = json.Marshal(f.issueEventPayload(s, event, snap, nil, s.info.DefaultAccountID)); err != nil {
				return PreparedRequest{}, fmt.Errorf("fakeatlassian: encode webhook payload: %w", err)
			}
		}
		d := &delivery{
			id: f.newUUID(), site: s.info, appKey: appKey, event: event, baseURL: a.desc.BaseURL,
			url: a.desc.BaseURL + substituteIssueVars(wh.URL, s, snap), body: body,
		}
		hdr, err := f.webhookHeaders(d, a.sharedSecret, 0)
		if err != nil {
			return PreparedRequest{}, err
		}
		return PreparedRequest{Method: http.MethodPost, URL: d.url, Header: hdr, Body: body}, nil
	}
	return PreparedRequest{}, fmt.Errorf("%w: app %q does not subscribe to %q", ErrNotFound, appKey, event)
}

// webhookHeaders are the headers of one delivery attempt of d.
func (f *Fake) webhookHeaders(d *delivery, secret string, retry int) (http.Header, error) {
	token, err := signHS256(secret, f.productClaims(d.site.ClientKey, qshOfURL(http.MethodPost, d.url, d.baseURL), tokenLifetime))
	if err != nil {
		return nil, fmt.Errorf("fakeatlassian: sign webhook: %w", err)
	}
	hdr := http.Header{}
	hdr.Set("Content-Type", "application/json; charset=utf-8")
	hdr.Set("Authorization", "JWT "+token)
	hdr.Set("User-Agent", "Atlassian Webhook HTTP Client")
	hdr.Set("X-Atlassian-Webhook-Identifier", d.id)
	if retry > 0 {
		hdr.Set("X-Atlassian-Webhook-Retry", fmt.Sprint(retry))
	}
	return hdr, nil
}

// ForgeInvocationRequest builds the request InvokeRemote would send.
func (f *Fake) ForgeInvocationRequest(site *Site, inv ForgeInvocation) (PreparedRequest, error) {
	p, err := f.prepareInvocation(site, inv)
	if err != nil {
		return PreparedRequest{}, err
	}
	return f.preparedForge(p.method, p.url, p.fit, p.system, p.user, inv.Body, inv.Header), nil
}

// ForgeEventRequest builds the first delivery attempt SendForgeEvent
// would make; a load generator that sends it makes no retries.
func (f *Fake) ForgeEventRequest(site *Site, ev ForgeEventOptions) (PreparedRequest, error) {
	if ev.EventType == "" {
		return PreparedRequest{}, fmt.Errorf("%w: eventType is required", ErrInvalid)
	}
	if ev.ModuleKey == "" {
		ev.ModuleKey = "forge-remote-events"
	}
	return f.prepareDelivery(site, &forgeDelivery{appID: ev.AppID, path: ev.Path, eventType: ev.EventType,
		moduleKey: ev.ModuleKey, payload: ev.Payload, noSystem: ev.NoSystemToken})
}

// ForgeTriggerRequest builds the first attempt RunForgeTrigger would make.
func (f *Fake) ForgeTriggerRequest(site *Site, tr ForgeTriggerOptions) (PreparedRequest, error) {
	if tr.ModuleKey == "" {
		tr.ModuleKey = "forge-remote-schedule"
	}
	return f.prepareDelivery(site, &forgeDelivery{appID: tr.AppID, path: tr.Path, moduleKey: tr.ModuleKey, noSystem: tr.NoSystemToken})
}

func (f *Fake) prepareDelivery(site *Site, d *forgeDelivery) (PreparedRequest, error) {
	if !strings.HasPrefix(d.path, "/") {
		return PreparedRequest{}, fmt.Errorf("%w: path %q must start with '/'", ErrInvalid, d.path)
	}
	f.mu.Lock()
	s, in, err := f.forgeInstallLocked(site, d.appID)
	if err == nil {
		d.site, d.appID = s.info, in.appID
	}
	f.mu.Unlock()
	if err != nil {
		return PreparedRequest{}, err
	}
	p, err := f.deliveryParts(d, 0, "")
	if err != nil {
		return PreparedRequest{}, err
	}
	return f.preparedForge(http.MethodPost, p.url, p.fit, p.system, "", p.body, nil), nil
}

func (f *Fake) preparedForge(method, url, fit, system, user string, body []byte, extra http.Header) PreparedRequest {
	hdr := http.Header{}
	f.setForgeHeaders(hdr, extra, fit, system, user, len(body) > 0)
	return PreparedRequest{Method: method, URL: url, Header: hdr, Body: bytes.Clone(body)}
}
