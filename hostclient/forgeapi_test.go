package hostclient_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/fakeatlassian"
	"github.com/tenon-dev/tenon/hostclient"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/sqlite"
)

// forgeAPISite is a fake Atlassian with the Forge app installed on one
// site, recorded in a store with its cached system token, as the server
// leaves it after Forge's first call.
type forgeAPISite struct {
	fake   *fakeatlassian.Fake
	site   *fakeatlassian.Site
	inst   fakeatlassian.ForgeInstallation
	store  *sqlite.Store
	client *hostclient.Client
	system string
}

func newForgeAPISite(t *testing.T) *forgeAPISite {
	t.Helper()
	f := fakeatlassian.New(fakeatlassian.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := f.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	site, err := f.AddSite(fakeatlassian.SiteOptions{Name: "acme", Product: fakeatlassian.ProductJira})
	if err != nil {
		t.Fatal(err)
	}
	inst, err := f.InstallForge(site, fakeatlassian.ForgeInstallOptions{RemoteBaseURL: "http://127.0.0.1:9/remote"})
	if err != nil {
		t.Fatal(err)
	}
	system, _, err := f.ForgeTokens(site, "", "")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.New(bytes.Repeat([]byte{7}, keyring.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(filepath.Join(t.TempDir(), "tenon.db"), sqlite.Options{SecretBox: kr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ctx := context.Background()
	in := &tenon.ForgeInstallation{
		InstallationID: inst.InstallationID, AppID: inst.AppID, CloudID: inst.CloudID, APIBaseURL: inst.APIBaseURL,
		Product: "jira", Environment: tenon.ForgeEnvironment{Type: inst.EnvironmentType, ID: inst.EnvironmentID},
	}
	if err := store.RecordForgeInstallation(ctx, in); err != nil {
		t.Fatal(err)
	}
	if err := store.PutToken(ctx, tenon.ForgeSystemTokenKey(inst.InstallationID), system, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	client := hostclient.New("", hostclient.Options{
		Tokens: store, Forge: hostclient.ForgeOptions{Installations: store, AllowHTTP: true},
		Policy: hostclient.Policy{Sleep: noSleep, Rand: func() float64 { return 0 }},
	})
	return &forgeAPISite{fake: f, site: site, inst: inst, store: store, client: client, system: system}
}

func (s *forgeAPISite) forgeContext(withToken bool) *tenon.ForgeContext {
	fc := &tenon.ForgeContext{InstallationID: s.inst.InstallationID, AppID: s.inst.AppID, CloudID: s.inst.CloudID,
		APIBaseURL: s.inst.APIBaseURL, Environment: tenon.ForgeEnvironment{Type: s.inst.EnvironmentType, ID: s.inst.EnvironmentID}}
	if withToken {
		fc.SetTokens(s.system, "")
	}
	return fc
}

func TestForgeInstallationDetails(t *testing.T) {
	s := newForgeAPISite(t)
	ctx := context.Background()
	d, err := s.client.ForgeInstallationDetails(ctx, s.inst.InstallationID)
	if err != nil {
		t.Fatalf("live installation: %v", err)
	}
	if d.Version == "" || len(d.Raw) == 0 {
		t.Errorf("details: %+v", d)
	}

	// A 5xx or a 429 is "unknown", never "gone".
	s.fake.FailNext(10, http.StatusBadGateway)
	_, err = s.client.ForgeInstallationDetails(ctx, s.inst.InstallationID)
	if errors.Is(err, hostclient.ErrForgeInstallationGone) || tenon.ErrorCode(err) != tenon.EUNAVAILABLE {
		t.Errorf("5xx: %v", err)
	}
	s.fake.FailNext(0, 0)
	s.fake.RateLimitNext(10, 0)
	_, err = s.client.ForgeInstallationDetails(ctx, s.inst.InstallationID)
	if errors.Is(err, hostclient.ErrForgeInstallationGone) || !errors.Is(err, hostclient.ErrRateLimited) {
		t.Errorf("429: %v", err)
	}
	s.fake.RateLimitNext(0, 0)

	if err := s.fake.UninstallForge(s.site, ""); err != nil {
		t.Fatal(err)
	}
	_, err = s.client.ForgeInstallationDetails(ctx, s.inst.InstallationID)
	if !errors.Is(err, hostclient.ErrForgeInstallationGone) || tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("uninstalled: %v", err)
	}

	// No cached token: nothing is sent.
	if err := s.store.DeleteToken(ctx, tenon.ForgeSystemTokenKey(s.inst.InstallationID)); err != nil {
		t.Fatal(err)
	}
	_, err = s.client.ForgeInstallationDetails(ctx, s.inst.InstallationID)
	if !errors.Is(err, hostclient.ErrNoForgeToken) || errors.Is(err, hostclient.ErrForgeInstallationGone) {
		t.Errorf("no token: %v", err)
	}
}

func TestForgeLicenseAPI(t *testing.T) {
	s := newForgeAPISite(t)
	ctx := context.Background()
	for _, tc := range []struct {
		state   string
		active  bool
		wantErr bool
	}{
		{fakeatlassian.ForgeLicenseActive, true, false},
		{fakeatlassian.ForgeLicenseInactive, false, false},
		{fakeatlassian.ForgeLicenseNone, false, false},
		{fakeatlassian.ForgeLicenseMalformed, false, true},
	} {
		if err := s.fake.SetForgeLicenseAPI(s.site, "", tc.state); err != nil {
			t.Fatal(err)
		}
		for _, withToken := range []bool{true, false} {
			active, err := s.client.ForgeLicense(ctx, s.forgeContext(withToken))
			if (err != nil) != tc.wantErr || active != tc.active {
				t.Errorf("%s (token of the call %v): active %v, err %v", tc.state, withToken, active, err)
			}
			if tc.wantErr && tenon.ErrorCode(err) != tenon.EUNAVAILABLE {
				t.Errorf("%s: code %q, want unavailable", tc.state, tenon.ErrorCode(err))
			}
		}
	}
	if err := s.fake.SetForgeLicenseAPI(s.site, "", "maybe"); err == nil {
		t.Error("an unknown License API state was accepted")
	}

	// A token the API refuses is an error, not an inactive license.
	fc := s.forgeContext(false)
	fc.SetTokens("not-a-token-of-the-fake", "")
	if active, err := s.client.ForgeLicense(ctx, fc); err == nil || active {
		t.Errorf("refused token: active %v, err %v", active, err)
	}
	// An app the answer does not name is not licensed by it.
	fc = s.forgeContext(true)
	fc.AppID = "ari:cloud:ecosystem::app/00000000-0000-4000-8000-000000000000"
	if err := s.fake.SetForgeLicenseAPI(s.site, "", fakeatlassian.ForgeLicenseActive); err != nil {
		t.Fatal(err)
	}
	if active, err := s.client.ForgeLicense(ctx, fc); err == nil || active {
		t.Errorf("another app's result: active %v, err %v", active, err)
	}
}

func TestForgeAsUserOffline(t *testing.T) {
	s := newForgeAPISite(t)
	ctx := context.Background()
	user := s.site.DefaultAccountID
	tn, err := s.client.ForgeAsUserOffline(ctx, s.inst.InstallationID, user)
	if err != nil {
		t.Fatalf("offline token: %v", err)
	}
	var me struct {
		AccountID string `json:"accountId"`
	}
	if err := tn.GetJSON(ctx, "/rest/api/3/myself", &me); err != nil {
		t.Fatalf("call as the user: %v", err)
	}
	if me.AccountID != user {
		t.Errorf("acted as %q, want %q", me.AccountID, user)
	}
	// The token is cached: ForgeAsUser finds it, and a second exchange is
	// not needed.
	if _, err := s.client.ForgeAsUser(ctx, s.inst.InstallationID, user); err != nil {
		t.Errorf("cached offline token: %v", err)
	}
	graphql := func() int {
		n := 0
		for _, c := range s.fake.Calls() {
			if strings.HasSuffix(c.URL, "/graphql") {
				n++
			}
		}
		return n
	}
	before := graphql()
	if _, err := s.client.ForgeAsUserOffline(ctx, s.inst.InstallationID, user); err != nil || graphql() != before {
		t.Errorf("second offline call: err %v, %d exchanges after %d", err, graphql(), before)
	}

	// A user the site does not know is refused, and nothing is cached.
	stranger := "557058:00000000-0000-4000-8000-0000000000ff"
	_, err = s.client.ForgeAsUserOffline(ctx, s.inst.InstallationID, stranger)
	var te *hostclient.TokenError
	if tenon.ErrorCode(err) != tenon.EUNAUTHORIZED || !errors.As(err, &te) {
		t.Errorf("unknown user: %v", err)
	}
	if _, _, err := s.store.Token(ctx, tenon.ForgeUserTokenKey(s.inst.InstallationID, stranger), time.Now()); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("a refused exchange left a token: %v", err)
	}
	if _, err := s.client.ForgeAsUserOffline(ctx, s.inst.InstallationID, "not an account"); tenon.ErrorCode(err) != tenon.EINVALID {
		t.Errorf("malformed accountId: %v", err)
	}
}

func TestForgeAPIRefusesBeforeSending(t *testing.T) {
	s := newForgeAPISite(t)
	ctx := context.Background()
	// An installation recorded before its environment was known.
	bare := &tenon.ForgeInstallation{InstallationID: "ari:cloud:ecosystem::installation/00000000-0000-4000-8000-0000000000aa",
		AppID: s.inst.AppID, CloudID: s.inst.CloudID, APIBaseURL: s.inst.APIBaseURL}
	if err := s.store.RecordForgeInstallation(ctx, bare); err != nil {
		t.Fatal(err)
	}
	before := len(s.fake.Calls())
	if _, err := s.client.ForgeInstallationDetails(ctx, bare.InstallationID); tenon.ErrorCode(err) != tenon.EINVALID {
		t.Errorf("no environment id: %v", err)
	}
	if _, err := s.client.ForgeInstallationDetails(ctx, "ari:cloud:ecosystem::installation/unknown"); tenon.ErrorCode(err) != tenon.ENOTFOUND ||
		errors.Is(err, hostclient.ErrForgeInstallationGone) {
		t.Errorf("unrecorded installation: %v", err)
	}
	if _, err := s.client.ForgeLicense(ctx, nil); err == nil {
		t.Error("a license question without a Forge call was accepted")
	}
	if n := len(s.fake.Calls()); n != before {
		t.Errorf("%d calls sent by refused requests", n-before)
	}
}
