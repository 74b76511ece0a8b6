// Package storetest is the conformance suite every tenon.Store must pass.
// An implementation's tests call Run with a function that opens a fresh,
// empty store; the suite then checks the documented contract of
// tenon.InstallationStore and tenon.DataStore, including the cases that
// matter for security (uninstalled is sticky, tenants cannot see each other's
// data, secrets are not stored in plain text) and for correctness under
// concurrency (run it with -race).
package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
)

// OpenFunc returns a new, empty store whose clock is now. The suite calls it
// once per subtest, from parallel subtests, and expects the implementation
// to close the store in t.Cleanup.
type OpenFunc func(t *testing.T, now func() time.Time) tenon.Store

// Options adapts the suite to one implementation.
type Options struct {
	// RawInstallation returns everything the store keeps for clientKey's
	// record exactly as it lies in storage (for example every column of the
	// row, concatenated), so the suite can check that neither the shared
	// secret nor the payload is stored in plain text. The suite cannot
	// look below the Store interface on its own, so this is required.
	RawInstallation func(t *testing.T, s tenon.Store, clientKey string) string

	// Outage opens a store whose database the suite takes away
	// underneath it, to check that every method then fails with
	// EUNAVAILABLE, and that the store serves again when the database
	// is back. Nil skips that case.
	Outage OutageFunc
	// Reopen returns another store on the same database as s (two nodes
	// sharing it), sealing with box and timed by now, and closes it in
	// t.Cleanup. The re-sealing cases need it to rotate keys; a store that
	// implements tenon.Resealer must set it.
	Reopen func(t *testing.T, s tenon.Store, box tenon.SecretBox, now func() time.Time) tenon.Store

	// Rows counts the rows naming a text in every table of the schema;
	// the purge case needs it to prove nothing of a purged tenant is
	// left. Nil skips that case.
	Rows RowsFunc

	// Short skips the slowest cases (those writing over a thousand values).
	// Run also skips them under go test -short.
	Short bool
}

// Start is where every suite clock starts: microsecond-aligned, since that
// is the finest precision stores are required to keep.
var Start = time.Date(2026, time.March, 14, 15, 9, 26, 535897000, time.UTC)

// Clock is a manual clock for stores under test. It is safe for concurrent
// use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock stopped at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time. Pass the method value as a store's clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Run runs the suite against stores made by open.
func Run(t *testing.T, open OpenFunc, opts Options) {
	s := &suite{open: open, opts: opts}
	tests := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"Installation/SaveAndGet", s.testSaveAndGet},
		{"Installation/NotFound", s.testInstallationNotFound},
		{"Installation/SaveInvalid", s.testSaveInvalid},
		{"Installation/ReinstallReplaces", s.testReinstallReplaces},
		{"Installation/ReinstallKeepsDisabled", s.testReinstallKeepsDisabled},
		{"Installation/ReinstallAfterUninstall", s.testReinstallAfterUninstall},
		{"Installation/SetState", s.testSetState},
		{"Installation/UninstalledWins", s.testUninstalledWins},
		{"Installation/SetStateUnknown", s.testSetStateUnknown},
		{"Installation/ConcurrentDisableUninstall", s.testConcurrentDisableUninstall},
		{"Installation/ConcurrentReinstall", s.testConcurrentReinstall},
		{"Installation/List", s.testList},
		{"Installation/PayloadRoundTrip", s.testPayloadRoundTrip},
		{"Installation/SecretsEncryptedAtRest", s.testSecretsEncrypted},
		{"Data/PutGetDelete", s.testPutGetDelete},
		{"Data/Validation", s.testDataValidation},
		{"Data/List", s.testListValues},
		{"Data/ListByteOrder", s.testListByteOrder},
		{"Data/ListLikeMetacharacters", s.testListMetacharacters},
		{"Data/ListLimit", s.testListLimit},
		{"Data/TenantIsolation", s.testTenantIsolation},
		{"Data/DeleteTenantData", s.testDeleteTenantData},
		{"Data/Concurrent", s.testDataConcurrent},
		{"Jobs", s.testJobs},
		{"KV", s.testKV},
		{"Budget", s.testBudget},
		{"Tokens", s.testTokens},
		{"Settings", s.testSettings},
		{"Forge", s.testForge},
		{"ForgeLifecycle", s.testForgeLifecycle},
		{"Outage", s.testOutage},
		{"Reseal", s.testReseal},
		{"Data/Update", s.testUpdate},
		{"Import", s.testImport},
		{"Personal", s.testPersonal},
		{"Audit", s.testAudit},
		{"Retention/Purge", s.testPurge},
		{"Retention/Due", s.testRetentionDue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t)
		})
	}
}

// RunOutage runs only the outage case of the suite (see Options.Outage),
// for a store that has several ways of losing its database.
func RunOutage(t *testing.T, outage OutageFunc) {
	s := &suite{opts: Options{Outage: outage}}
	s.testOutage(t)
}

type suite struct {
	open OpenFunc
	opts Options
}

// store opens a fresh store with its own clock.
func (s *suite) store(t *testing.T) (tenon.Store, *Clock) {
	t.Helper()
	c := NewClock(Start)
	st := s.open(t, c.Now)
	if st == nil {
		t.Fatal("storetest: open returned a nil store")
	}
	return st, c
}
