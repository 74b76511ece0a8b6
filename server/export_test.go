package server

// Internals exercised by the external tests.
var (
	HostMatches       = hostMatches
	ValidateHostGlob  = validateHostGlob
	AppendRequestLine = appendRequestLine
)
