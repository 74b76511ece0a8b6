package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tenon-dev/tenon/fakeatlassian"
)

// TestBrowserChecklist opens the fake Jira's issue page in a headless
// Chromium, as a user would, and uses the checklist panel in its iframe:
// the app's page loads the fake's all.js, gets context tokens from the
// host page over postMessage, and calls the app's API with them. An item
// added through the page must survive a reload of the page.
func TestBrowserChecklist(t *testing.T) {
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
	issue, err := e.fake.GetIssue(site, issueKey)
	if err != nil {
		t.Fatal(err)
	}

	// One bound for everything the browser does, start-up included: the
	// first action binds the browser's life to this context.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
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
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "chromium-profile")),
		chromedp.WindowSize(1280, 900),
	)
	defer cancelAlloc()
	bctx, closeBrowser := chromedp.NewContext(allocCtx)
	// Cancelling the context ends the tab and kills the browser process.
	defer closeBrowser()
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}

	// The console of the page and of its same-site iframes, for the
	// failure messages: a broken host script or panel script shows up
	// there first.
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
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s\nbrowser console:%s", fmt.Sprintf(format, args...), console.String())
	}

	pageURL := e.fake.IssuePageURL(site, issueKey)
	if err := chromedp.Do(bctx, chromedp.Navigate(pageURL)); err != nil {
		fail("open %s: %v", pageURL, err)
	}
	frame, err := waitPanel(bctx)
	if err != nil {
		fail("the checklist panel did not get ready: %v", err)
	}
	summary, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(".issue-summary"), chromedp.FromNode(frame)))
	if err != nil || summary != issue.Summary {
		fail("issue summary in the panel: %q (%v), want %q", summary, err, issue.Summary)
	}
	if n, err := itemCount(bctx, frame); err != nil || n != 0 {
		fail("items before adding one: %d (%v), want 0", n, err)
	}

	// Type an item and click Add, as a user does. The page asks the host
	// for a context token (AP.context.getToken over postMessage) and posts
	// the item to the app's API.
	const text = "Check the panel in a real browser"
	addCtx, cancelAdd := context.WithTimeout(bctx, 20*time.Second)
	defer cancelAdd()
	if err := chromedp.Do(addCtx,
		chromedp.SendKeys(chromedp.CSS("#new-item"), text, chromedp.FromNode(frame)),
		chromedp.Click(chromedp.CSS("#add-item"), chromedp.FromNode(frame)),
		chromedp.WaitVisible(chromedp.CSS("#items li"), chromedp.FromNode(frame)),
	); err != nil {
		errText, _ := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#error"), chromedp.FromNode(frame)))
		fail("add an item: %v; the panel says %q", err, errText)
	}
	texts, err := itemTextsIn(bctx, frame)
	if err != nil || !slices.Equal(texts, []string{text}) {
		fail("items after adding: %q (%v), want [%q]", texts, err, text)
	}
	if errText, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#error"), chromedp.FromNode(frame))); err != nil || errText != "" {
		fail("the panel shows an error after adding: %q (%v)", errText, err)
	}
	// The token reached the panel through the bridge: all.js asked the
	// host page over postMessage, and the host page the fake's endpoint.
	tokens := e.calls(func(c fakeatlassian.Call) bool {
		return c.Kind == fakeatlassian.KindHost && strings.HasSuffix(c.URL, "/token") && c.Status == http.StatusOK
	})
	if len(tokens) == 0 {
		fail("the fake's host page handed out no context token")
	}

	// Reload the whole product page: the panel is rendered anew by the
	// app, from the store.
	if err := chromedp.Do(bctx, chromedp.Reload()); err != nil {
		fail("reload: %v", err)
	}
	frame, err = waitPanel(bctx)
	if err != nil {
		fail("the checklist panel did not get ready after the reload: %v", err)
	}
	texts, err = itemTextsIn(bctx, frame)
	if err != nil || !slices.Equal(texts, []string{text}) {
		fail("items after the reload: %q (%v), want [%q]", texts, err, text)
	}
	// And the app's API agrees, outside the browser.
	got := e.checklist(e.api(http.MethodGet, e.contextToken(site, issueKey), issueKey, "", nil), http.StatusOK)
	if !slices.Equal(itemTexts(got), []string{text}) || got.Items[0].CreatedBy != site.DefaultAccountID {
		fail("stored checklist: %+v, want the item added by %s", got.Items, site.DefaultAccountID)
	}

	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		fail("screenshot: %v", err)
	}
	dir := os.Getenv("TENON_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("screenshot directory: %v", err)
	}
	shot := filepath.Join(dir, "checklist-issue-page.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatalf("save the screenshot: %v", err)
	}
	t.Logf("screenshot of the issue page with the checklist panel: %s", shot)
}

// waitPanel waits until the checklist panel's iframe has loaded and its
// script has marked the checklist ready, and returns the iframe's node.
// The node is looked up afresh on every try: the iframe's document
// changes while it loads, and a node from before a reload is gone.
func waitPanel(ctx context.Context) (*chromedp.Node, error) {
	const ready = `#checklist[data-ready="true"]`
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var last error
	for {
		if err := ctx.Err(); err != nil {
			return nil, errors.Join(err, last)
		}
		try, cancel := context.WithTimeout(ctx, 3*time.Second)
		nodes, err := chromedp.Run(try, chromedp.Nodes(chromedp.CSS(`iframe[src*="/panel?"]`)))
		if err == nil {
			err = chromedp.Do(try, chromedp.WaitVisible(chromedp.CSS(ready), chromedp.FromNode(nodes[0])))
		}
		cancel()
		if err == nil {
			return nodes[0], nil
		}
		last = err
	}
}

// itemCount counts the checklist's items in the panel, at once.
func itemCount(ctx context.Context, frame *chromedp.Node) (int, error) {
	ids, err := chromedp.Run(ctx, chromedp.QueryNodeIDs(chromedp.CSSAll("#items li"), chromedp.AtLeast(0), chromedp.FromNode(frame)))
	return len(ids), err
}

// itemTextsIn reads the texts of the checklist's items in the panel.
func itemTextsIn(ctx context.Context, frame *chromedp.Node) ([]string, error) {
	nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll("#items li .text"), chromedp.AtLeast(0), chromedp.FromNode(frame)))
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, n := range nodes {
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.NodeIDs{n.NodeID}, chromedp.FromNode(frame)))
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// consoleLog collects browser console lines from the reading goroutine.
type consoleLog struct {
	mu    sync.Mutex
	lines []string
}

func (c *consoleLog) add(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, line)
}

func (c *consoleLog) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.lines) == 0 {
		return " (empty)"
	}
	return joinLines(c.lines)
}
