package cli

// PureForgeApp exposes pureForgeApp to the external tests.
var PureForgeApp = pureForgeApp

// The tenants export and import commands are reached through the tenants
// command's dispatcher, which lives elsewhere; tests call them directly.
var (
	RunTenantsExport = runTenantsExport
	RunTenantsImport = runTenantsImport
)
