package fakeatlassian

// Exports for the external tests: the canonical request is unexported on
// purpose (the fake is not a qsh library), but its tests need it.
var (
	CanonicalRequest = canonicalRequest
	QSH              = qshOf
	QSHOfURL         = qshOfURL
)
