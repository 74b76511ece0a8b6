package storeutil

import (
	"time"

	"github.com/tenon-dev/tenon"
)

// PrepareImport checks an imported record and settles its times for
// ImportInstallation: zero InstalledAt and UpdatedAt become now,
// UninstalledAt is kept only while uninstalled (UpdatedAt when unset),
// and every time is UTC at the stores' microsecond precision.
func PrepareImport(in *tenon.Installation, now time.Time) error {
	if err := ValidateInstallation(in); err != nil {
		return err
	}
	if err := ValidateState(in.State); err != nil {
		return err
	}
	// A callback can be refused for these; an imported record cannot ask
	// again, so it must bring them.
	switch {
	case in.SharedSecret == "":
		return tenon.Errorf(tenon.EINVALID, "The imported installation %q has no shared secret.", in.ClientKey)
	case in.BaseURL == "":
		return tenon.Errorf(tenon.EINVALID, "The imported installation %q has no baseUrl.", in.ClientKey)
	case in.AppKey == "":
		return tenon.Errorf(tenon.EINVALID, "The imported installation %q has no app key.", in.ClientKey)
	}
	fix := func(t time.Time) time.Time {
		if t.IsZero() {
			return now
		}
		return t.UTC().Truncate(time.Microsecond)
	}
	in.InstalledAt, in.UpdatedAt = fix(in.InstalledAt), fix(in.UpdatedAt)
	switch {
	case in.State != tenon.StateUninstalled:
		in.UninstalledAt = time.Time{}
	case in.UninstalledAt.IsZero():
		in.UninstalledAt = in.UpdatedAt
	default:
		in.UninstalledAt = in.UninstalledAt.UTC().Truncate(time.Microsecond)
	}
	return nil
}

// ImportConflict is the error of an ImportInstallation whose expected
// record is not the stored one.
func ImportConflict(clientKey string) error {
	return tenon.Errorf(tenon.ECONFLICT, "The installation %q changed since the import read it; it was left as it is.", clientKey)
}
