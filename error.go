package tenon

import (
	"errors"
	"fmt"
)

// Error codes. They are few on purpose: each maps to one HTTP status in
// the server and tells the caller what kind of failure happened without
// revealing internals.
const (
	EINVALID      = "invalid"      // the input is malformed (400)
	EUNAUTHORIZED = "unauthorized" // the caller could not be authenticated (401)
	EFORBIDDEN    = "forbidden"    // authenticated but not allowed (403)
	ENOTFOUND     = "not_found"    // no such thing (404)
	ECONFLICT     = "conflict"     // the state forbids the change (409)
	ETOOLARGE     = "too_large"    // a body or value exceeds its limit (413)
	EUNAVAILABLE  = "unavailable"  // a dependency is down; retry later (503)
	EINTERNAL     = "internal"     // a bug or an unexpected failure (500)
)

// Error is an error with a code and a message meant for the person on the
// other side. Err, when set, is the underlying cause; it is logged but never
// shown to the caller.
type Error struct {
	Code    string
	Message string
	Err     error
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("tenon: %s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("tenon: %s: %s", e.Code, e.Message)
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// WrapError returns an *Error with the given code and message whose cause is err.
func WrapError(code, message string, err error) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the first *Error in err's chain. Any
// other error yields a generic message, so internal details never reach a
// caller.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}
