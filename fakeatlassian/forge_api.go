package fakeatlassian

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// The Forge platform's own APIs on the fake's api.atlassian.com root, as
// a remote calls them with an installation's app system token:
//
//   - GET /forge/installation/v1/{appId}/{envId}/installation/{installationId}
//     (Installation Details API): 200 with the installation's version,
//     contexts and scopes while it is installed, 404 once UninstallForge
//     removed it, 403 when the token was issued for another installation.
//   - GET /forge/installation/v1/license (License API, self-query): the
//     license of the token's installation, set with SetForgeLicenseAPI.
//   - POST /graphql with the offlineUserAuthToken mutation (offline user
//     impersonation): a user token for a user of the token's site.
//
// A token of an uninstalled installation still authenticates here (so
// the Installation Details API can say the installation is gone), and
// nowhere else. The REST knobs (FailNext, RateLimitNext, SetOutage,
// SetLatency) act on these APIs too.

// License API states of SetForgeLicenseAPI.
const (
	ForgeLicenseActive    = "active"    // data.isActive true
	ForgeLicenseInactive  = "inactive"  // data.isActive false
	ForgeLicenseNone      = "none"      // an error result: the app has no license on the site
	ForgeLicenseMalformed = "malformed" // a result without data.isActive
)

func (f *Fake) forgeAPIRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /forge/installation/v1/license", f.serveForgeLicenseAPI)
	mux.HandleFunc("GET /forge/installation/v1/{app}/{env}/installation/{inst}", f.serveForgeInstallationAPI)
	mux.HandleFunc("POST /graphql", f.serveForgeGraphQL)
	mux.HandleFunc("PUT "+controlPrefix+"/sites/{site}/forge/license", f.ctlForgeLicenseAPI)
}

// ctlForgeLicenseAPI is SetForgeLicenseAPI: {"appId": "", "state": "active"}.
func (f *Fake) ctlForgeLicenseAPI(w http.ResponseWriter, r *http.Request) {
	s, ok := f.ctlSite(w, r)
	if !ok {
		return
	}
	var in struct {
		AppID string `json:"appId"`
		State string `json:"state"`
	}
	if !ctlRead(w, r, &in) {
		return
	}
	if err := f.SetForgeLicenseAPI(s, in.AppID, in.State); err != nil {
		writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// SetForgeLicenseAPI sets what the License API answers for the live
// installation of appID ("" for the default app) on site: one of the
// ForgeLicense states, or "" to follow ForgeInstallOptions.License (nil
// is ForgeLicenseNone). FITs keep carrying ForgeInstallOptions.License.
func (f *Fake) SetForgeLicenseAPI(site *Site, appID, state string) error {
	switch state {
	case "", ForgeLicenseActive, ForgeLicenseInactive, ForgeLicenseNone, ForgeLicenseMalformed:
	default:
		return fmt.Errorf("%w: License API state %q is not active, inactive, none or malformed", ErrInvalid, state)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, in, err := f.forgeInstallLocked(site, appID)
	if err != nil {
		return err
	}
	in.licenseAPI = state
	return nil
}

// forgeAPICaller checks the system token of a request to the platform's
// APIs and returns its installation and site, or answers the request.
func (f *Fake) forgeAPICaller(w http.ResponseWriter, r *http.Request) (*forgeInstall, *siteState, bool) {
	note := noteOf(r)
	note.kind = KindREST
	if f.applyKnobs(w, r, "forge") {
		return nil, nil, false
	}
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	refuse := func(status int, msg string) (*forgeInstall, *siteState, bool) {
		note.err = msg
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="Atlassian"`)
		}
		writeJSON(w, status, map[string]any{"code": status, "message": msg})
		return nil, nil, false
	}
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return refuse(http.StatusUnauthorized, "no Bearer token")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	g := f.forge.grants[token]
	switch {
	case g == nil:
		return refuse(http.StatusUnauthorized, "the access token is unknown or revoked")
	case !f.now().Before(g.expires):
		return refuse(http.StatusUnauthorized, "the access token has expired")
	case g.accountID != "":
		return refuse(http.StatusForbidden, "this API takes the app system token")
	}
	in := f.forge.installs[g.installationID]
	s := f.sites[g.site]
	if in == nil || s == nil {
		return refuse(http.StatusUnauthorized, "the access token is unknown or revoked")
	}
	note.site = s.info.Name
	return in, s, true
}

func (f *Fake) serveForgeInstallationAPI(w http.ResponseWriter, r *http.Request) {
	in, s, ok := f.forgeAPICaller(w, r)
	if !ok {
		return
	}
	if r.PathValue("inst") != ariTail(in.id) {
		writeJSON(w, http.StatusForbidden, map[string]any{"code": 403, "message": "The installationId does not match the installation the token was issued for."})
		return
	}
	f.mu.Lock()
	gone := in.uninstalled
	app, env := ariTail(in.appID), ariTail(in.envID)
	scopes := append([]string(nil), in.scopes...)
	f.mu.Unlock()
	if gone || r.PathValue("app") != app || r.PathValue("env") != env {
		writeJSON(w, http.StatusNotFound, map[string]any{"code": 404, "message": "Installation not found."})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"version":  "1.0.0",
		"contexts": []string{"ari:cloud:" + s.info.Product + "::site/" + s.info.CloudID},
		"scopes":   scopes,
		"egress":   []string{},
	})
}

func (f *Fake) serveForgeLicenseAPI(w http.ResponseWriter, r *http.Request) {
	in, _, ok := f.forgeAPICaller(w, r)
	if !ok {
		return
	}
	f.mu.Lock()
	state := in.licenseAPI
	if state == "" {
		state = ForgeLicenseNone
		if in.license != nil {
			state = ForgeLicenseInactive
			if *in.license {
				state = ForgeLicenseActive
			}
		}
	}
	gone, app := in.uninstalled, ariTail(in.appID)
	f.mu.Unlock()
	if gone {
		writeJSON(w, http.StatusNotFound, map[string]any{"code": 404, "message": "Installation not found."})
		return
	}
	result := map[string]any{"appId": app}
	switch state {
	case ForgeLicenseActive, ForgeLicenseInactive:
		result["data"] = map[string]any{"isActive": state == ForgeLicenseActive, "type": "commercial", "billingPeriod": "MONTHLY", "isEvaluation": false}
	case ForgeLicenseNone:
		result["error"] = map[string]any{"code": "LICENSE_NOT_FOUND", "message": "The app has no license on this site."}
	case ForgeLicenseMalformed:
		result["data"] = map[string]any{"type": "commercial"}
	}
	writeJSON(w, http.StatusOK, map[string]any{"results": []any{result}})
}

// serveForgeGraphQL answers the one GraphQL operation the fake knows:
// offlineUserAuthToken, a user token for a user of the token's site.
func (f *Fake) serveForgeGraphQL(w http.ResponseWriter, r *http.Request) {
	in, s, ok := f.forgeAPICaller(w, r)
	if !ok {
		return
	}
	var req struct {
		Query     string `json:"query"`
		Variables struct {
			Input struct {
				ContextIDs []string `json:"contextIds"`
				UserID     string   `json:"userId"`
			} `json:"input"`
		} `json:"variables"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"errors": []any{map[string]string{"message": "The body is not a GraphQL request."}}})
		return
	}
	if !strings.Contains(req.Query, "offlineUserAuthToken") {
		writeJSON(w, http.StatusOK, map[string]any{"errors": []any{map[string]string{"message": "The fake knows only the offlineUserAuthToken mutation."}}})
		return
	}
	fail := func(msg string) {
		noteOf(r).err = msg
		writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"offlineUserAuthToken": map[string]any{
			"success": false, "errors": []any{map[string]string{"message": msg}}, "authToken": nil,
		}}})
	}
	in2 := req.Variables.Input
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case in.uninstalled:
		fail("The app is not installed in the provided contextIds.")
		return
	case !containsCloud(in2.ContextIDs, s.info.CloudID):
		fail(fmt.Sprintf("Could not load permissions for app user in the provided contextIds of %v", in2.ContextIDs))
		return
	case !s.knowsAccount(in2.UserID):
		fail("The user does not exist or has no access to the site.")
		return
	}
	tok, err := f.forgeTokenLocked(s, in, in2.UserID, forgeUserLife)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]any{"errors": []any{map[string]string{"message": "token signing failed"}}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{"offlineUserAuthToken": map[string]any{
		"success": true, "errors": []any{}, "authToken": map[string]any{"token": tok, "ttl": int64(forgeUserLife.Seconds())},
	}}})
}

// containsCloud reports whether a context ARI names cloudID, as a site
// (ari:cloud:jira::site/<cloudId>) or a workspace
// (ari:cloud:jira:<cloudId>:workspace/...).
func containsCloud(ids []string, cloudID string) bool {
	for _, id := range ids {
		if strings.HasSuffix(id, "::site/"+cloudID) || strings.Contains(id, ":"+cloudID+":workspace/") {
			return true
		}
	}
	return false
}

// ariTail is the last segment of an ARI: the uuid of an app,
// installation or environment id.
func ariTail(s string) string {
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		return s[i+1:]
	}
	return s
}
