// Package tenon holds the vocabulary shared by every part of tenon: the
// installation (tenant) record, the Principal a verified request carries,
// the storage interfaces, and the error codes that map to HTTP statuses.
//
// It imports only the standard library. Implementations live in their own
// packages (sqlite, postgres, server, connectjwt, ...) and depend on this
// one, never the other way round.
package tenon
