package checklist

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/hostclient"
	"github.com/tenon-dev/tenon/server"
)

// The Forge successor of the app. manifest.yml declares a Jira issue
// panel whose Custom UI front end calls this backend through Forge Remote
// (invokeRemote with the paths below), and a trigger that routes
// avi:jira:deleted:issue to ForgeEventPath. The handlers are the ones of
// the Connect API: the Principal is the same, and a site that runs the
// Connect app and the Forge app sees one checklist per issue, whichever
// way it is read or written.

// Routes of the Forge side, relative to the app's base URL, which is the
// baseUrl of the manifest's remote. The manifest names them.
const (
	ForgeChecklistPath = "/forge/checklists/{issueKey}"
	ForgeEventPath     = "/forge/events/issue-deleted"
	// ForgeLifecyclePath takes avi:forge:installed:app and
	// avi:forge:upgraded:app.
	ForgeLifecyclePath = "/forge/lifecycle"
	// ForgeRefreshPath is the scheduled trigger (hourly) that refreshes
	// the issue summaries of the site's checklists as the app. Its
	// delivery also brings Forge a fresh app system token to the
	// backend, so work queued hours after the last UI invocation still
	// calls Jira with a valid one.
	ForgeRefreshPath = "/forge/triggers/refresh"
	// ForgeSummaryPath is a licensed route: the checklist with its issue
	// summary, for sites with an active license.
	ForgeSummaryPath = ForgeChecklistPath + "/summary"
)

// maxRefresh bounds the checklists one trigger refreshes.
const maxRefresh = 100

//go:embed manifest.yml
var manifest []byte

// Manifest returns the app's Forge manifest.yml, for deployment with the
// Forge CLI and for tests that check it names the served routes.
func (*App) Manifest() []byte { return manifest }

// forgeRoutes mounts the Forge routes; the server mounts nothing unless
// it is configured with the Forge app id.
func (a *App) forgeRoutes(s *server.Server) {
	// Forge calls go to api.atlassian.com; plain http only reaches a
	// loopback product (the fake Atlassian), never another host.
	a.forgeHost = hostclient.New(s.AppKey(), hostclient.Options{
		HTTPClient: a.opts.HTTPClient, Now: a.now, UserAgent: "tenon-checklist",
		Policy: hostclient.Policy{Observer: s.Observer()},
		Forge:  hostclient.ForgeOptions{AllowHTTP: true},
	})
	body := server.BodyLimit(maxAPIBodyBytes)
	s.ForgeRemote("GET "+ForgeChecklistPath, a.getChecklist, body)
	s.ForgeRemote("POST "+ForgeChecklistPath+"/items", a.addItem, body)
	s.ForgeRemote("PATCH "+ForgeChecklistPath+"/items/{id}", a.patchItem, body)
	s.ForgeRemote("DELETE "+ForgeChecklistPath+"/items/{id}", a.deleteItem, body)
	s.ForgeRemote("GET "+ForgeSummaryPath, a.getSummary, body, server.RequireLicense())
	s.ForgeEvent(ForgeEventPath, a.forgeIssueDeleted, server.BodyLimit(maxWebhookBodyBytes))
	s.ForgeTrigger(ForgeRefreshPath, a.forgeRefresh, server.BodyLimit(maxWebhookBodyBytes))
	s.ForgeLifecycle(ForgeLifecyclePath, server.ForgeLifecycleHooks{
		Installed: func(ctx context.Context, in *tenon.ForgeInstallation) {
			a.log.InfoContext(ctx, "checklist installed through Forge", "installation_id", in.InstallationID, "version", in.AppVersion)
		},
		Upgraded: func(ctx context.Context, in *tenon.ForgeInstallation) {
			a.log.InfoContext(ctx, "checklist upgraded through Forge", "installation_id", in.InstallationID, "version", in.AppVersion)
		},
		Superseded: func(ctx context.Context, clientKey string, by *tenon.ForgeInstallation) {
			a.log.InfoContext(ctx, "the Connect app was replaced by the Forge app", "client_key", clientKey, "installation_id", by.InstallationID)
		},
	})
}

// summaryKey is where the refresh trigger keeps an issue's summary.
func summaryKey(issueKey string) string { return "summary/" + issueKey }

// getSummary answers the stored summary of the issue of a checklist
// (licensed sites only).
func (a *App) getSummary(w http.ResponseWriter, r *http.Request) error {
	p := tenon.PrincipalFrom(r.Context())
	key := r.PathValue("issueKey")
	if err := checkIssueKey(key); err != nil {
		return err
	}
	var summary string
	if err := p.Data().Get(r.Context(), summaryKey(key), &summary); err != nil && tenon.ErrorCode(err) != tenon.ENOTFOUND {
		return err
	}
	return server.WriteJSON(w, http.StatusOK, map[string]string{"issueKey": key, "summary": summary})
}

// forgeRefresh fetches, as the app, the summary of each issue with a
// checklist. It stops for sites without an active license, and calls
// Jira only with a valid system token: without one it fails with
// hostclient.ErrNoForgeToken and is retried after the next trigger brought
// one.
func (a *App) forgeRefresh(ctx context.Context, p *tenon.Principal, ev *server.ForgeEvent) error {
	if p.License == "none" {
		a.log.InfoContext(ctx, "refresh skipped: no active license", "client_key", p.ClientKey())
		return nil
	}
	kvs, err := p.Data().List(ctx, "checklist/", "", maxRefresh)
	if err != nil {
		return fmt.Errorf("checklist: list checklists: %w", err)
	}
	jira := a.forgeHost.ForgeCall(p.Forge, false)
	for _, kv := range kvs {
		key := strings.TrimPrefix(kv.Key, "checklist/")
		var issue struct {
			Fields struct {
				Summary string `json:"summary"`
			} `json:"fields"`
		}
		if err := jira.GetJSON(ctx, "/rest/api/3/issue/"+url.PathEscape(key)+"?fields=summary", &issue); err != nil {
			return fmt.Errorf("checklist: refresh %s: %w", key, err)
		}
		if err := p.Data().Put(ctx, summaryKey(key), issue.Fields.Summary); err != nil {
			return fmt.Errorf("checklist: store summary of %s: %w", key, err)
		}
	}
	return nil
}

// forgeIssueDeleted removes the checklist of a deleted issue, like the
// Connect webhook. It runs from the job queue after Forge got its answer;
// running it twice is harmless.
func (a *App) forgeIssueDeleted(ctx context.Context, p *tenon.Principal, ev *server.ForgeEvent) error {
	type issue struct {
		Issue struct {
			Key string `json:"key"`
		} `json:"issue"`
	}
	var body struct {
		issue
		Payload issue `json:"payload"`
	}
	if err := json.Unmarshal(ev.Body, &body); err != nil {
		return tenon.WrapError(tenon.EINVALID, "The event is not a JSON object.", err)
	}
	key := body.Payload.Issue.Key
	if key == "" {
		key = body.Issue.Key
	}
	if err := checkIssueKey(key); err != nil {
		return err // EINVALID: no retry can fix it
	}
	unlock := a.locks.lock(p.ClientKey() + "\x00" + key)
	defer unlock()
	if err := p.Data().Delete(ctx, dataKey(key)); err != nil {
		return fmt.Errorf("checklist: delete checklist of %s: %w", key, err)
	}
	return nil
}
