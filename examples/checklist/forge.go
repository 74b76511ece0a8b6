package checklist

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"

	"github.com/tenon-dev/tenon"
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
)

//go:embed manifest.yml
var manifest []byte

// Manifest returns the app's Forge manifest.yml, for deployment with the
// Forge CLI and for tests that check it names the served routes.
func (*App) Manifest() []byte { return manifest }

// forgeRoutes mounts the Forge routes; the server mounts nothing unless
// it is configured with the Forge app id.
func (a *App) forgeRoutes(s *server.Server) {
	body := server.BodyLimit(maxAPIBodyBytes)
	s.ForgeRemote("GET "+ForgeChecklistPath, a.getChecklist, body)
	s.ForgeRemote("POST "+ForgeChecklistPath+"/items", a.addItem, body)
	s.ForgeRemote("PATCH "+ForgeChecklistPath+"/items/{id}", a.patchItem, body)
	s.ForgeRemote("DELETE "+ForgeChecklistPath+"/items/{id}", a.deleteItem, body)
	s.ForgeEvent(ForgeEventPath, a.forgeIssueDeleted, server.BodyLimit(maxWebhookBodyBytes))
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
