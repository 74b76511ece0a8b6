package fakeatlassian

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"

	"github.com/golang-jwt/jwt/v5"
)

// App states on a site.
const (
	AppEnabled     = "enabled"
	AppDisabled    = "disabled"
	AppUninstalled = "uninstalled"
)

// App is an app installed on a site, as the fake knows it.
type App struct {
	Key           string   `json:"key"`
	Name          string   `json:"name"`
	BaseURL       string   `json:"baseUrl"` // from the descriptor, without trailing '/'
	DescriptorURL string   `json:"descriptorUrl"`
	Site          string   `json:"site"`
	ClientKey     string   `json:"clientKey"`
	SharedSecret  string   `json:"sharedSecret"` // changes on Reinstall
	OAuthClientID string   `json:"oauthClientId"`
	AccountID     string   `json:"accountId"` // the app's own user on the site
	State         string   `json:"state"`     // AppEnabled, AppDisabled or AppUninstalled
	License       string   `json:"license"`   // "active" or "none": the lic knob
	Licensing     bool     `json:"enableLicensing"`
	Scopes        []string `json:"scopes"`
}

// appState is an app on one site. Guarded by Fake.mu.
type appState struct {
	desc              *descriptor
	descriptorURL     string
	state             string
	sharedSecret      string
	oauthClientID     string
	accountID         string
	license           string
	sen               string
	entitlementID     string
	entitlementNumber string
}

func (a *appState) snapshot(s *siteState) App {
	return App{
		Key: a.desc.Key, Name: a.desc.Name, BaseURL: a.desc.BaseURL, DescriptorURL: a.descriptorURL,
		Site: s.info.Name, ClientKey: s.info.ClientKey, SharedSecret: a.sharedSecret,
		OAuthClientID: a.oauthClientID, AccountID: a.accountID, State: a.state, License: a.license,
		Licensing: a.desc.EnableLicensing, Scopes: slices.Clone(a.desc.Scopes),
	}
}

// lifecyclePayload is the body of every lifecycle callback (PROTOCOL §2).
type lifecyclePayload struct {
	Key                      string `json:"key"`
	ClientKey                string `json:"clientKey"`
	SharedSecret             string `json:"sharedSecret,omitempty"`
	ServerVersion            string `json:"serverVersion"`
	PluginsVersion           string `json:"pluginsVersion"`
	BaseURL                  string `json:"baseUrl"`
	DisplayURL               string `json:"displayUrl"`
	ProductType              string `json:"productType"`
	Description              string `json:"description"`
	ServiceEntitlementNumber string `json:"serviceEntitlementNumber,omitempty"`
	EntitlementID            string `json:"entitlementId,omitempty"`
	EntitlementNumber        string `json:"entitlementNumber,omitempty"`
	OAuthClientID            string `json:"oauthClientId"`
	CloudID                  string `json:"cloudId"`
	EventType                string `json:"eventType"`
}

// App returns the app appKey on site.
func (f *Fake) App(site *Site, appKey string) (App, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, a, err := f.appLocked(site, appKey)
	if err != nil {
		return App{}, err
	}
	return a.snapshot(s), nil
}

// Apps lists the apps ever installed on site, uninstalled ones included.
func (f *Fake) Apps(site *Site) ([]App, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.siteLocked(site)
	if err != nil {
		return nil, err
	}
	out := make([]App, 0, len(s.appOrder))
	for _, k := range s.appOrder {
		out = append(out, s.apps[k].snapshot(s))
	}
	return out, nil
}

func (f *Fake) appLocked(site *Site, appKey string) (*siteState, *appState, error) {
	s, err := f.siteLocked(site)
	if err != nil {
		return nil, nil, err
	}
	a, ok := s.apps[appKey]
	if !ok {
		return nil, nil, fmt.Errorf("%w: app %q on site %q", ErrNotFound, appKey, s.info.Name)
	}
	return s, a, nil
}

// SetLicense sets the lic knob of an app on a site: true makes iframe
// URLs carry lic=active and the license API report an active license.
func (f *Fake) SetLicense(site *Site, appKey string, active bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, a, err := f.appLocked(site, appKey)
	if err != nil {
		return err
	}
	a.license = licenseValue(active)
	return nil
}

func licenseValue(active bool) string {
	if active {
		return "active"
	}
	return "none"
}

// Install installs the app whose descriptor is at descriptorURL on site,
// as an administrator would: it fetches and validates the descriptor,
// sends the signed `installed` callback (RS256, kid from the key server)
// and then `enabled` (HS256). Installing an app that is installed already
// is an upgrade: the descriptor is fetched again and `installed` is sent
// with the same shared secret (an app an administrator disabled stays
// disabled). A descriptor problem gives a *DescriptorError, a refused
// callback a *LifecycleError: a refused `installed` installs nothing, a
// refused `enabled` leaves the app installed but disabled.
func (f *Fake) Install(ctx context.Context, site *Site, descriptorURL string) (App, error) {
	defer f.lockLifecycle(site)()
	return f.install(ctx, site, descriptorURL, "", false)
}

// Reinstall installs appKey again from the descriptor URL it was installed
// from, with a new shared secret, and returns the app with its new secret.
// It works on uninstalled apps too.
func (f *Fake) Reinstall(ctx context.Context, site *Site, appKey string) (App, error) {
	defer f.lockLifecycle(site)()
	f.mu.Lock()
	_, a, err := f.appLocked(site, appKey)
	var descURL string
	if err == nil {
		descURL = a.descriptorURL
	}
	f.mu.Unlock()
	if err != nil {
		return App{}, err
	}
	return f.install(ctx, site, descURL, appKey, true)
}

// install does Install and Reinstall; wantKey, when set, must match the
// descriptor's key.
func (f *Fake) install(ctx context.Context, site *Site, descriptorURL, wantKey string, newSecret bool) (App, error) {
	f.mu.Lock()
	_, err := f.siteLocked(site)
	f.mu.Unlock()
	if err != nil {
		return App{}, err
	}
	d, err := f.fetchDescriptor(ctx, descriptorURL)
	if err != nil {
		return App{}, err
	}
	if wantKey != "" && d.Key != wantKey {
		return App{}, &DescriptorError{URL: descriptorURL, Problems: []string{fmt.Sprintf("key changed from %q to %q", wantKey, d.Key)}}
	}

	// Build the new app record aside; it replaces the old one only once
	// the app accepted `installed`.
	f.mu.Lock()
	s, err := f.siteLocked(site)
	if err != nil {
		f.mu.Unlock()
		return App{}, err
	}
	old := s.apps[d.Key]
	next := &appState{desc: d, descriptorURL: descriptorURL, state: AppDisabled}
	if old != nil {
		cp := *old
		next = &cp
		next.desc, next.descriptorURL = d, descriptorURL
		if old.state == AppUninstalled {
			next.state = AppDisabled
			newSecret = true
		}
	} else {
		newSecret = true
	}
	f.mu.Unlock()
	if old == nil {
		next.oauthClientID = f.randomHex(16)
		next.accountID = "557058:" + f.newUUID()
		next.license = licenseValue(d.EnableLicensing)
		if d.EnableLicensing {
			next.sen = "SEN-" + strconv.Itoa(1000000+int(binary.BigEndian.Uint16(f.randomBytes(2))))
			next.entitlementID = f.newUUID()
			next.entitlementNumber = "E-" + f.randomHex(4)
		}
	}
	if newSecret {
		next.sharedSecret = f.newSharedSecret()
	}

	if err := f.sendLifecycle(ctx, site, next, "installed"); err != nil {
		return App{}, err
	}
	f.mu.Lock()
	if s.apps[d.Key] == nil {
		s.appOrder = append(s.appOrder, d.Key)
	}
	wasDisabled := old != nil && old.state == AppDisabled
	s.apps[d.Key] = next
	if wasDisabled {
		// An upgrade does not re-enable what an administrator disabled.
		snap := next.snapshot(s)
		f.mu.Unlock()
		return snap, nil
	}
	next.state = AppEnabled
	f.mu.Unlock()

	if err := f.sendLifecycle(ctx, site, next, "enabled"); err != nil {
		f.mu.Lock()
		next.state = AppDisabled
		f.mu.Unlock()
		return App{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return next.snapshot(s), nil
}

// newSharedSecret returns a random secret of 64 URL-safe characters.
func (f *Fake) newSharedSecret() string {
	return base64.RawURLEncoding.EncodeToString(f.randomBytes(48))
}

// Enable enables a disabled app and sends `enabled`. A refused callback
// leaves the app disabled.
func (f *Fake) Enable(ctx context.Context, site *Site, appKey string) error {
	defer f.lockLifecycle(site)()
	f.mu.Lock()
	_, a, err := f.appLocked(site, appKey)
	if err == nil && a.state == AppUninstalled {
		err = fmt.Errorf("%w: app %q is uninstalled", ErrConflict, appKey)
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	if err := f.sendLifecycle(ctx, site, a, "enabled"); err != nil {
		return err
	}
	f.mu.Lock()
	a.state = AppEnabled
	f.mu.Unlock()
	return nil
}

// Disable disables an app and sends `disabled`. The app is disabled
// whatever it answers, as in the product; a refusal is still reported.
func (f *Fake) Disable(ctx context.Context, site *Site, appKey string) error {
	defer f.lockLifecycle(site)()
	f.mu.Lock()
	_, a, err := f.appLocked(site, appKey)
	if err == nil && a.state == AppUninstalled {
		err = fmt.Errorf("%w: app %q is uninstalled", ErrConflict, appKey)
	}
	if err == nil {
		a.state = AppDisabled
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	return f.sendLifecycle(ctx, site, a, "disabled")
}

// Uninstall sends `disabled` (when the app was enabled) and the signed
// `uninstalled` callback, then forgets the shared secret: the app's tokens
// and OAuth grants on this site stop working. The app is uninstalled
// whatever it answers; a refusal is still reported.
func (f *Fake) Uninstall(ctx context.Context, site *Site, appKey string) error {
	defer f.lockLifecycle(site)()
	f.mu.Lock()
	_, a, err := f.appLocked(site, appKey)
	if err == nil && a.state == AppUninstalled {
		err = fmt.Errorf("%w: app %q is uninstalled already", ErrConflict, appKey)
	}
	wasEnabled := err == nil && a.state == AppEnabled
	if err == nil {
		a.state = AppDisabled
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	var errDisabled error
	if wasEnabled {
		errDisabled = f.sendLifecycle(ctx, site, a, "disabled")
	}
	errUninstalled := f.sendLifecycle(ctx, site, a, "uninstalled")

	f.mu.Lock()
	a.state = AppUninstalled
	a.sharedSecret = ""
	for tok, g := range f.grants {
		if g.site == site.Name && g.appKey == appKey {
			delete(f.grants, tok)
		}
	}
	f.mu.Unlock()
	if errUninstalled != nil {
		return errUninstalled
	}
	return errDisabled
}

// sendLifecycle POSTs one lifecycle callback. installed and uninstalled
// are signed RS256 by the install key (signed install); enabled and
// disabled HS256 with the shared secret. An event the descriptor has no
// URL for is skipped, except installed, which is required.
func (f *Fake) sendLifecycle(ctx context.Context, site *Site, a *appState, event string) error {
	f.mu.Lock()
	d := a.desc
	p := lifecyclePayload{
		Key: d.Key, ClientKey: site.ClientKey, ServerVersion: "100300", PluginsVersion: "1001.0.0-SNAPSHOT",
		BaseURL: site.BaseURL, DisplayURL: site.BaseURL, ProductType: site.Product,
		Description:              "Atlassian " + productTitle(site.Product) + " at " + site.BaseURL,
		ServiceEntitlementNumber: a.sen, EntitlementID: a.entitlementID, EntitlementNumber: a.entitlementNumber,
		OAuthClientID: a.oauthClientID, CloudID: site.CloudID, EventType: event,
	}
	secret := a.sharedSecret
	f.mu.Unlock()

	var path string
	switch event {
	case "installed":
		path = d.Lifecycle.Installed
		// Only `installed` carries the secret: it is how the app learns it.
		p.SharedSecret = secret
	case "uninstalled":
		path = d.Lifecycle.Uninstalled
	case "enabled":
		path = d.Lifecycle.Enabled
	case "disabled":
		path = d.Lifecycle.Disabled
	}
	if path == "" {
		return nil
	}
	target := d.BaseURL + path
	claims := f.productClaims(site.ClientKey, qshOfURL(http.MethodPost, target, d.BaseURL), tokenLifetime)
	claims["context"] = map[string]any{}
	var token string
	var err error
	if event == "installed" || event == "uninstalled" {
		claims["aud"] = jwt.ClaimStrings{d.BaseURL}
		claims["sub"] = site.ClientKey
		token, err = signRS256(f.signingKey(), claims)
	} else {
		token, err = signHS256(secret, claims)
	}
	if err != nil {
		return err
	}
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("fakeatlassian: encode %s payload: %w", event, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return &LifecycleError{Event: event, URL: target, Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "JWT "+token)
	req.Header.Set("User-Agent", "fakeatlassian (Atlassian Connect)")

	start := f.now()
	call := Call{Direction: DirectionOut, Kind: KindLifecycle, Site: site.Name, App: d.Key, Method: http.MethodPost, URL: target, Event: event}
	resp, err := f.client.Do(req)
	if err != nil {
		call.Error = err.Error()
		f.record(call, start)
		return &LifecycleError{Event: event, URL: target, Err: err}
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, excerptBytes+1))
	call.Status = resp.StatusCode
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		call.Error = "app refused " + event
		f.record(call, start)
		return &LifecycleError{Event: event, URL: target, Status: resp.StatusCode, Body: excerpt(answer)}
	}
	f.record(call, start)
	return nil
}

func productTitle(product string) string {
	if product == ProductConfluence {
		return "Confluence"
	}
	return "JIRA"
}
