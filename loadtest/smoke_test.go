package loadtest_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tenon-dev/tenon/cli"
	"github.com/tenon-dev/tenon/examples/checklist"
	"github.com/tenon-dev/tenon/loadtest"
	"github.com/tenon-dev/tenon/tenontest"
)

// smokeMix has every route kind of the checklist app.
const smokeMix = `{
  "tenants": 8, "issuesPerTenant": 4, "skew": "zipf",
  "routes": [
    {"kind": "page", "module": "checklist-panel", "share": 40},
    {"kind": "api", "method": "GET", "path": "/api/checklists/{issue.key}", "share": 25},
    {"kind": "api", "method": "POST", "path": "/api/checklists/{issue.key}/items", "body": {"text": "smoke"}, "share": 10},
    {"kind": "webhook", "event": "jira:issue_deleted", "share": 5},
    {"kind": "forge-invoke", "method": "GET", "path": "/forge/checklists/{issue.key}", "share": 15},
    {"kind": "forge-event", "path": "/forge/events/issue-deleted", "event": "avi:jira:deleted:issue", "share": 5}
  ],
  "product": {"latencyMs": 1, "failEvery": 50}
}`

// TestSmokeProfiles runs each profile briefly against the checklist app
// (in process, SQLite, the fake Atlassian it trusts) and checks what the
// reports say, not only that they exist. Rates are low: the figures are
// not the point, the shape of the reports is.
func TestSmokeProfiles(t *testing.T) {
	env := tenontest.Start(t, checklist.New(checklist.Options{}), tenontest.Options{Forge: true})
	metricsURL := serveAdmin(t, env.Backend)
	mix, err := loadtest.ParseMix([]byte(smokeMix))
	if err != nil {
		t.Fatal(err)
	}
	man, err := loadtest.ReadManifest("../examples/checklist/manifest.yml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	run := func(name, profile, model string, po loadtest.ProfileOptions, slo string, max uint64) *loadtest.Report {
		t.Helper()
		sched, err := loadtest.NewSchedule(profile, po)
		if err != nil {
			t.Fatal(err)
		}
		sched.Max = max
		s, err := loadtest.ParseSLO(slo)
		if err != nil {
			t.Fatal(err)
		}
		o := loadtest.Options{
			Target: env.BaseURL, Manifest: man, Mix: mix, Schedule: sched, Model: model, Workers: 4,
			Window: 500 * time.Millisecond, SLO: s, StopOnBreak: profile == loadtest.ProfileStress, Fake: env.Fake,
			Seed: 3, SitePrefix: name,
			Sampler: &loadtest.Sampler{Proc: &loadtest.ProcReader{Root: "/proc", PID: os.Getpid(), TicksPerSecond: 100},
				MetricsURL: metricsURL, Client: &http.Client{Timeout: 5 * time.Second}, Interval: 500 * time.Millisecond},
		}
		rep, err := cli.RunLoad(context.Background(), o, filepath.Join(dir, name), new(strings.Builder))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		back, err := loadtest.ReadReport(filepath.Join(dir, name+".json"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkReport(t, name, back, filepath.Join(dir, name+".html"))
		return rep
	}

	load := run("load", loadtest.ProfileLoad, loadtest.ModelOpen, loadtest.ProfileOptions{Rate: 60, Duration: 3 * time.Second}, "p99<5s,errors<50%", 0)
	if !load.Passed || len(load.SLO) != 2 {
		t.Errorf("load: verdict %v %+v", load.Passed, load.SLO)
	}
	// Every route kind was sent and answered.
	for _, r := range load.Routes {
		if r.OK == 0 {
			t.Errorf("load: route %s: %d sent, none answered OK (%v)", r.Name, r.Count, r.Errors)
		}
	}
	if len(load.Routes) != len(mix.Routes) {
		t.Errorf("load: %d routes in the report, want %d", len(load.Routes), len(mix.Routes))
	}

	strict := run("strict", loadtest.ProfileLoad, loadtest.ModelOpen, loadtest.ProfileOptions{Rate: 40, Duration: 1500 * time.Millisecond}, "p50<1us", 0)
	if strict.Passed || strict.SLO[0].Met {
		t.Errorf("strict: an impossible SLO passed: %+v", strict.SLO)
	}

	stress := run("stress", loadtest.ProfileStress, loadtest.ModelOpen, loadtest.ProfileOptions{Rate: 20, Peak: 400, Duration: 5 * time.Second}, "p99<2s", 0)
	if stress.Analysis.Knee == nil && len(stress.Analysis.Notes) == 0 {
		t.Errorf("stress: neither a knee nor a note: %+v", stress.Analysis)
	}

	spike := run("spike", loadtest.ProfileSpike, loadtest.ModelOpen, loadtest.ProfileOptions{Rate: 30, Peak: 150, Duration: 5 * time.Second}, "", 0)
	if spike.Analysis.BaselineP99 <= 0 || !strings.Contains(strings.Join(spike.Analysis.Notes, " "), "ecovered") {
		t.Errorf("spike: no recovery verdict: %+v", spike.Analysis)
	}
	if got := spike.Windows[len(spike.Windows)/2-1].Offered; got != 150 {
		t.Errorf("spike: offered %g in the burst window, want 150", got)
	}

	soak := run("soak", loadtest.ProfileSoak, loadtest.ModelOpen, loadtest.ProfileOptions{Rate: 40, Duration: 4 * time.Second}, "", 0)
	if len(soak.Analysis.Trends) == 0 {
		t.Errorf("soak: no trends: %+v", soak.Analysis)
	}

	closed := run("closed", loadtest.ProfileLoad, loadtest.ModelClosed, loadtest.ProfileOptions{Rate: 1, Duration: 2 * time.Second}, "", 300)
	if closed.Total.Count > 300 || closed.Total.Count == 0 || closed.Workers != 4 {
		t.Errorf("closed: %d requests with %d workers, want 1 to 300 with 4", closed.Total.Count, closed.Workers)
	}

	screenshot(t, filepath.Join(dir, "load.html"))
}

// checkReport checks a report's content: figures in the JSON, and the
// HTML showing them with its plots inline.
func checkReport(t *testing.T, name string, rep *loadtest.Report, htmlPath string) {
	t.Helper()
	// A run bounded by its request count (the closed model's 300) may
	// end inside its first window on a fast machine; the timed runs
	// span several.
	minWindows := 2
	if name == "closed" {
		minWindows = 1
	}
	if rep.Total.Count == 0 || len(rep.Windows) < minWindows || rep.Total.Latency.P50 <= 0 || rep.Total.Latency.P99 < rep.Total.Latency.P50 {
		t.Errorf("%s: thin report: %d requests, %d windows, latency %+v", name, rep.Total.Count, len(rep.Windows), rep.Total.Latency)
	}
	var rss bool
	for _, s := range rep.Samples {
		rss = rss || (s.RSS > 0 && s.Metrics["go_goroutines"] > 0)
	}
	if !rss {
		t.Errorf("%s: no samples with RSS and goroutines", name)
	}
	raw, err := os.ReadFile(htmlPath)
	if err != nil {
		t.Fatal(err)
	}
	page := string(raw)
	for _, want := range []string{"<svg", "Latency percentiles over time", "Throughput", "Errors by class", "Target RSS", "Target CPU",
		"go_goroutines", "checklist-panel", "forge-invoke GET /forge/checklists/{issue.key}", "webhook jira:issue_deleted", `id="verdict"`} {
		if !strings.Contains(page, want) {
			t.Errorf("%s: the HTML report lacks %q", name, want)
		}
	}
	for _, bad := range []string{"<script", `src="http`, `href="http`, "@import"} {
		if strings.Contains(page, bad) {
			t.Errorf("%s: the HTML report is not self-contained: it has %q", name, bad)
		}
	}
	var round map[string]any
	if raw, _ := json.Marshal(rep); json.Unmarshal(raw, &round) != nil {
		t.Errorf("%s: the report does not round-trip", name)
	}
}

func serveAdmin(t *testing.T, b *cli.Backend) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: b.Admin, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/metrics"
}

// screenshot opens the HTML report in Chromium, checks what a reader
// sees (the verdict and the plots) and saves a picture of the page.
func screenshot(t *testing.T, htmlPath string) {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("TENON_REQUIRE_CHROMIUM") == "1" {
			t.Fatalf("TENON_REQUIRE_CHROMIUM=1 but no chromium on PATH: %v", err)
		}
		t.Skip("chromium is not installed; set TENON_REQUIRE_CHROMIUM=1 to make this a failure")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "chromium-profile")), chromedp.WindowSize(1000, 900))
	defer cancelAlloc()
	bctx, closeBrowser := chromedp.NewContext(allocCtx)
	defer closeBrowser()
	if err := chromedp.Do(bctx, chromedp.Navigate("file://"+htmlPath)); err != nil {
		t.Fatalf("open the report: %v", err)
	}
	verdict, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#verdict")))
	if err != nil || verdict != "PASS" {
		t.Fatalf("the verdict shown is %q (%v), want PASS", verdict, err)
	}
	charts, err := chromedp.Run(bctx, chromedp.Nodes(chromedp.CSSAll("svg.chart polyline"), chromedp.AtLeast(0)))
	if err != nil || len(charts) < 6 {
		t.Fatalf("%d plotted lines in the page (%v), want at least 6", len(charts), err)
	}
	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := os.Getenv("TENON_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "loadtest-report.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the load test report: %s", shot)
}
