package fakeatlassian_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/tenon-dev/tenon/fakeatlassian"
)

func TestForgePlatformAPIs(t *testing.T) {
	f := fakeatlassian.New(fakeatlassian.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := f.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var sites []*fakeatlassian.Site
	var insts []fakeatlassian.ForgeInstallation
	for _, name := range []string{"one", "two"} {
		s, err := f.AddSite(fakeatlassian.SiteOptions{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		in, err := f.InstallForge(s, fakeatlassian.ForgeInstallOptions{RemoteBaseURL: "http://127.0.0.1:9"})
		if err != nil {
			t.Fatal(err)
		}
		sites, insts = append(sites, s), append(insts, in)
	}
	sys, user, err := f.ForgeTokens(sites[0], "", sites[0].DefaultAccountID)
	if err != nil {
		t.Fatal(err)
	}
	tail := func(ari string) string { return ari[strings.LastIndexByte(ari, '/')+1:] }
	details := func(in fakeatlassian.ForgeInstallation) string {
		return "/forge/installation/v1/" + tail(in.AppID) + "/" + tail(in.EnvironmentID) + "/installation/" + tail(in.InstallationID)
	}
	do := func(method, path, token, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, f.URL()+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := do("GET", details(insts[0]), sys, ""); st != 200 || !strings.Contains(body, `"version"`) {
		t.Errorf("details: %d %s", st, body)
	}
	for _, tc := range []struct {
		name, method, path, token, body string
		status                          int
		text                            string
	}{
		{"no token", "GET", details(insts[0]), "", "", 401, "no Bearer token"},
		{"unknown token", "GET", details(insts[0]), "nope", "", 401, "unknown or revoked"},
		{"user token", "GET", details(insts[0]), user, "", 403, "app system token"},
		{"another installation", "GET", details(insts[1]), sys, "", 403, "does not match"},
		{"license, user token", "GET", "/forge/installation/v1/license", user, "", 403, "app system token"},
		{"graphql, not JSON", "POST", "/graphql", sys, "{", 400, "not a GraphQL request"},
		{"graphql, other query", "POST", "/graphql", sys, `{"query":"{ me { id } }"}`, 200, "only the offlineUserAuthToken"},
		{"offline token, other site", "POST", "/graphql", sys,
			`{"query":"mutation { offlineUserAuthToken }","variables":{"input":{"contextIds":["ari:cloud:jira::site/` + sites[1].CloudID + `"],"userId":"` + sites[0].DefaultAccountID + `"}}}`,
			200, `"success":false`},
	} {
		if st, body := do(tc.method, tc.path, tc.token, tc.body); st != tc.status || !strings.Contains(body, tc.text) {
			t.Errorf("%s: %d %s, want %d %q", tc.name, st, body, tc.status, tc.text)
		}
	}
	if err := f.SetForgeLicenseAPI(sites[0], "", "sometimes"); err == nil {
		t.Error("an unknown License API state was accepted")
	}
	st, body := do("PUT", "/_fake/sites/one/forge/license", "", `{"state":"active"}`)
	if st != http.StatusNoContent {
		t.Fatalf("control API license: %d %s", st, body)
	}
	_, body = do("GET", "/forge/installation/v1/license", sys, "")
	var lic struct {
		Results []struct {
			AppID string `json:"appId"`
			Data  struct {
				IsActive bool `json:"isActive"`
			} `json:"data"`
		} `json:"results"`
	}
	if json.Unmarshal([]byte(body), &lic) != nil || len(lic.Results) != 1 || !lic.Results[0].Data.IsActive || lic.Results[0].AppID != tail(insts[0].AppID) {
		t.Errorf("license: %s", body)
	}

	// Uninstalled: the details API says so; product calls refuse the token.
	if err := f.UninstallForge(sites[0], ""); err != nil {
		t.Fatal(err)
	}
	if st, _ := do("GET", details(insts[0]), sys, ""); st != http.StatusNotFound {
		t.Errorf("details after uninstall: %d", st)
	}
	if st, _ := do("GET", "/ex/jira/"+sites[0].CloudID+"/rest/api/3/myself", sys, ""); st != http.StatusUnauthorized {
		t.Errorf("a product call with the token of an uninstalled installation: %d", st)
	}
	if _, err := f.SendForgeLifecycleEvent(t.Context(), sites[0], fakeatlassian.ForgeLifecycleOptions{Path: "/x", EventType: "avi:forge:moved:app"}); err == nil {
		t.Error("an unknown lifecycle event was sent")
	}
}
