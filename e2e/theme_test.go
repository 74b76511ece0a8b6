package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tenon-dev/tenon/fakeatlassian"
)

// themeTokens are the design-token values the screenshot test expects in
// each theme: the product's page and the app's panel must both use them.
var themeTokens = map[string]struct {
	surface, text, borderInput, brandBold, textInverse string
}{
	"light": {surface: "#FFFFFF", text: "#292A2E", borderInput: "#8C8F97", brandBold: "#1868DB", textInverse: "#FFFFFF"},
	"dark":  {surface: "#1F1F21", text: "#CECFD2", borderInput: "#7E8188", brandBold: "#669DF1", textInverse: "#1F1F21"},
}

// TestBrowserTheme opens the fake Jira's issue page with the checklist
// panel in headless Chromium in the light and in the dark theme
// (?theme=), and checks by computed style that the page and the framed
// panel draw with that theme's design tokens: the panel took the theme
// from the product through AP.theming.initializeTheming, and its checkbox
// and buttons have the design system's look. The screenshots of both
// themes are saved to TENON_SCREENSHOT_DIR when it is set.
func TestBrowserTheme(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("TENON_REQUIRE_CHROMIUM") == "1" {
			t.Fatalf("TENON_REQUIRE_CHROMIUM=1 but no chromium on PATH: %v", err)
		}
		t.Skip("chromium is not installed; set TENON_REQUIRE_CHROMIUM=1 to make this a failure")
	}
	t.Parallel()

	e := newEnv(t, envOptions{})
	site := e.addSite("acme", fakeatlassian.ProductJira)
	e.install(site)
	// Two items, one done: the panel shows a checked and an unchecked box.
	tok := e.contextToken(site, issueKey)
	e.checklist(e.api(http.MethodPost, tok, issueKey, "/items", map[string]any{"text": "Write the release notes"}), http.StatusCreated)
	added := e.checklist(e.api(http.MethodPost, tok, issueKey, "/items", map[string]any{"text": "Check both themes"}), http.StatusCreated)
	e.checklist(e.api(http.MethodPatch, tok, issueKey, "/items/"+added.Items[1].ID, map[string]any{"done": true}), http.StatusOK)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "chromium-profile")),
		chromedp.WindowSize(1280, 800),
	)
	defer cancelAlloc()
	bctx, closeBrowser := chromedp.NewContext(allocCtx)
	defer closeBrowser()
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	console := &consoleLog{}
	consoleDone := make(chan struct{})
	go func() {
		defer close(consoleDone)
		for m, err := range chromedp.Console(bctx) {
			if err != nil {
				return
			}
			console.add(fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
		}
	}()
	defer func() {
		closeBrowser()
		<-consoleDone
	}()

	dir := os.Getenv("TENON_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("screenshot directory: %v", err)
	}

	for _, theme := range []string{"light", "dark"} {
		want := themeTokens[theme]
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("%s theme: %s\nbrowser console:%s", theme, fmt.Sprintf(format, args...), console.String())
		}
		pageURL := e.fake.IssuePageURL(site, issueKey) + "?theme=" + theme
		if err := chromedp.Do(bctx, chromedp.Navigate(pageURL)); err != nil {
			fail("open %s: %v", pageURL, err)
		}
		frame, err := waitPanel(bctx)
		if err != nil {
			fail("the checklist panel did not get ready: %v", err)
		}

		// The product page: its html element names the theme, and its
		// body is drawn on the theme's surface in the theme's text colour.
		if mode := attr(bctx, "html", "data-color-mode", nil); mode != theme {
			fail("the page's data-color-mode is %q", mode)
		}
		page := styleOf(bctx, "body", nil)
		checkColor(t, theme, "page background", page["background-color"], want.surface)
		checkColor(t, theme, "page text", page["color"], want.text)

		// The panel asked the product for the theme (AP.theming) and got
		// the html attributes the design system's tokens select on.
		if mode := attr(bctx, "html", "data-color-mode", frame); mode != theme {
			fail("the panel's data-color-mode is %q, want %q", mode, theme)
		}
		if dt := attr(bctx, "html", "data-theme", frame); !strings.Contains(dt, "dark:dark") || !strings.Contains(dt, "light:light") {
			fail("the panel's data-theme is %q", dt)
		}
		body := styleOf(bctx, "body", frame)
		checkColor(t, theme, "panel background", body["background-color"], want.surface)
		checkColor(t, theme, "panel text", body["color"], want.text)

		// The checkbox: a 14px square with the input border; checked, the
		// brand colour.
		open := styleOf(bctx, `#items li:not(.done) input[type="checkbox"]`, frame)
		if open["appearance"] != "none" || open["width"] != "14px" || open["height"] != "14px" || open["border-top-width"] != "1px" {
			t.Errorf("%s theme: checkbox appearance/size/border = %s/%s×%s/%s, want none/14px×14px/1px",
				theme, open["appearance"], open["width"], open["height"], open["border-top-width"])
		}
		checkColor(t, theme, "checkbox border", open["border-top-color"], want.borderInput)
		done := styleOf(bctx, `#items li.done input[type="checkbox"]`, frame)
		checkColor(t, theme, "checked checkbox background", done["background-color"], want.brandBold)
		checkColor(t, theme, "checked checkbox border", done["border-top-color"], want.brandBold)

		// The primary button (Add) and the subtle one (delete).
		primary := styleOf(bctx, "#add-item", frame)
		checkColor(t, theme, "primary button background", primary["background-color"], want.brandBold)
		checkColor(t, theme, "primary button text", primary["color"], want.textInverse)
		if primary["border-top-left-radius"] != "4px" || primary["height"] != "32px" {
			t.Errorf("%s theme: primary button radius/height = %s/%s, want 4px/32px", theme, primary["border-top-left-radius"], primary["height"])
		}
		subtle := styleOf(bctx, "#items .delete", frame)
		if subtle["background-color"] != "rgba(0, 0, 0, 0)" || subtle["border-top-color"] != "rgba(0, 0, 0, 0)" {
			t.Errorf("%s theme: subtle button background/border = %s/%s, want transparent", theme, subtle["background-color"], subtle["border-top-color"])
		}

		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			fail("screenshot: %v", err)
		}
		shot := filepath.Join(dir, "checklist-issue-"+theme+".png")
		if err := os.WriteFile(shot, png, 0o644); err != nil {
			t.Fatalf("save the screenshot: %v", err)
		}
		t.Logf("screenshot of the issue page in the %s theme: %s", theme, shot)
	}
}

// styleOf reads the computed style of the first element matching sel, in
// the document of frame (nil: the page).
func styleOf(ctx context.Context, sel string, frame *chromedp.Node) map[string]string {
	var opts []chromedp.QueryOption
	if frame != nil {
		opts = append(opts, chromedp.FromNode(frame))
	}
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out := map[string]string{}
	props, err := chromedp.Run(tctx, chromedp.ComputedStyle(chromedp.CSS(sel), opts...))
	if err != nil {
		out["error"] = err.Error()
		return out
	}
	for _, p := range props {
		out[p.Name] = p.Value
	}
	return out
}

// attr reads an attribute of the first element matching sel, in the
// document of frame (nil: the page); "" when it is absent.
func attr(ctx context.Context, sel, name string, frame *chromedp.Node) string {
	var opts []chromedp.QueryOption
	if frame != nil {
		opts = append(opts, chromedp.FromNode(frame))
	}
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	a, err := chromedp.Run(tctx, chromedp.AttributeValue(chromedp.CSS(sel), name, opts...))
	if err != nil {
		return ""
	}
	return a.Value
}

// checkColor compares a computed colour with a token's opaque #RRGGBB value.
func checkColor(t *testing.T, theme, what, got, hex string) {
	t.Helper()
	if want := cssRGB(hex); got != want {
		t.Errorf("%s theme: %s is %q, want %s (%s)", theme, what, got, want, hex)
	}
}

// cssRGB writes #RRGGBB the way getComputedStyle does: rgb(r, g, b).
func cssRGB(hex string) string {
	n, err := strconv.ParseUint(strings.TrimPrefix(hex, "#"), 16, 32)
	if err != nil || len(hex) != 7 {
		panic("cssRGB: not #RRGGBB: " + hex)
	}
	return fmt.Sprintf("rgb(%d, %d, %d)", n>>16, n>>8&0xff, n&0xff)
}
