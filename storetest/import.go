package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
)

// testImport checks tenon.InstallationImporter, for stores that have it:
// records keep the state and times they had in the store they came from,
// and a record that changed since the importer read it is never replaced.
func (s *suite) testImport(t *testing.T) {
	st, c := s.store(t)
	imp, ok := st.(tenon.InstallationImporter)
	if !ok {
		t.Skip("the store does not implement tenon.InstallationImporter")
	}
	ctx := context.Background()
	installed := Start.Add(-72 * time.Hour)
	updated := Start.Add(-time.Hour)

	// A new record keeps its state and times.
	in := NewInstallation("import-1")
	in.State, in.InstalledAt, in.UpdatedAt = tenon.StateDisabled, installed, updated
	if err := imp.ImportInstallation(ctx, in, time.Time{}); err != nil {
		t.Fatalf("ImportInstallation: %v", err)
	}
	want := NewInstallation("import-1")
	want.State, want.InstalledAt, want.UpdatedAt = tenon.StateDisabled, installed, updated
	checkInstallation(t, "imported", mustGet(t, st, "import-1"), want)

	// Uninstalled records get an UninstalledAt; zero times are the clock's.
	un := NewInstallation("import-2")
	un.State = tenon.StateUninstalled
	if err := imp.ImportInstallation(ctx, un, time.Time{}); err != nil {
		t.Fatalf("ImportInstallation(uninstalled): %v", err)
	}
	wantUn := NewInstallation("import-2")
	wantUn.State, wantUn.InstalledAt, wantUn.UpdatedAt, wantUn.UninstalledAt = tenon.StateUninstalled, Start, Start, Start
	checkInstallation(t, "imported uninstalled", mustGet(t, st, "import-2"), wantUn)

	// Expecting no record where one exists is a conflict.
	again := NewInstallation("import-1")
	again.SharedSecret = "another-secret-0123456789abcdef0123456789abcdef"
	again.State = tenon.StateEnabled
	wantCode(t, "import over an unseen record", imp.ImportInstallation(ctx, again, time.Time{}), tenon.ECONFLICT)
	checkInstallation(t, "after refused import", mustGet(t, st, "import-1"), want)

	// A lifecycle callback after the read makes the import a conflict.
	c.Advance(time.Minute)
	mustSave(t, st, NewInstallation("import-1"))
	afterSave := mustGet(t, st, "import-1")
	again.UpdatedAt = Start
	wantCode(t, "import over a newer record", imp.ImportInstallation(ctx, again, updated), tenon.ECONFLICT)
	checkInstallation(t, "after refused import", mustGet(t, st, "import-1"), afterSave)

	// Expecting the stored record replaces it.
	again.UpdatedAt = Start.Add(2 * time.Minute)
	if err := imp.ImportInstallation(ctx, again, afterSave.UpdatedAt); err != nil {
		t.Fatalf("ImportInstallation(replace): %v", err)
	}
	got := mustGet(t, st, "import-1")
	if got.SharedSecret != again.SharedSecret || got.State != tenon.StateEnabled || !got.UpdatedAt.Equal(again.UpdatedAt) {
		t.Errorf("replace: state %s updated %v, want enabled at %v with the new secret", got.State, got.UpdatedAt, again.UpdatedAt)
	}

	// Bad records are refused before anything is written.
	bad := NewInstallation("import-3")
	bad.State = "paused"
	wantCode(t, "import with a bad state", imp.ImportInstallation(ctx, bad, time.Time{}), tenon.EINVALID)
	noSecret := NewInstallation("import-3")
	noSecret.State, noSecret.SharedSecret = tenon.StateEnabled, ""
	wantCode(t, "import without a secret", imp.ImportInstallation(ctx, noSecret, time.Time{}), tenon.EINVALID)
	if _, err := st.Installation(ctx, "import-3"); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("refused import-3 was stored: %v", err)
	}
}
