package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/tenon-dev/tenon"
)

// Intake shared by every delivery that is stored before it is
// acknowledged — Connect webhooks, Forge events and triggers: one way to
// read the body, encode the job and refuse what cannot be stored.

// readDelivery reads a delivery's body (already bounded by the route's
// limit): nil when it is empty or only white space, ETOOLARGE past the
// limit, EINVALID when it cannot be read.
func readDelivery(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if err := normalize(err); tenon.ErrorCode(err) == tenon.ETOOLARGE {
			return nil, err
		}
		return nil, tenon.WrapError(tenon.EINVALID, "The request body could not be read.", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	return body, nil
}

// enqueueDelivery stores rec, a delivery's job record, in queue for the
// tenant clientKey, deduplicated by dedupe ("" for none). A store that
// cannot take it gives EUNAVAILABLE, so the sender delivers it again;
// EINVALID and ETOOLARGE pass through. what names the delivery in errors.
func (s *Server) enqueueDelivery(ctx context.Context, what, queue, clientKey, dedupe string, rec any) (id int64, created bool, err error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rec); err != nil {
		return 0, false, fmt.Errorf("server: encode %s job: %w", what, err)
	}
	nj := tenon.NewJob{ClientKey: clientKey, DedupeKey: dedupe, Payload: bytes.TrimSuffix(buf.Bytes(), []byte("\n"))}
	id, created, err = s.work.runner.Enqueue(ctx, queue, nj)
	if err != nil {
		if code := tenon.ErrorCode(err); code == tenon.EINVALID || code == tenon.ETOOLARGE {
			return 0, false, err
		}
		// Not stored: the sender must deliver it again.
		return 0, false, tenon.WrapError(tenon.EUNAVAILABLE, "The event could not be stored; send it again later.", err)
	}
	return id, created, nil
}
