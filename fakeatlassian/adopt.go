package fakeatlassian

import (
	"context"
	"fmt"
)

// AdoptApp records the app whose descriptor is at descriptorURL as
// installed and enabled on site with sharedSecret, without sending any
// lifecycle callback: the site installed it long ago, and its backend got
// the secret from somewhere else (an import from another framework's
// store). From then on the fake signs iframes, context tokens and webhooks
// of the app on site with that secret, as for an app it installed. The
// app must not be on the site yet.
func (f *Fake) AdoptApp(ctx context.Context, site *Site, descriptorURL, sharedSecret string) (App, error) {
	if sharedSecret == "" {
		return App{}, fmt.Errorf("%w: an adopted app needs its shared secret", ErrInvalid)
	}
	d, err := f.fetchDescriptor(ctx, descriptorURL)
	if err != nil {
		return App{}, err
	}
	defer f.lockLifecycle(site)()
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.siteLocked(site)
	if err != nil {
		return App{}, err
	}
	if _, dup := s.apps[d.Key]; dup {
		return App{}, fmt.Errorf("%w: app %q is on site %q already", ErrConflict, d.Key, s.info.Name)
	}
	a := &appState{
		desc: d, descriptorURL: descriptorURL, state: AppEnabled, sharedSecret: sharedSecret,
		oauthClientID: f.randomHex(16), accountID: "557058:" + f.newUUID(), license: licenseValue(d.EnableLicensing),
	}
	s.apps[d.Key] = a
	s.appOrder = append(s.appOrder, d.Key)
	return a.snapshot(s), nil
}
