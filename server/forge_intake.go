package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/jobs"
)

// Intake of Forge events and triggers: stored in the job queue before
// they are acknowledged, handed to the app's handler by the job runner.

// forgeJobRecord is the stored form of a Forge event or trigger. It holds
// no token: background work reads the cached ones.
type forgeJobRecord struct {
	Kind           string          `json:"kind"`
	InstallationID string          `json:"installationId"`
	AccountID      string          `json:"accountId,omitempty"`
	Type           string          `json:"type,omitempty"`
	ID             string          `json:"id"`
	Retry          int             `json:"retry,omitempty"`
	ModuleKey      string          `json:"moduleKey,omitempty"`
	License        string          `json:"license,omitempty"`
	ReceivedAt     time.Time       `json:"receivedAt"`
	Body           json.RawMessage `json:"body,omitempty"`
}

// acceptForge stores a verified event or trigger and acknowledges it.
func (s *Server) acceptForge(kind forgeRouteKind, queue string) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p := tenon.PrincipalFrom(r.Context())
		if p == nil || p.Forge == nil {
			return errors.New("server: Forge delivery without a principal")
		}
		body, err := readDelivery(r)
		if err != nil {
			return err
		}
		var fields struct {
			EventType    string `json:"eventType"`
			RetryContext *struct {
				RetryCount int `json:"retryCount"`
			} `json:"retryContext"`
			Payload *struct {
				EventType    string `json:"eventType"`
				RetryContext *struct {
					RetryCount int `json:"retryCount"`
				} `json:"retryContext"`
			} `json:"payload"`
		}
		if body != nil && json.Unmarshal(body, &fields) != nil {
			return errInvalid("The body must be a JSON object.")
		}
		rec := forgeJobRecord{
			Kind: "event", InstallationID: p.Forge.InstallationID, AccountID: p.AccountID,
			Type: fields.EventType, ModuleKey: p.Forge.ModuleKey, License: p.License,
			ReceivedAt: s.cfg.Now().UTC(), Body: body,
		}
		if fields.Payload != nil {
			if rec.Type == "" {
				rec.Type = fields.Payload.EventType
			}
			if fields.RetryContext == nil {
				fields.RetryContext = fields.Payload.RetryContext
			}
		}
		if fields.RetryContext != nil {
			rec.Retry = fields.RetryContext.RetryCount
		}
		if kind == forgeTriggerRoute {
			rec.Kind, rec.Type = "trigger", ""
			rec.ID = "jti:" + p.Forge.TokenID
		} else {
			rec.ID, err = forgeEventID(p.Forge.InstallationID, body)
			if err != nil {
				return err
			}
		}
		jobID, created, err := s.enqueueDelivery(r.Context(), "Forge", queue, p.ClientKey(), rec.ID, &rec)
		if err != nil {
			return err
		}
		s.log.DebugContext(r.Context(), "Forge "+rec.Kind+" queued", "type", rec.Type, "client_key", p.ClientKey(),
			"job", jobID, "duplicate", !created, "retry", rec.Retry)
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusAccepted)
		if created {
			_, _ = io.WriteString(w, `{"status":"queued"}`+"\n")
		} else {
			_, _ = io.WriteString(w, `{"status":"duplicate"}`+"\n")
		}
		return nil
	}
}

// forgeEventID identifies an event across Forge's redeliveries: the hash
// of the installation and the body without retryContext (at the top level
// or inside "payload"), the only part that changes between deliveries.
// Keys are sorted by the re-encoding, so the hash does not depend on the
// order Forge wrote them in.
func forgeEventID(installationID string, body []byte) (string, error) {
	h := sha256.New()
	h.Write([]byte(installationID))
	h.Write([]byte{0})
	if len(body) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var v map[string]any
		if err := dec.Decode(&v); err != nil {
			return "", errInvalid("The body must be a JSON object.")
		}
		delete(v, "retryContext")
		if p, ok := v["payload"].(map[string]any); ok {
			delete(p, "retryContext")
		}
		canon, err := json.Marshal(v)
		if err != nil {
			return "", fmt.Errorf("server: canonical Forge event: %w", err)
		}
		h.Write(canon)
	}
	return "event:" + hex.EncodeToString(h.Sum(nil)), nil
}

// forgeJob turns a stored Forge delivery back into a ForgeEvent for h.
func (s *Server) forgeJob(h ForgeEventHandler) jobs.Handler {
	return func(ctx context.Context, j tenon.Job) error {
		var rec forgeJobRecord
		if err := json.Unmarshal(j.Payload, &rec); err != nil {
			return jobs.Permanent(fmt.Errorf("server: Forge job %d: unreadable payload: %w", j.ID, err))
		}
		p, err := s.ForgePrincipal(ctx, rec.InstallationID, rec.AccountID)
		if err != nil {
			if tenon.ErrorCode(err) == tenon.ENOTFOUND {
				return jobs.Permanent(err)
			}
			return err
		}
		p.License = rec.License
		p.Forge.ModuleKey = rec.ModuleKey
		if err := s.forgeLicense(ctx, p); err != nil {
			return err // the License API is down: retry later
		}
		ev := &ForgeEvent{
			Kind: rec.Kind, Type: rec.Type, ID: rec.ID, Retry: rec.Retry, ModuleKey: rec.ModuleKey,
			Body: rec.Body, ReceivedAt: rec.ReceivedAt, JobID: j.ID, Attempt: j.Attempts,
		}
		err = h(tenon.WithPrincipal(ctx, p), p, ev)
		if err != nil && tenon.ErrorCode(err) == tenon.EINVALID && !jobs.IsPermanent(err) {
			err = jobs.Permanent(err)
		}
		return err
	}
}
