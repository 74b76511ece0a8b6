package fakeatlassian

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
)

// Entity properties (issue and app properties) and the Connect license API.

// maxPropertyBytes is Jira's limit on one entity property value.
const maxPropertyBytes = 32 << 10

// readPropertyValue reads a JSON property value.
func readPropertyValue(w http.ResponseWriter, r *http.Request, product string) (json.RawMessage, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPropertyBytes+1))
	if err != nil || len(body) > maxPropertyBytes {
		writeProductError(w, product, http.StatusRequestEntityTooLarge, fmt.Sprintf("The property value is larger than %d bytes.", maxPropertyBytes))
		return nil, false
	}
	if !json.Valid(body) {
		writeProductError(w, product, http.StatusBadRequest, "The property value must be valid JSON.")
		return nil, false
	}
	return json.RawMessage(body), true
}

var propKeyOK = func(k string) bool { return k != "" && len(k) <= 255 }

func (f *Fake) restIssuePropertyKeys(w http.ResponseWriter, r *http.Request, rr *restRequest) {
	v, ok := apiVersion(w, r)
	if !ok {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	is := rr.site.issue(r.PathValue("key"))
	if is == nil {
		writeIssueNotFound(w)
		return
	}
	keys := []any{}
	props := rr.site.issueProps[is.ID]
	for _, k := range sortedKeys(props) {
		keys = append(keys, map[string]any{"key": k, "self": issueSelf(rr.site, is, v) + "/properties/" + k})
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
}

func (f *Fake) restIssueProperty(w http.ResponseWriter, r *http.Request, rr *restRequest) {
	if _, ok := apiVersion(w, r); !ok {
		return
	}
	prop := r.PathValue("prop")
	if !propKeyOK(prop) {
		writeProductError(w, ProductJira, http.StatusBadRequest, "The property key must have 1 to 255 characters.")
		return
	}
	var value json.RawMessage
	if r.Method == http.MethodPut {
		var ok bool
		if value, ok = readPropertyValue(w, r, ProductJira); !ok {
			return
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	is := rr.site.issue(r.PathValue("key"))
	if is == nil {
		writeIssueNotFound(w)
		return
	}
	props := rr.site.issueProps[is.ID]
	if props == nil {
		props = map[string]json.RawMessage{}
		rr.site.issueProps[is.ID] = props
	}
	servePropertyLocked(w, r, props, prop, value, ProductJira)
}

// servePropertyLocked does GET/PUT/DELETE of one property in props.
func servePropertyLocked(w http.ResponseWriter, r *http.Request, props map[string]json.RawMessage, prop string, value json.RawMessage, product string) {
	old, exists := props[prop]
	switch r.Method {
	case http.MethodGet:
		if !exists {
			writeProductError(w, product, http.StatusNotFound, fmt.Sprintf("The property with key '%s' does not exist.", prop))
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"key": prop, "value": old})
	case http.MethodPut:
		props[prop] = value
		if exists {
			writeJSON(w, http.StatusOK, map[string]any{"message": "Property updated.", "statusCode": 200})
		} else {
			writeJSON(w, http.StatusCreated, map[string]any{"message": "Property created.", "statusCode": 201})
		}
	case http.MethodDelete:
		if !exists {
			writeProductError(w, product, http.StatusNotFound, fmt.Sprintf("The property with key '%s' does not exist.", prop))
			return
		}
		delete(props, prop)
		w.WriteHeader(http.StatusNoContent)
	}
}

// ownApp refuses access to another app's Connect resources.
func ownApp(w http.ResponseWriter, r *http.Request, rr *restRequest) bool {
	if r.PathValue("appKey") != rr.caller.appKey {
		writeProductError(w, rr.site.info.Product, http.StatusForbidden, "An app may only access its own properties and license.")
		return false
	}
	return true
}

func (f *Fake) restAppPropertyKeys(w http.ResponseWriter, r *http.Request, rr *restRequest) {
	if !ownApp(w, r, rr) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	keys := []any{}
	for _, k := range sortedKeys(rr.site.appProps[rr.caller.appKey]) {
		keys = append(keys, map[string]any{"key": k, "self": rr.site.info.BaseURL + "/rest/atlassian-connect/1/addons/" + rr.caller.appKey + "/properties/" + k})
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
}

func (f *Fake) restAppProperty(w http.ResponseWriter, r *http.Request, rr *restRequest) {
	if !ownApp(w, r, rr) {
		return
	}
	product := rr.site.info.Product
	prop := r.PathValue("prop")
	if !propKeyOK(prop) {
		writeProductError(w, product, http.StatusBadRequest, "The property key must have 1 to 255 characters.")
		return
	}
	var value json.RawMessage
	if r.Method == http.MethodPut {
		var ok bool
		if value, ok = readPropertyValue(w, r, product); !ok {
			return
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	props := rr.site.appProps[rr.caller.appKey]
	if props == nil {
		props = map[string]json.RawMessage{}
		rr.site.appProps[rr.caller.appKey] = props
	}
	servePropertyLocked(w, r, props, prop, value, product)
}

// restAddon is the license API: GET /rest/atlassian-connect/1/addons/{appKey}.
func (f *Fake) restAddon(w http.ResponseWriter, r *http.Request, rr *restRequest) {
	if !ownApp(w, r, rr) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	a := rr.site.apps[rr.caller.appKey]
	out := map[string]any{
		"key": a.desc.Key, "version": "1.0.0", "state": strings.ToUpper(a.state),
		"host":  map[string]any{"product": productTitle(rr.site.info.Product), "contacts": []any{}},
		"links": map[string]any{"self": []map[string]string{{"href": rr.site.info.BaseURL + "/rest/atlassian-connect/1/addons/" + a.desc.Key}}},
	}
	if a.license == "active" || a.desc.EnableLicensing {
		out["license"] = map[string]any{
			"active": a.license == "active", "type": "COMMERCIAL", "evaluation": false,
			"supportEntitlementNumber": a.sen, "entitlementNumber": a.entitlementNumber,
			"subscriptionEndDate": nil, "billingPeriod": "MONTHLY",
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
