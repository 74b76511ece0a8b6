package hostclient

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Sentinels a handler can test with errors.Is, whatever layer the failure
// came from (a response of the product, the client's own breaker, the
// token endpoint).
var (
	// ErrRateLimited: the product answered 429, or the client knows the
	// site is rate limiting the app and did not send the call. The chain
	// holds a *RateLimitedError saying until when.
	ErrRateLimited = errors.New("hostclient: the product is rate limiting the app")
	// ErrUnavailable: the site did not answer usefully (5xx, unreachable,
	// too slow) or its breaker is open. The chain holds an
	// *UnavailableError.
	ErrUnavailable = errors.New("hostclient: the product site is unavailable")
	// ErrBreakerOpen: the call was not sent because the site's circuit
	// breaker is open. It implies ErrUnavailable.
	ErrBreakerOpen = errors.New("hostclient: the circuit breaker of the product site is open")
	// ErrUnauthorized: the product answered 401, or the authorization
	// server refused to let the app act as the user (*TokenError).
	ErrUnauthorized = errors.New("hostclient: the product did not accept the app's credentials")
)

// Reasons of an *UnavailableError; the first four are also the Outcome of
// the tenon.OutboundCall reported for the attempt.
const (
	ReasonBreakerOpen = "breaker_open" // not sent: the breaker is open
	ReasonTimeout     = "timeout"      // the call's deadline ran out
	ReasonUnreachable = "unreachable"  // connection refused, reset, DNS, TLS...
	ReasonStatus      = "status"       // the product answered 5xx
	ReasonBusy        = "busy"         // not sent: the site's concurrency limit stayed full until the deadline
)

// RateLimitedError says the product is rate limiting the app on a site.
// Until is when calls may resume (from Retry-After or X-RateLimit-Reset),
// zero when the product did not say. Err is the *APIError of the 429 when
// one came back; it is nil when the client refused to send the call
// because the site had asked to be left alone until Until.
type RateLimitedError struct {
	Site   string
	Until  time.Time
	Reason string // the product's RateLimit-Reason header, naming the limit
	Err    error
}

// Error implements error.
func (e *RateLimitedError) Error() string {
	s := "hostclient: " + e.Site + ": rate limited by the product"
	if !e.Until.IsZero() {
		s += " until " + e.Until.UTC().Format(time.RFC3339)
	}
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	if e.Err == nil {
		s += "; not sent"
	} else {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitedError) Is(target error) bool { return target == ErrRateLimited }

// Unwrap returns the product's answer, if any.
func (e *RateLimitedError) Unwrap() error { return e.Err }

// UnavailableError says a site could not serve the call. Reason is one of
// the Reason constants. Until is when the client will try the site again
// (breaker open) or when the product asked to be called again
// (Retry-After on a 503); zero when unknown. Err is the cause: an
// *APIError, a transport error, or a context error.
type UnavailableError struct {
	Site   string
	Reason string
	Until  time.Time
	Err    error
}

// Error implements error.
func (e *UnavailableError) Error() string {
	s := "hostclient: " + e.Site + ": unavailable (" + e.Reason + ")"
	if !e.Until.IsZero() {
		s += " until " + e.Until.UTC().Format(time.RFC3339)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrUnavailable) true, and ErrBreakerOpen for
// calls the breaker refused.
func (e *UnavailableError) Is(target error) bool {
	return target == ErrUnavailable || (target == ErrBreakerOpen && e.Reason == ReasonBreakerOpen)
}

// Unwrap returns the cause.
func (e *UnavailableError) Unwrap() error { return e.Err }

// TokenError is a refusal of the OAuth 2.0 authorization server to give
// the app a token for a user (RFC 6749 §5.2).
type TokenError struct {
	Status      int
	Code        string // e.g. invalid_grant, unauthorized_client
	Description string // the server's words, for logs
}

// Error implements error.
func (e *TokenError) Error() string {
	s := fmt.Sprintf("hostclient: the authorization server refused a user token: %d %s", e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		s += ": " + e.Code
	}
	if e.Description != "" {
		s += ": " + e.Description
	}
	return s
}

// Is makes errors.Is(err, ErrUnauthorized) true for a refusal (4xx).
func (e *TokenError) Is(target error) bool {
	return target == ErrUnauthorized && e.Status >= 400 && e.Status < 500
}

// refusedError is a request the client will not send: it would leave the
// tenant's origin, or is malformed. It is the caller's mistake, never the
// site's, so it neither trips a breaker nor reads as unavailability. The
// refusals of what a request names (see refusal) carry one as the cause
// of their EINVALID *tenon.Error.
type refusedError struct{ msg string }

func (e *refusedError) Error() string { return e.msg }

func refused(format string, args ...any) error {
	return &refusedError{msg: fmt.Sprintf("hostclient: "+format, args...)}
}
