package storeutil

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/tenon-dev/tenon"
)

// Messages of the EUNAVAILABLE errors the stores return. Callers see them
// (with 503 and Retry-After), so they say what is going on in words a
// person understands and promise nothing about internals.
const (
	MsgUnreachable = "The app's database cannot be reached right now; try again in a moment."
	MsgTimeout     = "The app's database did not answer in time; try again in a moment."
	MsgBusy        = "The app's database is busy; try again in a moment."
	MsgReadOnly    = "The app's database accepts no changes right now (it may be switching to a standby); try again in a moment."
	MsgFull        = "The app's database has run out of disk space; try again later."
	MsgIO          = "The app's database could not read or write its storage; try again later."
	MsgClosed      = "The app is shutting down; try again in a moment."
)

// Unavailable returns err as EUNAVAILABLE with msg. err stays the cause
// for logs; the caller sees only msg.
func Unavailable(msg string, err error) error {
	return tenon.WrapError(tenon.EUNAVAILABLE, msg, err)
}

// ConnectionLost returns the message for err when it says that the way to
// the database failed below the level of SQL — refused, reset, closed,
// end of stream, a network timeout, the caller's deadline — and "" for
// anything else. A store that talks to its database over a network calls
// it after its own, driver-specific checks.
func ConnectionLost(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, context.DeadlineExceeded):
		return MsgTimeout
	case errors.As(err, &ne) && ne.Timeout():
		return MsgTimeout
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.As(err, &ne):
		return MsgUnreachable
	}
	return ""
}
