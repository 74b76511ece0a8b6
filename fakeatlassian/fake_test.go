package fakeatlassian_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tenon-dev/tenon/fakeatlassian"
)

func TestZeroOptionsAndLifecycle(t *testing.T) {
	t.Parallel()
	f := fakeatlassian.New(fakeatlassian.Options{})
	if _, err := f.AddSite(fakeatlassian.SiteOptions{Name: "early"}); err == nil {
		t.Error("AddSite before the fake has a URL succeeded")
	}
	if err := f.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := f.Start("127.0.0.1:0"); err == nil {
		t.Error("second Start succeeded")
	}
	if !strings.HasPrefix(f.URL(), "http://127.0.0.1:") {
		t.Errorf("URL = %s", f.URL())
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// A fake that never started closes cleanly too.
	if err := fakeatlassian.New(fakeatlassian.Options{}).Close(); err != nil {
		t.Error(err)
	}
}

func TestStartListener(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	f := fakeatlassian.New(fakeatlassian.Options{URL: url})
	if err := f.StartListener(ln); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.URL() != url {
		t.Errorf("URL = %s, want %s", f.URL(), url)
	}
	if r := do(t, "GET", url+"/_fake", "", nil); r.Status != http.StatusOK {
		t.Errorf("control API: %d", r.Status)
	}
}

func TestHandlerEmbedding(t *testing.T) {
	t.Parallel()
	ts := httptest.NewUnstartedServer(nil)
	f := fakeatlassian.New(fakeatlassian.Options{URL: "http://" + ts.Listener.Addr().String()})
	ts.Config.Handler = f.Handler()
	ts.Start()
	defer ts.Close()
	defer f.Close()

	site, err := f.AddSite(fakeatlassian.SiteOptions{Name: "embedded", Product: fakeatlassian.ProductConfluence})
	if err != nil {
		t.Fatal(err)
	}
	if site.BaseURL != ts.URL+"/s/embedded/wiki" {
		t.Errorf("base URL = %s", site.BaseURL)
	}
	ta := newTestApp(t, f, "embedded-app")
	ta.setDescriptor("modules", map[string]any{"generalPages": []any{map[string]any{"key": "main-page", "url": "/page?space={space.key}"}}})
	app := ta.install(site)
	if r := asApp(t, app, site, "GET", "/rest/api/content", nil); r.Status != http.StatusOK {
		t.Errorf("content list: %d %s", r.Status, r.Body)
	}
	p := loadPage(t, f.ModulePageURL(site, app.Key, "main-page")+"?content=65538")
	if !strings.Contains(p.src, "space=DEMO") || !strings.Contains(p.src, "cp=%2Fs%2Fembedded%2Fwiki") {
		t.Errorf("Confluence iframe src = %s", p.src)
	}
	if got := f.Sites(); len(got) != 1 || got[0].Name != "embedded" {
		t.Errorf("sites = %+v", got)
	}
}

func TestSiteClientKeyOption(t *testing.T) {
	t.Parallel()
	f := fakeatlassian.New(fakeatlassian.Options{})
	if err := f.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := f.AddSite(fakeatlassian.SiteOptions{Name: "fixed", ClientKey: "dev-site-1"})
	if err != nil {
		t.Fatal(err)
	}
	if s.ClientKey != "dev-site-1" {
		t.Errorf("clientKey = %q", s.ClientKey)
	}
	for _, bad := range []string{"has space", "slash/x", strings.Repeat("k", 129), "quote\""} {
		if _, err := f.AddSite(fakeatlassian.SiteOptions{Name: "bad", ClientKey: bad}); err == nil {
			t.Errorf("clientKey %q accepted", bad)
		}
	}
}
