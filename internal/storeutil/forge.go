package storeutil

import (
	"github.com/tenon-dev/tenon"
)

// maxForgeField bounds every text field of a Forge installation; real
// values are ARIs and URLs far below it.
const maxForgeField = 2048

// ValidateForgeInstallation checks what RecordForgeInstallation is about
// to store.
func ValidateForgeInstallation(in *tenon.ForgeInstallation) error {
	if in == nil {
		return tenon.Errorf(tenon.EINVALID, "The Forge installation is missing.")
	}
	if !ValidClientKey(in.InstallationID) {
		return tenon.Errorf(tenon.EINVALID, "The installationId must be 1 to %d bytes of UTF-8 without NUL.", MaxClientKeyLength)
	}
	fields := []struct{ name, value string }{
		{"appId", in.AppID},
		{"cloudId", in.CloudID},
		{"apiBaseUrl", in.APIBaseURL},
		{"siteUrl", in.SiteURL},
		{"product", in.Product},
		{"environment.type", in.Environment.Type},
		{"environment.id", in.Environment.ID},
	}
	for _, f := range fields {
		if len(f.value) > maxForgeField || !ValidText(f.value) {
			return tenon.Errorf(tenon.EINVALID, "The field %s is too long, not valid UTF-8, or contains a NUL byte.", f.name)
		}
	}
	// The tenant key derived from the installation must be storable.
	if !ValidClientKey(tenon.ForgeTenantKey(in.CloudID, in.InstallationID)) {
		return tenon.Errorf(tenon.EINVALID, "The cloudId or installationId is too long to key tenant data.")
	}
	return nil
}

// ForgeNotFound is the error for an unknown Forge installation.
func ForgeNotFound(installationID string) error {
	return tenon.Errorf(tenon.ENOTFOUND, "No Forge installation %q.", installationID)
}
