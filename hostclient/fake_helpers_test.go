package hostclient_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/fakeatlassian"
)

// fakeSite is a site of a fake Atlassian with an app installed on it.
type fakeSite struct {
	fake *fakeatlassian.Fake
	site *fakeatlassian.Site
	in   *tenon.Installation
	stop func()
}

// startFakeSite starts a fake Atlassian on 127.0.0.1 with one site named
// name and installs a minimal app with scopes on it, the way an
// administrator would: descriptor fetch, signed `installed`, `enabled`.
// The app's side only acknowledges the callbacks; the fake's record of
// the installation gives the shared secret and oauthClientId.
// now is the fake's clock (nil: time.Now).
func startFakeSite(name, product string, now func() time.Time, scopes ...string) (*fakeSite, error) {
	f := fakeatlassian.New(fakeatlassian.Options{
		Now:                now,
		WebhookRetryDelays: []time.Duration{},
		Logger:             slog.New(slog.DiscardHandler),
	})
	if err := f.Start("127.0.0.1:0"); err != nil {
		return nil, err
	}
	app := newDescriptorServer(scopes)
	stop := func() {
		app.Close()
		f.Close()
	}
	site, err := f.AddSite(fakeatlassian.SiteOptions{Name: name, Product: product})
	if err != nil {
		stop()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := f.Install(ctx, site, app.URL+"/atlassian-connect.json")
	if err != nil {
		stop()
		return nil, err
	}
	in := &tenon.Installation{
		ClientKey:     a.ClientKey,
		AppKey:        a.Key,
		SharedSecret:  a.SharedSecret,
		BaseURL:       site.BaseURL,
		ProductType:   site.Product,
		OAuthClientID: a.OAuthClientID,
		CloudID:       site.CloudID,
		State:         tenon.StateEnabled,
	}
	return &fakeSite{fake: f, site: site, in: in, stop: stop}, nil
}

// newFakeSite is startFakeSite for tests: it fails t and stops at cleanup.
func newFakeSite(t *testing.T, name, product string, now func() time.Time, scopes ...string) *fakeSite {
	t.Helper()
	fs, err := startFakeSite(name, product, now, scopes...)
	if err != nil {
		t.Fatalf("fake site %s: %v", name, err)
	}
	t.Cleanup(fs.stop)
	return fs
}

// calls counts what the fake received of one kind (fakeatlassian.KindREST,
// KindOAuth).
func (fs *fakeSite) calls(kind string) []fakeatlassian.Call {
	var out []fakeatlassian.Call
	for _, c := range fs.fake.Calls() {
		if c.Kind == kind && c.Direction == fakeatlassian.DirectionIn {
			out = append(out, c)
		}
	}
	return out
}

// newDescriptorServer serves the descriptor of a minimal Connect app and
// acknowledges its lifecycle callbacks.
func newDescriptorServer(scopes []string) *httptest.Server {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/atlassian-connect.json":
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{
				"key":            appKey,
				"name":           "hostclient test app",
				"baseUrl":        srv.URL,
				"authentication": map[string]any{"type": "jwt"},
				"lifecycle":      map[string]any{"installed": "/installed", "enabled": "/enabled"},
				"scopes":         scopes,
				"apiMigrations":  map[string]any{"signed-install": true, "context-qsh": true},
			})
		case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/"):
			w.WriteHeader(http.StatusNoContent)
		default:
			http.Error(w, "not found", http.StatusNotFound)
		}
	}))
	return srv
}
