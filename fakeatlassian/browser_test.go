package fakeatlassian_test

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/fakeatlassian"
)

// TestBrowserBridge loads a general page in headless Chromium, in the dark
// theme: the app's iframe (another origin) uses all.js to get a context
// token, its context (which names the theme) and a REST answer through
// host.js. Skipped when no Chromium is found or
// with -short.
func TestBrowserBridge(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("browser test skipped with -short")
	}
	browser := os.Getenv("TENON_TEST_BROWSER")
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if browser != "" {
			break
		}
		if p, err := exec.LookPath(name); err == nil {
			browser = p
		}
	}
	if browser == "" {
		if os.Getenv("TENON_REQUIRE_CHROMIUM") == "1" {
			t.Fatal("no Chromium found, and TENON_REQUIRE_CHROMIUM=1 requires the browser test")
		}
		t.Skip("no Chromium found (set TENON_TEST_BROWSER)")
	}

	f := newFake(t, fakeatlassian.Options{})
	site := addSite(t, f, "acme", "")
	ta := newTestApp(t, f, "browser")
	app := ta.install(site)
	bob := site.Users[1].AccountID

	// The profile directory is removed by hand: Chromium's helper
	// processes may still be writing to it when the test ends.
	profile, err := os.MkdirTemp("", "fakeatlassian-browser-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	page := f.ModulePageURL(site, app.Key, "browser-page") + "?issue=DEMO-1&theme=dark&as=" + url.QueryEscape(bob)
	cmd := exec.Command(browser, "--headless=new", "--no-sandbox", "--disable-gpu",
		"--no-first-run", "--disable-quic", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--user-data-dir="+profile, "--virtual-time-budget=5000", "--dump-dom", page)
	if err := cmd.Start(); err != nil {
		os.RemoveAll(profile)
		if os.Getenv("TENON_REQUIRE_CHROMIUM") == "1" {
			t.Fatalf("cannot start %s: %v", browser, err)
		}
		t.Skipf("cannot start %s: %v", browser, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	defer func() {
		// Let the browser finish on its own; stop it if it does not.
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		os.RemoveAll(profile)
	}()

	var report map[string]any
	select {
	case b := <-ta.reports:
		if err := json.Unmarshal(b, &report); err != nil {
			t.Fatalf("report %s: %v", b, err)
		}
	case <-ctx.Done():
		t.Fatal("the app page never reported; the AP bridge did not answer")
	}
	if report["error"] != nil {
		t.Fatalf("AP error in the browser: %v", report["error"])
	}
	claims := verifyFrameToken(t, report["token"].(string), app.SharedSecret)
	if claims["qsh"] != "context-qsh" || claims["sub"] != bob {
		t.Errorf("context token claims = %v", claims)
	}
	if _, ok := report["callbackToken"].(string); !ok {
		t.Errorf("callback-style getToken gave %v", report["callbackToken"])
	}
	if report["myself"].(map[string]any)["accountId"] != bob {
		t.Errorf("AP.request myself = %v", report["myself"])
	}
	if report["notFoundStatus"] != float64(404) {
		t.Errorf("AP.request 404 status = %v", report["notFoundStatus"])
	}
	issue := report["context"].(map[string]any)["jira"].(map[string]any)["issue"].(map[string]any)
	if issue["key"] != "DEMO-1" {
		t.Errorf("context = %v", report["context"])
	}
	// The context names the page's theme, as the product's does.
	if theme, _ := report["context"].(map[string]any)["theme"].(map[string]any); theme["colorMode"] != "dark" || theme["light"] != "light" {
		t.Errorf("context theme = %v, want colorMode dark", report["context"])
	}
	// AP.theming.initializeTheming marks the frame's html element.
	if report["colorMode"] != "dark" || report["dataTheme"] != "dark:dark light:light spacing:spacing" {
		t.Errorf("after AP.theming.initializeTheming: data-color-mode %v, data-theme %v", report["colorMode"], report["dataTheme"])
	}
	if th, _ := report["theming"].(map[string]any); th["colorMode"] != "dark" {
		t.Errorf("AP.theming.initializeTheming gave %v", report["theming"])
	}
	if report["user"].(map[string]any)["atlassianAccountId"] != bob {
		t.Errorf("user = %v", report["user"])
	}
}
