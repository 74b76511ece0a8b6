package fakeatlassian

import (
	"encoding/json"
	"net/http"
	"unicode/utf8"
)

// forgeRoutes mounts the Forge side: the JWKS, the api.atlassian.com-style
// REST API, and the Forge part of the control API.
func (f *Fake) forgeRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+forgeJWKSPath, f.serveForgeJWKS)
	mux.HandleFunc("/ex/{product}/{cloudId}/{rest...}", f.serveForgeAPI)
	f.forgeAPIRoutes(mux) // forge_api.go

	p := controlPrefix
	mux.HandleFunc("GET "+p+"/forge", f.ctlForgeInfo)
	mux.HandleFunc("POST "+p+"/forge/keys/rotate", f.ctlForgeRotate)
	mux.HandleFunc("GET "+p+"/sites/{site}/forge", f.ctlForgeList)
	mux.HandleFunc("POST "+p+"/sites/{site}/forge", f.ctlForgeInstall)
	mux.HandleFunc("DELETE "+p+"/sites/{site}/forge", f.ctlForgeUninstall)
	mux.HandleFunc("POST "+p+"/sites/{site}/forge/invoke", f.ctlForgeInvoke)
	mux.HandleFunc("POST "+p+"/sites/{site}/forge/events", f.ctlForgeEvent)
	mux.HandleFunc("POST "+p+"/sites/{site}/forge/triggers", f.ctlForgeTrigger)
	mux.HandleFunc("POST "+p+"/sites/{site}/forge/fit", f.ctlForgeFIT)
}

func (f *Fake) ctlForgeInfo(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"appId": f.ForgeAppID(), "jwksUrl": f.ForgeJWKSURL()})
}

func (f *Fake) ctlForgeRotate(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"kid": f.RotateForgeKey()})
}

func (f *Fake) ctlForgeList(w http.ResponseWriter, r *http.Request) {
	s, ok := f.ctlSite(w, r)
	if !ok {
		return
	}
	list, err := f.ForgeInstallations(s)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (f *Fake) ctlForgeInstall(w http.ResponseWriter, r *http.Request) {
	s, ok := f.ctlSite(w, r)
	if !ok {
		return
	}
	var in struct {
		AppID         string   `json:"appId"`
		RemoteBaseURL string   `json:"remoteBaseUrl"`
		Environment   string   `json:"environment"`
		Scopes        []string `json:"scopes"`
		License       *bool    `json:"license"`
	}
	if !ctlRead(w, r, &in) {
		return
	}
	inst, err := f.InstallForge(s, ForgeInstallOptions{
		AppID: in.AppID, RemoteBaseURL: in.RemoteBaseURL, Environment: in.Environment, Scopes: in.Scopes, License: in.License,
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, inst)
}

func (f *Fake) ctlForgeUninstall(w http.ResponseWriter, r *http.Request) {
	s, ok := f.ctlSite(w, r)
	if !ok {
		return
	}
	if err := f.UninstallForge(s, r.URL.Query().Get("appId")); err != nil {
		writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// forgeAnswer is the control API's form of a remote's answer: the body as
// JSON when it is JSON, as text otherwise.
func forgeAnswer(resp *ForgeResponse) map[string]any {
	out := map[string]any{"status": resp.Status, "headers": resp.Header, "attempts": resp.Attempts}
	switch {
	case len(resp.Body) > 0 && json.Valid(resp.Body):
		out["body"] = json.RawMessage(resp.Body)
	case utf8.Valid(resp.Body):
		out["text"] = string(resp.Body)
	default:
		out["text"] = excerpt(resp.Body)
	}
	return out
}

func (f *Fake) ctlForgeInvoke(w http.ResponseWriter, r *http.Request) {
	s, ok := f.ctlSite(w, r)
	if !ok {
		return
	}
	var in struct {
		AppID         string            `json:"appId"`
		Method        string            `json:"method"`
		Path          string            `json:"path"`
		Body          json.RawMessage   `json:"body"`
		Headers       map[string]string `json:"headers"`
		AccountID     string            `json:"accountId"`
		ModuleType    string            `json:"moduleType"`
		ModuleKey     string            `json:"moduleKey"`
		IssueKey      string            `json:"issueKey"`
		Extension     map[string]any    `json:"extension"`
		NoSystemToken bool              `json:"noSystemToken"`
		NoUserToken   bool              `json:"noUserToken"`
	}
	if !ctlRead(w, r, &in) {
		return
	}
	hdr := http.Header{}
	for k, v := range in.Headers {
		hdr.Set(k, v)
	}
	resp, err := f.InvokeRemote(r.Context(), s, ForgeInvocation{
		AppID: in.AppID, Method: in.Method, Path: in.Path, Body: in.Body, Header: hdr, AccountID: in.AccountID,
		ModuleType: in.ModuleType, ModuleKey: in.ModuleKey, IssueKey: in.IssueKey, Extension: in.Extension,
		NoSystemToken: in.NoSystemToken, NoUserToken: in.NoUserToken,
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, forgeAnswer(resp))
}

func (f *Fake) ctlForgeEvent(w http.ResponseWriter, r *http.Request) {
	s, ok := f.ctlSite(w, r)
	if !ok {
		return
	}
	var in struct {
		AppID         string         `json:"appId"`
		Path          string         `json:"path"`
		EventType     string         `json:"eventType"`
		Payload       map[string]any `json:"payload"`
		ModuleKey     string         `json:"moduleKey"`
		NoSystemToken bool           `json:"noSystemToken"`
	}
	if !ctlRead(w, r, &in) {
		return
	}
	resp, err := f.SendForgeEvent(r.Context(), s, ForgeEventOptions{
		AppID: in.AppID, Path: in.Path, EventType: in.EventType, Payload: in.Payload, ModuleKey: in.ModuleKey, NoSystemToken: in.NoSystemToken,
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, forgeAnswer(resp))
}

func (f *Fake) ctlForgeTrigger(w http.ResponseWriter, r *http.Request) {
	s, ok := f.ctlSite(w, r)
	if !ok {
		return
	}
	var in struct {
		AppID         string `json:"appId"`
		Path          string `json:"path"`
		ModuleKey     string `json:"moduleKey"`
		NoSystemToken bool   `json:"noSystemToken"`
	}
	if !ctlRead(w, r, &in) {
		return
	}
	resp, err := f.RunForgeTrigger(r.Context(), s, ForgeTriggerOptions{
		AppID: in.AppID, Path: in.Path, ModuleKey: in.ModuleKey, NoSystemToken: in.NoSystemToken,
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, forgeAnswer(resp))
}

// ctlForgeFIT hands out a FIT and OAuth tokens, for apps that call their
// remote directly in tests.
func (f *Fake) ctlForgeFIT(w http.ResponseWriter, r *http.Request) {
	s, ok := f.ctlSite(w, r)
	if !ok {
		return
	}
	var in struct {
		AppID       string         `json:"appId"`
		AccountID   string         `json:"accountId"`
		NoPrincipal bool           `json:"noPrincipal"`
		ModuleType  string         `json:"moduleType"`
		ModuleKey   string         `json:"moduleKey"`
		Context     map[string]any `json:"context"`
		NoContext   bool           `json:"noContext"`
		Extension   map[string]any `json:"extension"`
	}
	if !ctlRead(w, r, &in) {
		return
	}
	fit, err := f.ForgeFIT(s, FITOptions{
		AppID: in.AppID, AccountID: in.AccountID, NoPrincipal: in.NoPrincipal, ModuleType: in.ModuleType,
		ModuleKey: in.ModuleKey, Context: in.Context, NoContext: in.NoContext, Extension: in.Extension,
	})
	if err != nil {
		writeErr(w, err)
		return
	}
	account := ""
	if !in.NoPrincipal {
		account = in.AccountID
		if account == "" {
			account = s.DefaultAccountID
		}
	}
	system, user, err := f.ForgeTokens(s, in.AppID, account)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"token": fit, "systemToken": system, "userToken": user})
}
