package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
)

// Forge-side identities used by the Forge tests.
const (
	forgeApp   = "ari:cloud:ecosystem::app/8db33809-1f32-48bb-8c52-5877dab48107"
	forgeInst1 = "ari:cloud:ecosystem::installation/0a3a7799-53ae-4a5b-9e7e-03338980abb5"
	forgeInst2 = "ari:cloud:ecosystem::installation/75969db9-dc7b-4798-9715-bd098ac0d9d1"
	forgeCloud = "d0d52620-3203-4cfa-8db5-f2587155f0dd"
)

// NewForgeInstallation returns an installation as a verified FIT for
// installationID on the site cloudID would describe it.
func NewForgeInstallation(installationID, cloudID string) *tenon.ForgeInstallation {
	return &tenon.ForgeInstallation{
		InstallationID: installationID,
		AppID:          forgeApp,
		CloudID:        cloudID,
		APIBaseURL:     "https://api.atlassian.com/ex/jira/" + cloudID,
		SiteURL:        "https://acme.atlassian.net",
		Product:        "jira",
		Environment:    tenon.ForgeEnvironment{Type: "PRODUCTION", ID: "ari:cloud:ecosystem::environment/prod"},
	}
}

// testForge runs the tenon.ForgeStore cases; a store without the
// capability skips them.
func (s *suite) testForge(t *testing.T) {
	cases := []struct {
		name string
		fn   func(t *testing.T, st tenon.Store, fs tenon.ForgeStore, c *Clock)
	}{
		{"ForgeOnly", s.testForgeOnly},
		{"RecordAgain", s.testForgeRecordAgain},
		{"LinkByCloudID", s.testForgeLinkByCloudID},
		{"InstallationIDWins", s.testForgeInstallationIDWins},
		{"PrefersEnabledTenant", s.testForgePrefersEnabled},
		{"ReinstallKeepsData", s.testForgeReinstall},
		{"LinkLaterMovesData", s.testForgeLinkLater},
		{"RecordLinksLater", s.testForgeRecordLinksLater},
		{"LinkIsSticky", s.testForgeLinkSticky},
		{"Invalid", s.testForgeInvalid},
		{"Concurrent", s.testForgeConcurrent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, c := s.store(t)
			fs, ok := st.(tenon.ForgeStore)
			if !ok {
				t.Skip("the store does not implement tenon.ForgeStore")
			}
			tc.fn(t, st, fs, c)
		})
	}
}

func mustRecord(t *testing.T, fs tenon.ForgeStore, in *tenon.ForgeInstallation) *tenon.ForgeInstallation {
	t.Helper()
	if err := fs.RecordForgeInstallation(context.Background(), in); err != nil {
		t.Fatalf("RecordForgeInstallation(%s): %v", in.InstallationID, err)
	}
	return in
}

func mustForge(t *testing.T, fs tenon.ForgeStore, installationID string) *tenon.ForgeInstallation {
	t.Helper()
	in, err := fs.ForgeInstallation(context.Background(), installationID)
	if err != nil {
		t.Fatalf("ForgeInstallation(%s): %v", installationID, err)
	}
	return in
}

func checkValue(t *testing.T, st tenon.Store, clientKey, key, want string) {
	t.Helper()
	got, err := st.GetValue(context.Background(), clientKey, key)
	switch {
	case want == "" && tenon.ErrorCode(err) == tenon.ENOTFOUND:
	case want == "":
		t.Errorf("value %s/%s = %s, %v; want none", clientKey, key, got, err)
	case err != nil:
		t.Errorf("value %s/%s: %v; want %s", clientKey, key, err, want)
	case string(got) != want:
		t.Errorf("value %s/%s = %s, want %s", clientKey, key, got, want)
	}
}

func (s *suite) testForgeOnly(t *testing.T, st tenon.Store, fs tenon.ForgeStore, c *Clock) {
	in := mustRecord(t, fs, NewForgeInstallation(forgeInst1, forgeCloud))
	want := NewForgeInstallation(forgeInst1, forgeCloud)
	want.ClientKey = tenon.ForgeTenantKey(forgeCloud, forgeInst1)
	want.FirstSeen, want.LastSeen = c.Now(), c.Now()
	checkForge(t, "RecordForgeInstallation updates its argument", in, want)
	checkForge(t, "ForgeInstallation", mustForge(t, fs, forgeInst1), want)
	if in.Linked() {
		t.Error("a Forge-only installation reports Linked")
	}
	list, err := fs.ForgeInstallations(context.Background(), want.ClientKey)
	if err != nil || len(list) != 1 || list[0].InstallationID != forgeInst1 {
		t.Errorf("ForgeInstallations(%s) = %v, %v", want.ClientKey, list, err)
	}
	// Without a cloudId the installation keys its own data.
	bare := NewForgeInstallation(forgeInst2, "")
	mustRecord(t, fs, bare)
	if bare.ClientKey != tenon.ForgeTenantKey("", forgeInst2) {
		t.Errorf("installation without cloudId has tenant key %q", bare.ClientKey)
	}
}

func (s *suite) testForgeRecordAgain(t *testing.T, st tenon.Store, fs tenon.ForgeStore, c *Clock) {
	mustRecord(t, fs, NewForgeInstallation(forgeInst1, forgeCloud))
	first := c.Now()
	c.Advance(time.Hour)
	again := NewForgeInstallation(forgeInst1, forgeCloud)
	again.APIBaseURL = "https://api.atlassian.com/ex/jira/" + forgeCloud + "/v2"
	again.SiteURL = ""          // events carry no context: keep what we know
	again.Environment.ID = "e2" // a redeploy
	mustRecord(t, fs, again)
	got := mustForge(t, fs, forgeInst1)
	checkTime(t, "FirstSeen", got.FirstSeen, first)
	checkTime(t, "LastSeen", got.LastSeen, c.Now())
	if got.APIBaseURL != again.APIBaseURL || got.SiteURL != "https://acme.atlassian.net" || got.Environment.ID != "e2" {
		t.Errorf("after a second record: %+v", got)
	}
	// A record that lacks the cloudId (no context, unusual apiBaseUrl)
	// keeps the known one.
	noCloud := NewForgeInstallation(forgeInst1, "")
	mustRecord(t, fs, noCloud)
	if noCloud.CloudID != forgeCloud || noCloud.ClientKey != tenon.ForgeTenantKey(forgeCloud, "") {
		t.Errorf("record without cloudId: %+v", noCloud)
	}
}

func (s *suite) testForgeLinkByCloudID(t *testing.T, st tenon.Store, fs tenon.ForgeStore, c *Clock) {
	connect := NewInstallation("tenant-a")
	connect.InstallationID = "" // a plain Connect app: no Forge parts announced
	connect.CloudID = forgeCloud
	mustSave(t, st, connect)
	mustPut(t, st, "tenant-a", "checklist/DEMO-1", `{"items":1}`)
	in := mustRecord(t, fs, NewForgeInstallation(forgeInst1, forgeCloud))
	if in.ClientKey != "tenant-a" || !in.Linked() {
		t.Fatalf("Forge installation of a Connect site: tenant key %q", in.ClientKey)
	}
	// Data written under Connect is the Forge installation's data.
	checkValue(t, st, in.ClientKey, "checklist/DEMO-1", `{"items":1}`)
	list, err := fs.ForgeInstallations(context.Background(), "tenant-a")
	if err != nil || len(list) != 1 {
		t.Errorf("ForgeInstallations(tenant-a) = %v, %v", list, err)
	}
}

func (s *suite) testForgeInstallationIDWins(t *testing.T, st tenon.Store, fs tenon.ForgeStore, c *Clock) {
	byCloud := NewInstallation("tenant-cloud")
	byCloud.InstallationID = ""
	byCloud.CloudID = forgeCloud
	mustSave(t, st, byCloud)
	c.Advance(time.Minute)
	byInstallation := NewInstallation("tenant-installation")
	byInstallation.InstallationID = forgeInst1
	byInstallation.CloudID = "another-cloud"
	mustSave(t, st, byInstallation)
	mustSetState(t, st, "tenant-installation", tenon.StateDisabled)
	in := mustRecord(t, fs, NewForgeInstallation(forgeInst1, forgeCloud))
	if in.ClientKey != "tenant-installation" {
		t.Errorf("linked to %q, want the tenant whose installed payload named the installationId", in.ClientKey)
	}
}

func (s *suite) testForgePrefersEnabled(t *testing.T, st tenon.Store, fs tenon.ForgeStore, c *Clock) {
	// A site import leaves an old, uninstalled tenant of the same site.
	for _, key := range []string{"tenant-new", "tenant-old"} {
		in := NewInstallation(key)
		in.InstallationID = ""
		in.CloudID = forgeCloud
		mustSave(t, st, in)
		c.Advance(time.Minute)
	}
	mustSetState(t, st, "tenant-new", tenon.StateUninstalled)
	in := mustRecord(t, fs, NewForgeInstallation(forgeInst1, forgeCloud))
	if in.ClientKey != "tenant-old" {
		t.Errorf("linked to %q, want the enabled tenant-old", in.ClientKey)
	}
	// With no enabled tenant, the most recently changed one wins.
	fresh := NewForgeInstallation(forgeInst2, "cloud-2")
	for _, key := range []string{"tenant-x", "tenant-y"} {
		in := NewInstallation(key)
		in.InstallationID = ""
		in.CloudID = "cloud-2"
		mustSave(t, st, in)
		c.Advance(time.Minute)
		mustSetState(t, st, key, tenon.StateUninstalled)
		c.Advance(time.Minute)
	}
	mustRecord(t, fs, fresh)
	if fresh.ClientKey != "tenant-y" {
		t.Errorf("linked to %q, want the last changed tenant-y", fresh.ClientKey)
	}
}

func (s *suite) testForgeReinstall(t *testing.T, st tenon.Store, fs tenon.ForgeStore, c *Clock) {
	first := mustRecord(t, fs, NewForgeInstallation(forgeInst1, forgeCloud))
	mustPut(t, st, first.ClientKey, "settings", `{"on":true}`)
	// A reinstall gives a new installationId on the same site.
	second := mustRecord(t, fs, NewForgeInstallation(forgeInst2, forgeCloud))
	if second.ClientKey != first.ClientKey {
		t.Fatalf("reinstall: tenant key %q, was %q", second.ClientKey, first.ClientKey)
	}
	checkValue(t, st, second.ClientKey, "settings", `{"on":true}`)
	list, err := fs.ForgeInstallations(context.Background(), first.ClientKey)
	if err != nil || len(list) != 2 || list[0].InstallationID != forgeInst1 || list[1].InstallationID != forgeInst2 {
		t.Errorf("ForgeInstallations = %v, %v", list, err)
	}
}

// forgeOnlySiteWithData records two installations of a Forge-only site
// and stores values under its tenant key.
func forgeOnlySiteWithData(t *testing.T, st tenon.Store, fs tenon.ForgeStore) string {
	t.Helper()
	mustRecord(t, fs, NewForgeInstallation(forgeInst1, forgeCloud))
	in := mustRecord(t, fs, NewForgeInstallation(forgeInst2, forgeCloud))
	mustPut(t, st, in.ClientKey, "forge-only", `"from forge"`)
	mustPut(t, st, in.ClientKey, "both", `"forge version"`)
	mustPut(t, st, in.ClientKey, "same", `"equal"`)
	return in.ClientKey
}

func connectTenantOfSite(t *testing.T, st tenon.Store) {
	t.Helper()
	connect := NewInstallation("tenant-a")
	connect.InstallationID = ""
	connect.CloudID = forgeCloud
	mustSave(t, st, connect)
	mustPut(t, st, "tenant-a", "connect-only", `"from connect"`)
	mustPut(t, st, "tenant-a", "both", `"connect version"`)
	mustPut(t, st, "tenant-a", "same", `"equal"`)
}

func checkAdopted(t *testing.T, st tenon.Store, forgeKey string) {
	t.Helper()
	checkValue(t, st, "tenant-a", "forge-only", `"from forge"`)
	checkValue(t, st, "tenant-a", "connect-only", `"from connect"`)
	checkValue(t, st, "tenant-a", "both", `"connect version"`)
	checkValue(t, st, "tenant-a", "same", `"equal"`)
	// What moved is gone from the Forge key; the conflicting Forge value
	// stays there, so nothing is lost.
	checkValue(t, st, forgeKey, "forge-only", "")
	checkValue(t, st, forgeKey, "same", "")
	checkValue(t, st, forgeKey, "both", `"forge version"`)
}

func (s *suite) testForgeLinkLater(t *testing.T, st tenon.Store, fs tenon.ForgeStore, c *Clock) {
	ctx := context.Background()
	forgeKey := forgeOnlySiteWithData(t, st, fs)
	connectTenantOfSite(t, st)
	linked, err := fs.LinkForgeInstallations(ctx, "tenant-a")
	if err != nil {
		t.Fatalf("LinkForgeInstallations: %v", err)
	}
	if len(linked) != 2 {
		t.Fatalf("linked %d installations, want 2", len(linked))
	}
	for _, in := range linked {
		if in.ClientKey != "tenant-a" {
			t.Errorf("returned %s with tenant key %q", in.InstallationID, in.ClientKey)
		}
	}
	for _, id := range []string{forgeInst1, forgeInst2} {
		if got := mustForge(t, fs, id).ClientKey; got != "tenant-a" {
			t.Errorf("%s: tenant key %q after linking", id, got)
		}
	}
	checkAdopted(t, st, forgeKey)
	// Linking again changes nothing.
	again, err := fs.LinkForgeInstallations(ctx, "tenant-a")
	if err != nil || len(again) != 0 {
		t.Errorf("second link = %v, %v", again, err)
	}
	checkValue(t, st, "tenant-a", "both", `"connect version"`)
}

func (s *suite) testForgeRecordLinksLater(t *testing.T, st tenon.Store, fs tenon.ForgeStore, c *Clock) {
	forgeKey := forgeOnlySiteWithData(t, st, fs)
	connectTenantOfSite(t, st)
	// No explicit link (say the node died after the install): the next
	// recorded invocation links the site, and both installations move.
	in := mustRecord(t, fs, NewForgeInstallation(forgeInst2, forgeCloud))
	if in.ClientKey != "tenant-a" {
		t.Fatalf("record after the Connect install: tenant key %q", in.ClientKey)
	}
	if got := mustForge(t, fs, forgeInst1).ClientKey; got != "tenant-a" {
		t.Errorf("the older installation of the site has tenant key %q", got)
	}
	checkAdopted(t, st, forgeKey)
}

func (s *suite) testForgeLinkSticky(t *testing.T, st tenon.Store, fs tenon.ForgeStore, c *Clock) {
	connectTenantOfSite(t, st)
	in := mustRecord(t, fs, NewForgeInstallation(forgeInst1, forgeCloud))
	if in.ClientKey != "tenant-a" {
		t.Fatalf("tenant key %q", in.ClientKey)
	}
	// A site import creates a new Connect tenant for the same site; the
	// Forge installation keeps the data it has been using.
	c.Advance(time.Minute)
	newer := NewInstallation("tenant-b")
	newer.InstallationID = forgeInst1
	newer.CloudID = forgeCloud
	mustSave(t, st, newer)
	mustRecord(t, fs, NewForgeInstallation(forgeInst1, forgeCloud))
	if got := mustForge(t, fs, forgeInst1).ClientKey; got != "tenant-a" {
		t.Errorf("a linked installation moved to %q", got)
	}
	linked, err := fs.LinkForgeInstallations(context.Background(), "tenant-b")
	if err != nil || len(linked) != 0 {
		t.Errorf("linking another Connect tenant took %v, %v", linked, err)
	}
}

func (s *suite) testForgeInvalid(t *testing.T, st tenon.Store, fs tenon.ForgeStore, c *Clock) {
	ctx := context.Background()
	wantCode(t, "RecordForgeInstallation(nil)", fs.RecordForgeInstallation(ctx, nil), tenon.EINVALID)
	bad := map[string]func(*tenon.ForgeInstallation){
		"empty installationId":   func(in *tenon.ForgeInstallation) { in.InstallationID = "" },
		"NUL in installationId":  func(in *tenon.ForgeInstallation) { in.InstallationID += "\x00" },
		"invalid UTF-8 in cloud": func(in *tenon.ForgeInstallation) { in.CloudID = "\xff" },
		"NUL in apiBaseUrl":      func(in *tenon.ForgeInstallation) { in.APIBaseURL = "https://a\x00" },
	}
	for name, mutate := range bad {
		in := NewForgeInstallation(forgeInst1, forgeCloud)
		mutate(in)
		wantCode(t, "RecordForgeInstallation with "+name, fs.RecordForgeInstallation(ctx, in), tenon.EINVALID)
	}
	_, err := fs.ForgeInstallation(ctx, forgeInst1)
	wantCode(t, "ForgeInstallation of a refused record", err, tenon.ENOTFOUND)
	_, err = fs.ForgeInstallation(ctx, "")
	wantCode(t, `ForgeInstallation("")`, err, tenon.ENOTFOUND)
	_, err = fs.LinkForgeInstallations(ctx, "no-such-tenant")
	wantCode(t, "LinkForgeInstallations of an unknown tenant", err, tenon.ENOTFOUND)
	_, err = fs.LinkForgeInstallations(ctx, tenon.ForgeTenantKey(forgeCloud, ""))
	wantCode(t, "LinkForgeInstallations of a Forge tenant key", err, tenon.ENOTFOUND)
	list, err := fs.ForgeInstallations(ctx, "nobody")
	if err != nil || len(list) != 0 {
		t.Errorf("ForgeInstallations(nobody) = %v, %v", list, err)
	}
}

func (s *suite) testForgeConcurrent(t *testing.T, st tenon.Store, fs tenon.ForgeStore, c *Clock) {
	// Invocations of one installation arrive on many goroutines while the
	// Connect tenant of the site is installed: every record ends on one
	// row, and once linked it stays linked.
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 20 {
				in := NewInstallation("tenant-a")
				in.CloudID = forgeCloud
				errs <- st.SaveInstallation(ctx, in)
				return
			}
			id := forgeInst1
			if i%2 == 1 {
				id = forgeInst2
			}
			errs <- fs.RecordForgeInstallation(ctx, NewForgeInstallation(id, forgeCloud))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent record: %v", err)
		}
	}
	mustRecord(t, fs, NewForgeInstallation(forgeInst1, forgeCloud))
	for _, id := range []string{forgeInst1, forgeInst2} {
		if got := mustForge(t, fs, id).ClientKey; got != "tenant-a" {
			t.Errorf("%s: tenant key %q after the dust settled", id, got)
		}
	}
}

// checkForge compares every stored field of got with want.
func checkForge(t *testing.T, what string, got, want *tenon.ForgeInstallation) {
	t.Helper()
	g, w := fmt.Sprintf("%+v", forgeFields(got)), fmt.Sprintf("%+v", forgeFields(want))
	if g != w {
		t.Errorf("%s:\n got  %s\n want %s", what, g, w)
	}
	checkTime(t, what+": FirstSeen", got.FirstSeen, want.FirstSeen)
	checkTime(t, what+": LastSeen", got.LastSeen, want.LastSeen)
}

func forgeFields(in *tenon.ForgeInstallation) []string {
	return []string{in.InstallationID, in.AppID, in.CloudID, in.APIBaseURL, in.SiteURL, in.Product,
		in.Environment.Type, in.Environment.ID, in.ClientKey}
}
