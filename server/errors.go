package server

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"strings"

	"github.com/tenon-dev/tenon"
)

// statusOf maps a tenon error code to its HTTP status. It is the one table
// every response of the server goes through.
func statusOf(code string) int {
	switch code {
	case tenon.EINVALID:
		return http.StatusBadRequest
	case tenon.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case tenon.EFORBIDDEN:
		return http.StatusForbidden
	case tenon.ENOTFOUND:
		return http.StatusNotFound
	case tenon.ECONFLICT:
		return http.StatusConflict
	case tenon.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case tenon.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// normalize turns errors of the standard library that have an obvious
// meaning for the caller into tenon errors: a body over its limit is the
// caller's problem (413), not an internal error.
func normalize(err error) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		var te *tenon.Error
		if !errors.As(err, &te) || te.Code == tenon.EINTERNAL {
			return tenon.WrapError(tenon.ETOOLARGE,
				"The request body is larger than "+strconv.FormatInt(tooLarge.Limit, 10)+" bytes.", err)
		}
	}
	return err
}

// WriteError writes err as a short response: JSON
// {"error":{"code":...,"message":...}} or a small HTML page, whichever the
// request's Accept header prefers (JSON when it states no preference).
// The status comes from the tenon error code. Only the tenon.Error message
// is shown; any other error, and every wrapped cause, stays hidden behind
// "Internal error.", so log err before calling this.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	err = normalize(err)
	code := tenon.ErrorCode(err)
	if code == "" {
		code = tenon.EINTERNAL
	}
	writeProblem(w, statusOf(code), code, tenon.ErrorMessage(err), wantsHTML(r))
}

// wantsHTML reports whether the client prefers an HTML page: browsers
// loading an iframe list text/html; API clients list JSON or nothing.
func wantsHTML(r *http.Request) bool {
	if r == nil {
		return false
	}
	accept := r.Header.Get("Accept")
	h := strings.Index(accept, "text/html")
	if h < 0 {
		return false
	}
	j := strings.Index(accept, "json")
	return j < 0 || h < j
}

// unavailableRetryAfter is the Retry-After, in seconds, of a 503 whose
// cause sets none: long enough for a database restart or failover to
// finish, short enough that a person retrying by hand is not kept waiting.
const unavailableRetryAfter = "5"

// writeProblem writes one error response. Caches and content sniffing are
// turned off: error pages must never be served for another request or
// reinterpreted as something active. Every 503 says when to retry.
func writeProblem(w http.ResponseWriter, status int, code, message string, html bool) {
	h := w.Header()
	// A handler may have set headers for the response it meant to send.
	h.Del("Content-Length")
	h.Del("Content-Encoding")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	switch status {
	case http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `JWT realm="atlassian-connect"`)
	case http.StatusServiceUnavailable:
		if h.Get("Retry-After") == "" {
			h.Set("Retry-After", unavailableRetryAfter)
		}
	}
	if html {
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		w.WriteHeader(status)
		_ = errorPage.Execute(w, pageData{Title: http.StatusText(status), Message: message})
		return
	}
	h.Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	b := make([]byte, 0, 64+len(code)+len(message))
	b = append(b, `{"error":{"code":`...)
	b = strconv.AppendQuote(b, code)
	b = append(b, `,"message":`...)
	b = strconv.AppendQuote(b, message)
	b = append(b, "}}\n"...)
	_, _ = w.Write(b)
}

type pageData struct {
	Title   string
	Message string
}

// errorPage is deliberately plain: no scripts, no external resources.
var errorPage = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,sans-serif;color:#172b4d;margin:2em}h1{font-size:1.25em}</style>
</head><body><h1>{{.Title}}</h1><p>{{.Message}}</p></body></html>
`))

// licensePage is shown inside the product's iframe when a route needs a
// license. It loads all.js (Config.AllJSURL, Atlassian's CDN in
// production) so the product
// completes its iframe handshake and shows the page instead of a
// "the app did not load" timeout.
var licensePage = template.Must(template.New("license").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>License required</title>
<script src="{{.AllJS}}" async></script>
<style>body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,sans-serif;color:#172b4d;margin:2em}h1{font-size:1.25em}</style>
</head><body><h1>This app needs a license</h1><p>{{.Message}}</p></body></html>
`))

const licenseMessage = "This page is available with an active license of the app. Ask a site administrator to subscribe to the app, or to renew its license, in the site's app management."

// writeLicenseRequired answers an unlicensed request: an HTML page for
// iframe routes, JSON for everything else.
func (s *Server) writeLicenseRequired(w http.ResponseWriter, html bool) {
	if !html {
		writeProblem(w, http.StatusForbidden, tenon.EFORBIDDEN, licenseMessage, false)
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src "+s.allJSOrigin+"; style-src 'unsafe-inline'; connect-src 'none'")
	w.WriteHeader(http.StatusForbidden)
	_ = licensePage.Execute(w, struct{ Message, AllJS string }{licenseMessage, s.cfg.AllJSURL})
}

// Constructors for the errors the server itself raises. The messages are
// shown to callers, so they say what is wrong and never echo input.
func errInvalid(msg string) error      { return &tenon.Error{Code: tenon.EINVALID, Message: msg} }
func errUnauthorized(msg string) error { return &tenon.Error{Code: tenon.EUNAUTHORIZED, Message: msg} }
func errForbidden(msg string) error    { return &tenon.Error{Code: tenon.EFORBIDDEN, Message: msg} }

// isClientGone reports whether err only says the client went away, which
// is worth neither an error log nor a response.
func isClientGone(r *http.Request, err error) bool {
	return r.Context().Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded))
}
