package cli

// PureForgeApp exposes pureForgeApp to the external tests.
var PureForgeApp = pureForgeApp
