package checklist

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/server"
)

// apiPrincipal returns the caller of an API route and the issue key of the
// path, after the checks every API route shares: a valid key, a license
// the token does not deny, and the issue rule (see the package comment).
func apiPrincipal(r *http.Request) (*tenon.Principal, string, error) {
	p := tenon.PrincipalFrom(r.Context())
	if p == nil {
		return nil, "", errors.New("checklist: API route without a principal")
	}
	key := r.PathValue("issueKey")
	if err := checkIssueKey(key); err != nil {
		return nil, "", err
	}
	// The context token says license.active when the product knows it;
	// older tokens and development products say nothing, which is
	// accepted. The panel itself requires lic=active.
	if p.License == tenon.LicenseNone {
		return nil, "", tenon.Errorf(tenon.EFORBIDDEN, "The app has no active license on this site.")
	}
	tokenIssue, err := contextIssueKey(p.Context)
	if err != nil {
		return nil, "", err
	}
	if tokenIssue != "" && !strings.EqualFold(tokenIssue, key) {
		return nil, "", tenon.Errorf(tenon.EFORBIDDEN, "The token was issued for another issue; this checklist cannot be used with it.")
	}
	return p, key, nil
}

// contextIssueKey returns the issue key in a token's context claim, or ""
// when the claim names no issue key. Connect puts it under jira.issue, a
// Forge module's context (in its invocation token) under extension.issue.
func contextIssueKey(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || !bytes.Contains(raw, []byte(`"issue"`)) {
		return "", nil
	}
	type issue struct {
		Issue struct {
			Key string `json:"key"`
		} `json:"issue"`
	}
	var c struct {
		Jira      issue `json:"jira"`
		Extension issue `json:"extension"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		// The claim is signed by the product, so this is not expected;
		// refusing is the safe reading of a context we cannot check.
		return "", tenon.WrapError(tenon.EFORBIDDEN, "The token's context cannot be read.", err)
	}
	if c.Jira.Issue.Key != "" {
		return c.Jira.Issue.Key, nil
	}
	return c.Extension.Issue.Key, nil
}

func (a *App) getChecklist(w http.ResponseWriter, r *http.Request) error {
	p, key, err := apiPrincipal(r)
	if err != nil {
		return err
	}
	doc, err := load(r.Context(), p.Data(), key)
	if err != nil {
		return fmt.Errorf("checklist: load %s: %w", key, err)
	}
	return writeJSON(w, http.StatusOK, &doc.Checklist)
}

func (a *App) addItem(w http.ResponseWriter, r *http.Request) error {
	p, key, err := apiPrincipal(r)
	if err != nil {
		return err
	}
	var in struct {
		Text *string `json:"text"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	if in.Text == nil {
		return tenon.Errorf(tenon.EINVALID, `The body must be {"text": "..."}.`)
	}
	text, err := NormalizeItemText(*in.Text)
	if err != nil {
		return err
	}
	doc, err := a.update(r.Context(), p, key, func(doc *stored) (bool, error) {
		_, err := doc.add(text, p.AccountID, a.now())
		return err == nil, err
	})
	if err != nil {
		return fmt.Errorf("checklist: add to %s: %w", key, err)
	}
	return writeJSON(w, http.StatusCreated, &doc.Checklist)
}

func (a *App) patchItem(w http.ResponseWriter, r *http.Request) error {
	p, key, err := apiPrincipal(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if !validItemID(id) {
		return tenon.Errorf(tenon.EINVALID, "The item id is not valid.")
	}
	var in struct {
		Done *bool   `json:"done"`
		Text *string `json:"text"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	if in.Done == nil && in.Text == nil {
		return tenon.Errorf(tenon.EINVALID, `The body must change something: {"done": true|false} and/or {"text": "..."}.`)
	}
	var text string
	if in.Text != nil {
		if text, err = NormalizeItemText(*in.Text); err != nil {
			return err
		}
	}
	doc, err := a.update(r.Context(), p, key, func(doc *stored) (bool, error) {
		i := doc.find(id)
		if i < 0 {
			return false, tenon.Errorf(tenon.ENOTFOUND, "The checklist has no such item; it may have been deleted.")
		}
		it := &doc.Items[i]
		before := *it
		if in.Done != nil {
			it.Done = *in.Done
		}
		if in.Text != nil {
			it.Text = text
		}
		return *it != before, nil
	})
	if err != nil {
		return fmt.Errorf("checklist: change item of %s: %w", key, err)
	}
	return writeJSON(w, http.StatusOK, &doc.Checklist)
}

// deleteItem removes an item. Deleting an item that is already gone
// succeeds: a double click, or two users removing the same item, should
// not show an error.
func (a *App) deleteItem(w http.ResponseWriter, r *http.Request) error {
	p, key, err := apiPrincipal(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if !validItemID(id) {
		return tenon.Errorf(tenon.EINVALID, "The item id is not valid.")
	}
	doc, err := a.update(r.Context(), p, key, func(doc *stored) (bool, error) {
		i := doc.find(id)
		if i < 0 {
			return false, nil
		}
		doc.Items = append(doc.Items[:i], doc.Items[i+1:]...)
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("checklist: delete item of %s: %w", key, err)
	}
	return writeJSON(w, http.StatusOK, &doc.Checklist)
}

// issueDeleted removes the checklist of a deleted issue. It runs from the
// job queue, after Jira got its 204 and the event was stored, so a crash
// in between loses nothing. An event can run more than once (Jira
// redelivers without an identifier at times, a crash can cut a run
// short); deleting what is gone succeeds, so that is harmless.
func (a *App) issueDeleted(ctx context.Context, p *tenon.Principal, ev *server.Event) error {
	// The query is covered by the token's qsh; the body is not signed, so
	// it is read only when the query has no usable key (a product that did
	// not fill in the URL variable).
	key := ev.Query.Get("issueKey")
	if !ValidIssueKey(key) {
		var body struct {
			Issue struct {
				Key string `json:"key"`
			} `json:"issue"`
		}
		if err := json.Unmarshal(ev.Body, &body); err != nil {
			// EINVALID: no retry can fix it; the event becomes a dead letter.
			return tenon.WrapError(tenon.EINVALID, "The webhook names no issue: neither the issueKey parameter nor issue.key in the body.", err)
		}
		key = body.Issue.Key
	}
	if err := checkIssueKey(key); err != nil {
		return err
	}
	unlock := a.locks.lock(p.ClientKey() + "\x00" + key)
	defer unlock()
	if err := p.Data().Delete(ctx, dataKey(key)); err != nil {
		return fmt.Errorf("checklist: delete checklist of %s: %w", key, err)
	}
	return nil
}

// decodeJSON reads one JSON object from a request body (already capped by
// the route's body limit). Unknown fields are refused, so a typo such as
// {"don": true} is an error instead of a silent no-op.
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return tenon.WrapError(tenon.ETOOLARGE, fmt.Sprintf("The request body is larger than %d bytes.", tooLarge.Limit), err)
		}
		return tenon.WrapError(tenon.EINVALID, "The request body is not the expected JSON object.", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return tenon.Errorf(tenon.EINVALID, "The request body has data after its JSON object.")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("checklist: encode response: %w", err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, err = w.Write(append(b, '\n'))
	return err
}
