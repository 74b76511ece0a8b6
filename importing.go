package tenon

import (
	"context"
	"time"
)

// InstallationImporter is an optional Store capability, used by `tenon
// import`: it writes a tenant record taken from another framework's store
// as it stood there — its state and times — instead of as a new install.
// sqlite.Store and postgres.Store implement it.
type InstallationImporter interface {
	// ImportInstallation writes in as stored, in one atomic step, when the
	// stored record is still the one the caller read: expect is the
	// UpdatedAt of that record, or the zero time when the caller found no
	// record. Any other stored record (a lifecycle callback or another
	// import got there first) gives an ECONFLICT error and changes
	// nothing, so an import never overwrites what it did not see.
	//
	// in.State must be valid; zero InstalledAt or UpdatedAt are the
	// store's clock; UninstalledAt is kept only for StateUninstalled (and
	// defaults to UpdatedAt there). in is updated with the stored times.
	ImportInstallation(ctx context.Context, in *Installation, expect time.Time) error
}
