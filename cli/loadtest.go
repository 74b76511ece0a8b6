package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/tenon-dev/tenon/fakeatlassian"
	"github.com/tenon-dev/tenon/loadtest"
)

// Bounds of a load test run: every run ends.
const (
	maxLoadDuration = 24 * time.Hour
	maxLoadRequests = 100_000_000
)

// loadForgeAppID is the Forge app id the load test's fake uses unless
// told otherwise, so a target can be configured before the run starts.
const loadForgeAppID = "ari:cloud:ecosystem::app/00000000-0000-4000-8000-00000000104d"

var errSLOBroken = errors.New("the SLO was not met")

// runLoadtest runs `tenon loadtest`, `tenon loadtest compare` and
// `tenon loadtest env`.
func runLoadtest(ctx context.Context, env Env, app App, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "compare":
			return runLoadCompare(env, args[1:])
		case "env":
			return runLoadEnv(env, args[1:])
		}
	}
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	target := fs.String("target", "", "base URL of the app to test (loopback unless --allow-target)")
	descriptor := fs.String("descriptor", "", "descriptor URL (default <target>/atlassian-connect.json)")
	manifest := fs.String("manifest", "", "Forge manifest.yml: checks forge-event and forge-trigger routes of the mix")
	remote := fs.String("remote", "", "base URL of the Forge remote (default the target)")
	allow := fs.String("allow-target", "", "comma-separated host names that may be tested although not on loopback")
	fakeAddr := fs.String("fake-addr", "127.0.0.1:0", "address of the fake Atlassian (loopback); fix it so the target can trust its key server, see 'tenon loadtest env'")
	forgeAppID := fs.String("forge-app-id", loadForgeAppID, "Forge app id the fake signs tokens for (the target's TENON_FORGE_APP_ID)")
	mixPath := fs.String("mix", "", "mix file (JSON): tenants, skew, routes and their shares, product API behaviour (required)")
	profile := fs.String("profile", loadtest.ProfileLoad, "load, stress, soak or spike")
	rate := fs.Float64("rate", 50, "requests per second: steady (load, soak), baseline (spike), start of the ramp (stress)")
	peak := fs.Float64("peak", 0, "burst rate (spike) or end of the ramp (stress)")
	duration := fs.Duration("duration", 30*time.Second, "length of the run (at most 24h)")
	maxReq := fs.Uint64("max-requests", 5_000_000, "stop after this many requests (at most 100,000,000)")
	model := fs.String("model", loadtest.ModelOpen, "open (a rate, latency from when each request was due) or closed (--workers in flight)")
	workers := fs.Int("workers", 8, "requests in flight in the closed model")
	inFlight := fs.Int("max-in-flight", 1000, "most concurrent requests in the open model")
	timeout := fs.Duration("timeout", 10*time.Second, "timeout of one request")
	window := fs.Duration("window", time.Second, "width of a report window")
	sloText := fs.String("slo", "", "objectives that set the exit status, e.g. 'p95<200ms,errors<0.1%'")
	pid := fs.Int("pid", 0, "process id of the target, to sample its CPU, RSS, threads and open files")
	metricsURL := fs.String("metrics", "", "Prometheus metrics URL of the target (e.g. http://127.0.0.1:9090/metrics)")
	dbPath := fs.String("db", "", "the target's SQLite file, to sample its size")
	out := fs.String("out", "loadtest", "report path without extension: writes <out>.json and <out>.html")
	seed := fs.Int64("seed", 1, "seed of the tenant and route choice")
	quiet := fs.Bool("quiet", false, "no progress lines")
	installWorkers := fs.Int("install-workers", loadtest.DefaultInstallWorkers, "tenants installed at a time")
	signAtSend := fs.Bool("sign-at-send", false, "sign each page URL when it is sent, instead of signing them all before the run")
	urlsOut := fs.String("urls-out", "", "write every signed page URL of the mix to this file, one a line, valid for --duration and a margin (for another load generator)")
	installOnly := fs.Bool("install-only", false, "install the tenants, send the setup routes, write --urls-out and stop: no load")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *target == "" || *mixPath == "" {
		return fmt.Errorf("--target and --mix are required (see 'tenon loadtest -h')")
	}
	var allowed []string
	for _, h := range strings.Split(*allow, ",") {
		if h = strings.TrimSpace(h); h != "" {
			allowed = append(allowed, h)
		}
	}
	for _, u := range []string{*target, *descriptor, *remote} {
		if u == "" {
			continue
		}
		if err := loadtest.CheckTarget(u, allowed); err != nil {
			return err
		}
	}
	if *installWorkers < 1 || *installWorkers > 64 {
		return fmt.Errorf("--install-workers must be from 1 to 64, not %d", *installWorkers)
	}
	if *urlsOut != "" && !*installOnly {
		return fmt.Errorf("--urls-out goes with --install-only")
	}
	if *duration <= 0 || *duration > maxLoadDuration {
		return fmt.Errorf("--duration must be above 0 and at most %v, not %v", maxLoadDuration, *duration)
	}
	if *maxReq == 0 || *maxReq > maxLoadRequests {
		return fmt.Errorf("--max-requests must be from 1 to %d", maxLoadRequests)
	}
	mix, err := loadtest.ReadMix(*mixPath)
	if err != nil {
		return err
	}
	slo, err := loadtest.ParseSLO(*sloText)
	if err != nil {
		return err
	}
	sched, err := loadtest.NewSchedule(*profile, loadtest.ProfileOptions{Rate: *rate, Peak: *peak, Duration: *duration})
	if err != nil {
		return fmt.Errorf("--profile %s: %w", *profile, err)
	}
	sched.Max = *maxReq
	var man *loadtest.Manifest
	if *manifest != "" {
		if man, err = loadtest.ReadManifest(*manifest); err != nil {
			return err
		}
	}
	fake, err := startLoadFake(*fakeAddr, *forgeAppID)
	if err != nil {
		return err
	}
	defer fake.Close()
	logf := func(format string, a ...any) { fmt.Fprintf(env.Stderr, format+"\n", a...) }
	logf("fake Atlassian at %s (install keys %s)", fake.URL(), fake.KeyServerURL())

	var sampler *loadtest.Sampler
	if *pid > 0 || *metricsURL != "" || *dbPath != "" {
		sampler = &loadtest.Sampler{MetricsURL: *metricsURL, DBPath: *dbPath, Interval: *window, Client: &http.Client{Timeout: 5 * time.Second}}
		if *pid > 0 {
			sampler.Proc = &loadtest.ProcReader{Root: "/proc", PID: *pid, TicksPerSecond: 100}
		}
	}
	o := loadtest.Options{
		Target: strings.TrimRight(*target, "/"), DescriptorURL: *descriptor, ForgeRemote: *remote, Manifest: man,
		Mix: mix, Schedule: sched, Model: *model, Workers: *workers, MaxInFlight: *inFlight, Timeout: *timeout,
		Window: *window, SLO: slo, StopOnBreak: *profile == loadtest.ProfileStress, Fake: fake, Seed: *seed,
		Sampler: sampler, Log: logf, InstallWorkers: *installWorkers, SignAtSend: *signAtSend,
	}
	if !*quiet {
		o.Progress = progressPrinter(env.Stderr)
	}
	if *installOnly {
		return runInstallOnly(ctx, o, *urlsOut, env.Stdout)
	}
	rep, err := RunLoad(ctx, o, *out, env.Stdout)
	if err != nil {
		return err
	}
	if !rep.Passed {
		return errSLOBroken
	}
	return nil
}

// runInstallOnly installs the mix's tenants into the target, sends the
// setup routes and writes the mix's signed page URLs to urlsOut (when
// set), valid for the run's duration and loadtest.PresignMargin: the
// tenants and URLs another load generator (wrk) then sends.
func runInstallOnly(ctx context.Context, o loadtest.Options, urlsOut string, w io.Writer) error {
	e, err := loadtest.Prepare(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "installed %d tenants: %.0f installs/s, %d at a time\n", o.Mix.Tenants, e.InstallRate, max(o.InstallWorkers, 1))
	if urlsOut == "" {
		return nil
	}
	lifetime := o.Schedule.Duration() + loadtest.PresignMargin
	urls, err := e.PageURLs(lifetime)
	if err != nil {
		return err
	}
	if err := os.WriteFile(urlsOut, []byte(strings.Join(urls, "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("--urls-out: %w", err)
	}
	fmt.Fprintf(w, "wrote %d signed page URLs to %s, valid for %v\n", len(urls), urlsOut, lifetime)
	return nil
}

// startLoadFake starts the fake Atlassian on addr (loopback only).
func startLoadFake(addr, forgeAppID string) (*fakeatlassian.Fake, error) {
	if err := loadtest.CheckTarget("http://"+addr, nil); err != nil {
		return nil, fmt.Errorf("--fake-addr %q: the fake Atlassian listens on loopback only", addr)
	}
	fake := fakeatlassian.New(fakeatlassian.Options{ForgeAppID: forgeAppID, WebhookRetryDelays: []time.Duration{}})
	if err := fake.Start(addr); err != nil {
		return nil, fmt.Errorf("start the fake Atlassian: %w", err)
	}
	return fake, nil
}

// RunLoad prepares the target, runs the load and writes <out>.json and
// <out>.html, also when ctx ends early; it prints a summary to w.
func RunLoad(ctx context.Context, o loadtest.Options, out string, w io.Writer) (*loadtest.Report, error) {
	e, err := loadtest.Prepare(ctx, o)
	if err != nil {
		return nil, err
	}
	rep, runErr := e.Run(ctx)
	if rep == nil {
		return nil, runErr
	}
	if err := rep.WriteJSON(out + ".json"); err != nil {
		return nil, err
	}
	if err := rep.WriteHTMLFile(out + ".html"); err != nil {
		return nil, err
	}
	printSummary(w, rep, out)
	if runErr != nil {
		return rep, runErr
	}
	return rep, nil
}

func printSummary(w io.Writer, rep *loadtest.Report, out string) {
	t := rep.Total
	fmt.Fprintf(w, "%s: %d requests in %.1f s, %.1f req/s answered, %d failed\n", rep.Title, t.Count, rep.Elapsed, t.Throughput, t.Count-t.OK)
	fmt.Fprintf(w, "latency p50 %.2f ms, p90 %.2f ms, p95 %.2f ms, p99 %.2f ms, max %.2f ms\n", t.Latency.P50, t.Latency.P90, t.Latency.P95, t.Latency.P99, t.Latency.Max)
	if rep.InstallsPerSecond > 0 {
		fmt.Fprintf(w, "tenants installed at %.0f installs/s; page URLs signed %s\n", rep.InstallsPerSecond, map[bool]string{true: "before the run", false: "when sent"}[rep.Presigned])
	}
	if s := rep.Analysis.Saturation; s != nil {
		fmt.Fprintf(w, "saturation at %.0f s, %.0f req/s offered: %s\n", s.T, s.Offered, s.Reason)
	}
	for _, n := range rep.Analysis.Notes {
		fmt.Fprintln(w, n)
	}
	for _, o := range rep.SLO {
		verdict := "met"
		if !o.Met {
			verdict = "NOT met"
		}
		fmt.Fprintf(w, "SLO %s: %s (%.4g)\n", o.Text, verdict, o.Actual)
	}
	if rep.Stopped != "" {
		fmt.Fprintf(w, "stopped early: %s\n", rep.Stopped)
	}
	fmt.Fprintf(w, "report: %s.html, %s.json\n", out, out)
}

// progressPrinter prints one line per window: rate, p50/p99, errors,
// elapsed and remaining.
func progressPrinter(w io.Writer) func(loadtest.Progress) {
	return func(p loadtest.Progress) {
		fmt.Fprintf(w, "%6.0fs  %7.1f req/s (offered %7.1f)  p50 %7.2f ms  p99 %8.2f ms  errors %d/%d  remaining %s\n",
			p.Elapsed.Seconds(), p.Last.Throughput, p.Last.Offered, p.Last.P50, p.Last.P99, p.Failed, p.Sent, p.Remaining.Round(time.Second))
	}
}

// runLoadCompare prints what changed between two reports; it fails when
// a figure got worse by more than 10 %.
func runLoadCompare(env Env, args []string) error {
	fs := flag.NewFlagSet("loadtest compare", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("usage: tenon loadtest compare before.json after.json")
	}
	a, err := loadtest.ReadReport(fs.Arg(0))
	if err != nil {
		return err
	}
	b, err := loadtest.ReadReport(fs.Arg(1))
	if err != nil {
		return err
	}
	return loadtest.WriteComparison(env.Stdout, a, b, fs.Arg(0), fs.Arg(1))
}

// runLoadEnv prints the settings a target needs to trust the fake of a
// run started with the same --fake-addr and --forge-app-id.
func runLoadEnv(env Env, args []string) error {
	fs := flag.NewFlagSet("loadtest env", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fakeAddr := fs.String("fake-addr", "127.0.0.1:8181", "the address the run's fake will listen on")
	forgeAppID := fs.String("forge-app-id", loadForgeAppID, "the Forge app id of the run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := loadtest.CheckTarget("http://"+*fakeAddr, nil); err != nil || strings.HasSuffix(*fakeAddr, ":0") {
		return fmt.Errorf("--fake-addr %q: give a fixed loopback address and port", *fakeAddr)
	}
	f := fakeatlassian.New(fakeatlassian.Options{URL: "http://" + *fakeAddr, ForgeAppID: *forgeAppID})
	fmt.Fprintf(env.Stdout, "TENON_INSTALL_KEYS_URL=%s\nTENON_FORGE_APP_ID=%s\nTENON_FORGE_JWKS_URL=%s\n", f.KeyServerURL(), *forgeAppID, f.ForgeJWKSURL())
	return nil
}
