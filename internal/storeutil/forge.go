package storeutil

import (
	"time"

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
		{"app.version", in.AppVersion},
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

// ForgeUninstalledConflict is the error of a lifecycle event for an
// installation that is already uninstalled: Forge gives a reinstalled app
// a new installationId, so the old one never comes back.
func ForgeUninstalledConflict(installationID string) error {
	return tenon.Errorf(tenon.ECONFLICT, "The Forge installation %q is uninstalled.", installationID)
}

// ForgeLifecycle is the lifecycle part of a Forge installation a store
// writes for an installed or upgraded event.
type ForgeLifecycle struct {
	AppVersion  string
	InstalledAt time.Time
	UpgradedAt  time.Time
}

// ForgeLifecycleChange decides what an installed (upgrade false) or
// upgraded event with app version version, received at at, changes on the
// stored installation: the first event sets InstalledAt; an upgrade to a
// version not yet recorded sets UpgradedAt; a repeated delivery changes
// nothing. One rule for both stores.
func ForgeLifecycleChange(stored *tenon.ForgeInstallation, version string, upgrade bool, at time.Time) (bool, ForgeLifecycle) {
	next := ForgeLifecycle{AppVersion: stored.AppVersion, InstalledAt: stored.InstalledAt, UpgradedAt: stored.UpgradedAt}
	changed := false
	if next.InstalledAt.IsZero() {
		next.InstalledAt, changed = at.UTC(), true
	}
	if version != "" && version != next.AppVersion {
		if upgrade && !changed {
			next.UpgradedAt = at.UTC()
		}
		next.AppVersion, changed = version, true
	}
	if stored.State != tenon.ForgeActive && stored.State != "" {
		changed = true
	}
	return changed, next
}
