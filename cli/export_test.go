package cli

// The tenants export and import commands are reached through the tenants
// command's dispatcher, which lives elsewhere; tests call them directly.
var (
	RunTenantsExport = runTenantsExport
	RunTenantsImport = runTenantsImport
)
