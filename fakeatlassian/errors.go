package fakeatlassian

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Errors returned by the Go API; the control API maps them to statuses.
var (
	// ErrNotFound: no such site, app, module, issue or user.
	ErrNotFound = errors.New("fakeatlassian: not found")
	// ErrInvalid: the input is malformed.
	ErrInvalid = errors.New("fakeatlassian: invalid input")
	// ErrConflict: the current state forbids the change (e.g. enabling an
	// uninstalled app, or a site name already taken).
	ErrConflict = errors.New("fakeatlassian: conflict")
)

// DescriptorError lists every problem found in an app descriptor, so a
// developer can fix them all in one go.
type DescriptorError struct {
	URL      string
	Problems []string
}

func (e *DescriptorError) Error() string {
	return fmt.Sprintf("fakeatlassian: descriptor %s is invalid: %s", e.URL, strings.Join(e.Problems, "; "))
}

// LifecycleError is a lifecycle callback the app did not accept: the
// product reports it as a failed install (or enable, ...).
type LifecycleError struct {
	Event  string // installed, enabled, disabled, uninstalled
	URL    string
	Status int    // 0 when no answer came
	Body   string // the start of the answer, for diagnosis
	Err    error  // transport error, when Status is 0
}

func (e *LifecycleError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("fakeatlassian: %s callback to %s failed: %v", e.Event, e.URL, e.Err)
	}
	return fmt.Sprintf("fakeatlassian: %s callback to %s answered %d: %s", e.Event, e.URL, e.Status, e.Body)
}

func (e *LifecycleError) Unwrap() error { return e.Err }

// Body size limits. Every handler reads through http.MaxBytesReader.
const (
	maxBodyBytes       = 1 << 20 // JSON bodies of the control and REST APIs
	maxDescriptorBytes = 1 << 20
	excerptBytes       = 512 // of an app's error answer, kept for the caller
)

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if v == nil || status == http.StatusNoContent {
		return
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// controlError is the error body of the control and host APIs.
type controlError struct {
	Error   string   `json:"error"`
	Details []string `json:"details,omitempty"`
}

func writeControlError(w http.ResponseWriter, status int, msg string, details ...string) {
	writeJSON(w, status, controlError{Error: msg, Details: details})
}

// readJSON decodes a JSON body of at most maxBodyBytes into v. It answers
// the client itself and reports false when the body is unusable.
func readJSON(w http.ResponseWriter, r *http.Request, v any, fail func(status int, msg string)) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		fail(http.StatusUnsupportedMediaType, "Content-Type must be application/json.")
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("The body is larger than %d bytes.", maxBodyBytes))
			return false
		}
		fail(http.StatusBadRequest, "The body could not be read.")
		return false
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		fail(http.StatusBadRequest, "The body is empty; a JSON object is expected.")
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		fail(http.StatusBadRequest, "The body is not valid JSON for this request: "+err.Error())
		return false
	}
	return true
}

// excerpt returns the first bytes of an answer, for error messages.
func excerpt(b []byte) string {
	s := string(b)
	if len(s) > excerptBytes {
		s = strings.ToValidUTF8(s[:excerptBytes], "") + "…"
	}
	return strings.TrimSpace(s)
}
