package fakeatlassian

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// KindForge is a call the fake made to a Forge remote: a UI invocation,
// an event or a scheduled trigger (Call.Event says which).
const KindForge = "forge"

// maxForgeResponse bounds what the fake reads of a remote's answer.
const maxForgeResponse = 1 << 20

// ForgeInvocation is a UI invocation (invokeRemote, requestRemote) of a
// Forge app's remote.
type ForgeInvocation struct {
	// AppID selects the installation ("" for the default app).
	AppID string
	// Method defaults to GET.
	Method string
	// Path is appended to the remote's baseUrl; it may carry a query.
	Path string
	// Body is sent as application/json when set.
	Body json.RawMessage
	// Header adds headers (the app's own; Forge forwards custom ones).
	Header http.Header
	// AccountID is the user who invoked the module; default the site's
	// default user.
	AccountID string
	// ModuleType, ModuleKey and Extension shape the token's app.module and
	// context (see FITOptions). IssueKey fills the extension of a Jira
	// issue module with that issue and its project.
	ModuleType, ModuleKey string
	Extension             map[string]any
	IssueKey              string
	// NoSystemToken and NoUserToken leave out x-forge-oauth-system and
	// x-forge-oauth-user, as an endpoint whose manifest asks for neither.
	NoSystemToken, NoUserToken bool
}

// ForgeResponse is what a remote answered.
type ForgeResponse struct {
	Status   int         `json:"status"`
	Header   http.Header `json:"headers"`
	Body     []byte      `json:"-"`
	Attempts int         `json:"attempts"`
}

// InvokeRemote sends a UI invocation to the remote of the Forge app
// installed on site and returns its answer (no retries, 25 s timeout, as
// Forge). Redirects are not followed: Forge treats them as errors.
func (f *Fake) InvokeRemote(ctx context.Context, site *Site, inv ForgeInvocation) (*ForgeResponse, error) {
	p, err := f.prepareInvocation(site, inv)
	if err != nil {
		return nil, err
	}
	call := Call{Direction: DirectionOut, Kind: KindForge, Site: site.Name, App: p.appID, Method: p.method,
		URL: p.url, Event: "invoke"}
	ctx, cancel := context.WithTimeout(ctx, forgeInvokeTimeout)
	defer cancel()
	return f.sendForge(ctx, call, p.fit, p.system, p.user, inv.Body, inv.Header)
}

// invocationParts are the signed parts of one UI invocation.
type invocationParts struct {
	appID, method, url, fit, system, user string
}

// prepareInvocation checks inv and signs its tokens.
func (f *Fake) prepareInvocation(site *Site, inv ForgeInvocation) (invocationParts, error) {
	method := inv.Method
	if method == "" {
		method = http.MethodGet
	}
	if !strings.HasPrefix(inv.Path, "/") {
		return invocationParts{}, fmt.Errorf("%w: path %q must start with '/'", ErrInvalid, inv.Path)
	}
	if len(inv.Body) > 0 && !json.Valid(inv.Body) {
		return invocationParts{}, fmt.Errorf("%w: the invocation body is not JSON", ErrInvalid)
	}
	f.mu.Lock()
	s, in, err := f.forgeInstallLocked(site, inv.AppID)
	var claims map[string]any
	var system, user, remote string
	if err == nil {
		remote = in.remoteBaseURL
		ext := inv.Extension
		if ext == nil && inv.IssueKey != "" {
			ext, err = f.issueExtensionLocked(s, inv.IssueKey, inv.ModuleType)
		}
		if err == nil {
			claims, err = f.fitClaimsLocked(s, in, FITOptions{
				AccountID: inv.AccountID, ModuleType: inv.ModuleType, ModuleKey: inv.ModuleKey, Extension: ext,
			})
		}
		if err == nil && !inv.NoSystemToken {
			system, err = f.forgeTokenLocked(s, in, "", forgeSystemLife)
		}
		if err == nil && !inv.NoUserToken {
			user, err = f.forgeTokenLocked(s, in, claims["principal"].(string), forgeUserLife)
		}
	}
	f.mu.Unlock()
	if err != nil {
		return invocationParts{}, err
	}
	fit, err := f.signFIT(claims)
	if err != nil {
		return invocationParts{}, err
	}
	return invocationParts{appID: in.appID, method: method, url: remote + inv.Path, fit: fit, system: system, user: user}, nil
}

// issueExtensionLocked is the context.extension of a Jira issue module.
func (f *Fake) issueExtensionLocked(s *siteState, issueKey, moduleType string) (map[string]any, error) {
	is := s.issue(issueKey)
	if is == nil {
		return nil, fmt.Errorf("%w: issue %q on site %q", ErrNotFound, issueKey, s.info.Name)
	}
	if moduleType == "" {
		moduleType = "jira:issuePanel"
	}
	ext := map[string]any{
		"type":  moduleType,
		"issue": map[string]any{"key": is.Key, "id": is.ID, "type": is.IssueType},
	}
	if p := s.project(is.ProjectKey); p != nil {
		ext["project"] = map[string]any{"key": p.Key, "id": p.ID, "type": "software"}
	}
	return ext, nil
}

// sendForge makes one call to a remote with a FIT and the OAuth tokens.
func (f *Fake) sendForge(ctx context.Context, call Call, fit, system, user string, body []byte, hdr http.Header) (*ForgeResponse, error) {
	var rd io.Reader
	if len(body) > 0 {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, call.Method, call.URL, rd)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	f.setForgeHeaders(req.Header, hdr, fit, system, user, rd != nil)
	client := *f.client
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	start := f.now()
	resp, err := client.Do(req)
	if err != nil {
		call.Error = err.Error()
		f.record(call, start)
		return nil, fmt.Errorf("fakeatlassian: calling the Forge remote %s: %w", call.URL, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxForgeResponse))
	call.Status = resp.StatusCode
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		call.Error = "the remote answered " + http.StatusText(resp.StatusCode)
	}
	f.record(call, start)
	if err != nil {
		return nil, fmt.Errorf("fakeatlassian: reading the answer of %s: %w", call.URL, err)
	}
	return &ForgeResponse{Status: resp.StatusCode, Header: resp.Header, Body: answer, Attempts: 1}, nil
}

// setForgeHeaders sets the headers of a call to a remote on h: extra
// (the app's own), the FIT, the OAuth tokens and the trace ids.
func (f *Fake) setForgeHeaders(h, extra http.Header, fit, system, user string, hasBody bool) {
	for k, vs := range extra {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	h.Set("Authorization", "Bearer "+fit)
	if system != "" {
		h.Set("X-Forge-Oauth-System", system)
	}
	if user != "" {
		h.Set("X-Forge-Oauth-User", user)
	}
	h.Set("X-B3-Traceid", f.randomHex(8))
	h.Set("X-B3-Spanid", f.randomHex(8))
	h.Set("User-Agent", "fakeatlassian (Forge Remote)")
	if hasBody {
		h.Set("Content-Type", "application/json")
	}
}

// deliveryParts are the signed parts of one attempt of a delivery.
type deliveryParts struct {
	remote, url, fit, system string
	body                     []byte
}

// deliveryParts signs attempt retry of d and encodes its body.
func (f *Fake) deliveryParts(d *forgeDelivery, retry int, lastReason string) (deliveryParts, error) {
	f.mu.Lock()
	s, in, err := f.forgeInstallLocked(&d.site, d.appID)
	var claims map[string]any
	var system, remote string
	if err == nil {
		remote = in.remoteBaseURL
		claims, err = f.fitClaimsLocked(s, in, FITOptions{NoPrincipal: true, NoContext: true, ModuleType: "core:endpoint", ModuleKey: d.moduleKey})
		if err == nil && !d.noSystem {
			system, err = f.forgeTokenLocked(s, in, "", forgeSystemLife)
		}
	}
	f.mu.Unlock()
	if err != nil {
		return deliveryParts{}, err
	}
	payload := map[string]any{}
	for k, v := range d.payload {
		payload[k] = v
	}
	payload["context"] = map[string]any{"cloudId": d.site.CloudID, "moduleKey": d.moduleKey}
	if d.eventType != "" {
		payload["eventType"] = d.eventType
	}
	if retry > 0 {
		payload["retryContext"] = map[string]any{"retryCount": retry, "retryReason": lastReason, "retryData": nil}
	}
	body, err := json.Marshal(map[string]any{"payload": payload})
	if err != nil {
		return deliveryParts{}, fmt.Errorf("fakeatlassian: encode Forge event: %w", err)
	}
	fit, err := f.signFIT(claims)
	if err != nil {
		return deliveryParts{}, err
	}
	return deliveryParts{remote: remote, url: remote + d.path, fit: fit, system: system, body: body}, nil
}

// ForgeEventOptions describe a product or lifecycle event routed to a
// remote endpoint.
type ForgeEventOptions struct {
	// AppID selects the installation ("" for the default app).
	AppID string
	// Path is the endpoint's route.path on the remote.
	Path string
	// EventType is the event, e.g. "avi:jira:deleted:issue".
	EventType string
	// Payload holds the event's fields (issue, atlassianId, ...).
	Payload map[string]any
	// ModuleKey is the trigger module that subscribed; default
	// "forge-remote-events".
	ModuleKey string
	// NoSystemToken leaves out x-forge-oauth-system.
	NoSystemToken bool
}

// ForgeTriggerOptions describe a scheduled trigger routed to a remote.
type ForgeTriggerOptions struct {
	AppID string
	// Path is the endpoint's route.path on the remote.
	Path string
	// ModuleKey is the scheduledTrigger module; default
	// "forge-remote-schedule".
	ModuleKey     string
	NoSystemToken bool
}

// forgeDelivery is one event or trigger, redelivered until accepted.
type forgeDelivery struct {
	site      Site
	appID     string
	path      string
	eventType string // "" for a trigger
	moduleKey string
	payload   map[string]any
	noSystem  bool
}

// SendForgeEvent delivers an event to the remote as Forge does: POST with
// a FIT (no principal, no context), the app system token, a 5 s timeout,
// and the event in the body's "payload". The first attempt is made now and
// its answer returned; when it fails (non-2xx, timeout, unreachable)
// Forge's up to 4 retries follow in the background, after the fake's
// retry delays (Options.WebhookRetryDelays), each with a new token and a
// payload.retryContext. WaitWebhooks waits for them too.
func (f *Fake) SendForgeEvent(ctx context.Context, site *Site, ev ForgeEventOptions) (*ForgeResponse, error) {
	if ev.EventType == "" {
		return nil, fmt.Errorf("%w: eventType is required", ErrInvalid)
	}
	if ev.ModuleKey == "" {
		ev.ModuleKey = "forge-remote-events"
	}
	return f.startForgeDelivery(ctx, site, &forgeDelivery{
		appID: ev.AppID, path: ev.Path, eventType: ev.EventType, moduleKey: ev.ModuleKey,
		payload: ev.Payload, noSystem: ev.NoSystemToken,
	})
}

// RunForgeTrigger fires a scheduled trigger at the remote, with retries
// like SendForgeEvent.
func (f *Fake) RunForgeTrigger(ctx context.Context, site *Site, tr ForgeTriggerOptions) (*ForgeResponse, error) {
	if tr.ModuleKey == "" {
		tr.ModuleKey = "forge-remote-schedule"
	}
	return f.startForgeDelivery(ctx, site, &forgeDelivery{
		appID: tr.AppID, path: tr.Path, moduleKey: tr.ModuleKey, noSystem: tr.NoSystemToken,
	})
}

func (f *Fake) startForgeDelivery(ctx context.Context, site *Site, d *forgeDelivery) (*ForgeResponse, error) {
	if !strings.HasPrefix(d.path, "/") {
		return nil, fmt.Errorf("%w: path %q must start with '/'", ErrInvalid, d.path)
	}
	f.mu.Lock()
	s, in, err := f.forgeInstallLocked(site, d.appID)
	if err == nil {
		d.site, d.appID = s.info, in.appID
	}
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	resp, retry, reason, err := f.attemptForge(ctx, d, 0, "")
	if err != nil && !retry {
		return nil, err
	}
	if retry && f.hooks.add() {
		go f.redeliverForge(d, reason)
	}
	if resp == nil {
		return nil, err
	}
	return resp, nil
}

// redeliverForge makes Forge's retries of a failed delivery.
func (f *Fake) redeliverForge(d *forgeDelivery, reason string) {
	defer f.hooks.done()
	for retry := 1; retry <= min(forgeMaxRetries, len(f.retryDelays)); retry++ {
		t := time.NewTimer(f.retryDelays[retry-1])
		select {
		case <-t.C:
		case <-f.hooks.ctx.Done():
			t.Stop()
			return
		}
		var again bool
		_, again, reason, _ = f.attemptForge(f.hooks.ctx, d, retry, reason)
		if !again {
			return
		}
	}
}

// attemptForge makes one delivery attempt and says whether Forge would
// try again, and why.
func (f *Fake) attemptForge(ctx context.Context, d *forgeDelivery, retry int, lastReason string) (*ForgeResponse, bool, string, error) {
	p, err := f.deliveryParts(d, retry, lastReason)
	if err != nil {
		return nil, false, "", err // uninstalled meanwhile: Forge stops
	}
	remote, body, fit, system := p.remote, p.body, p.fit, p.system
	event := d.eventType
	if event == "" {
		event = "trigger:" + d.moduleKey
	}
	call := Call{Direction: DirectionOut, Kind: KindForge, Site: d.site.Name, App: d.appID, Method: http.MethodPost,
		URL: remote + d.path, Event: event, Retry: retry}
	actx, cancel := context.WithTimeout(ctx, forgeEventTimeout)
	defer cancel()
	resp, err := f.sendForge(actx, call, fit, system, "", body, nil)
	switch {
	case err != nil && errors.Is(actx.Err(), context.DeadlineExceeded):
		return nil, true, "TIMEOUT_ERROR", err
	case err != nil:
		if ctx.Err() != nil {
			return nil, false, "", err // the fake is closing
		}
		return nil, true, "INVALID_REMOTE_INVOCATION_ERROR", err
	case resp.Status == http.StatusUnauthorized:
		resp.Attempts = retry + 1
		return resp, true, "INVALID_FORGE_INVOCATION_TOKEN", nil
	case resp.Status < 200 || resp.Status > 299:
		resp.Attempts = retry + 1
		return resp, true, "INVALID_REMOTE_INVOCATION_ERROR", nil
	}
	resp.Attempts = retry + 1
	return resp, false, "", nil
}

// Forge lifecycle events.
const (
	ForgeInstalledEvent   = "avi:forge:installed:app"
	ForgeUpgradedEvent    = "avi:forge:upgraded:app"
	ForgeUninstalledEvent = "avi:forge:uninstalled:app"
)

// ForgeLifecycleOptions describe a Forge lifecycle event sent to a remote.
type ForgeLifecycleOptions struct {
	AppID string
	// Path is the route.path of the remote endpoint of the manifest's
	// lifecycle trigger.
	Path string
	// EventType is ForgeInstalledEvent (default), ForgeUpgradedEvent or
	// ForgeUninstalledEvent.
	EventType string
	// Version is app.version of the event; default "1.0.0".
	Version string
	// ModuleKey is the trigger module; default "forge-remote-lifecycle".
	ModuleKey string
}

// SendForgeLifecycleEvent delivers a lifecycle event of the installation
// of opts.AppID on site as Forge does, with SendForgeEvent's token,
// timeout and retries: the payload names the installation ("id") and the
// app ("app": {"id", "version"}).
func (f *Fake) SendForgeLifecycleEvent(ctx context.Context, site *Site, opts ForgeLifecycleOptions) (*ForgeResponse, error) {
	if opts.EventType == "" {
		opts.EventType = ForgeInstalledEvent
	}
	switch opts.EventType {
	case ForgeInstalledEvent, ForgeUpgradedEvent, ForgeUninstalledEvent:
	default:
		return nil, fmt.Errorf("%w: %q is not a Forge lifecycle event", ErrInvalid, opts.EventType)
	}
	if opts.Version == "" {
		opts.Version = "1.0.0"
	}
	if opts.ModuleKey == "" {
		opts.ModuleKey = "forge-remote-lifecycle"
	}
	inst, err := f.ForgeInstallationOf(site, opts.AppID)
	if err != nil {
		return nil, err
	}
	return f.SendForgeEvent(ctx, site, ForgeEventOptions{
		AppID: opts.AppID, Path: opts.Path, EventType: opts.EventType, ModuleKey: opts.ModuleKey,
		Payload: map[string]any{"id": inst.InstallationID, "app": map[string]any{"id": inst.AppID, "version": opts.Version}},
	})
}
