package postgres

// UnavailableMessage exposes the store's classification of failures to
// the external tests.
var UnavailableMessage = unavailable
