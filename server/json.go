package server

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// WriteJSON answers with v as JSON and the given status. An error is
// returned only when v cannot be encoded (a bug: nothing has been written
// then) or the client went away.
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("server: encode the JSON answer: %w", err)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, err = w.Write(append(raw, '\n'))
	return err
}
