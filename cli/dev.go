package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/fakeatlassian"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/server"
)

// runDev starts the fake Atlassian and the app side by side on loopback,
// installs the app into a fake Jira site and prints where to look.
func runDev(ctx context.Context, env Env, app App, args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	dataDir := fs.String("data", "tenon-dev", "directory for the SQLite database and the secret key file")
	addr := fs.String("addr", "127.0.0.1:8080", "address of the app (loopback); another free port is used when it is taken")
	fakeAddr := fs.String("fake-addr", "127.0.0.1:8081", "address of the fake Atlassian (loopback); another free port is used when it is taken")
	siteName := fs.String("site", "dev", "name of the fake Jira site")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	forgeOnly := fs.Bool("forge-only", false, "install the app as a pure Forge app, without its Connect descriptor (automatic for an app that has none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	logger := newLogger(env, *logLevel)
	if app.Descriptor() == nil {
		*forgeOnly = true
	}

	keyFile, err := ensureDevKey(*dataDir)
	if err != nil {
		return err
	}
	appLn, err := listenLoopback(*addr)
	if err != nil {
		return err
	}
	defer appLn.Close()
	fakeLn, err := listenLoopback(*fakeAddr)
	if err != nil {
		return err
	}
	reportPort(env, "app", *addr, appLn)
	reportPort(env, "fake Atlassian", *fakeAddr, fakeLn)
	ident, err := loadDevSite(*dataDir, *siteName)
	if err != nil {
		return err
	}
	fakeURL := "http://" + fakeLn.Addr().String()
	fake := fakeatlassian.New(fakeatlassian.Options{URL: fakeURL, Logger: logger.With("component", "fake"), ForgeAppID: ident.ForgeAppID})
	if err := fake.StartListener(fakeLn); err != nil {
		return fmt.Errorf("start fake Atlassian: %w", err)
	}
	defer fake.Close()

	cfg := &Config{
		Addr:            appLn.Addr().String(),
		BaseURL:         "http://" + appLn.Addr().String(),
		DB:              filepath.Join(*dataDir, "tenon.db"),
		Environment:     "development",
		InstallKeysURL:  fake.KeyServerURL(),
		SecretKeyFile:   keyFile,
		LogLevel:        *logLevel,
		ShutdownTimeout: 5 * time.Second,
		ClockSkew:       DefaultClockSkew,
		// Pages load the AP library from the fake, so the app's browser
		// code works without a network.
		AllJSURL: fakeURL + "/atlassian-connect/all.js",
		// The app's Forge Remote routes accept invocations from the
		// fake's Forge app as well.
		ForgeAppID:   fake.ForgeAppID(),
		ForgeJWKSURL: fake.ForgeJWKSURL(),
		// Calls as a user get their tokens from the fake too: nothing
		// leaves the machine.
		OAuthServerURL: fake.AuthServerURL(),
		ForgeOnly:      *forgeOnly,
	}
	b, err := Open(ctx, cfg, app, logger)
	if err != nil {
		return err
	}
	defer b.Close()

	serveCtx, stop := context.WithCancel(ctx)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- b.ServeListener(serveCtx, appLn) }()

	site, err := fake.AddSite(fakeatlassian.SiteOptions{Name: *siteName, ClientKey: ident.ClientKey, Users: ident.Users})
	if err != nil {
		return fmt.Errorf("create fake site: %w", err)
	}
	if *forgeOnly {
		if err := devForgeOnly(ctx, env, fake, site, b, cfg, *dataDir); err != nil {
			stop()
			<-errc
			return err
		}
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
			stop()
			return <-errc
		}
	}
	installCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	installed, err := fake.Install(installCtx, site, cfg.BaseURL+"/atlassian-connect.json")
	cancel()
	if err != nil {
		stop()
		<-errc
		return fmt.Errorf("install the app into the fake site: %w", err)
	}
	// The same site also runs the app's Forge successor when the app has
	// Forge routes, so they can be tried against the same data.
	if hasForgeRoutes(b.Server.Routes()) {
		forgeInst, err := fake.InstallForge(site, fakeatlassian.ForgeInstallOptions{RemoteBaseURL: cfg.BaseURL, Environment: fakeatlassian.ForgeDevelopment})
		if err != nil {
			stop()
			<-errc
			return fmt.Errorf("install the Forge app into the fake site: %w", err)
		}
		fmt.Fprintf(env.Stdout, "\ntenon dev: the Forge app %s is installed in the same site (installation %s).\n", forgeInst.AppID, forgeInst.InstallationID)
	}
	printDevBanner(env, fake, site, installed, b.Server.Descriptor(), cfg, *dataDir)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		stop()
		return <-errc
	}
}

func printDevBanner(env Env, fake *fakeatlassian.Fake, site *fakeatlassian.Site, app fakeatlassian.App, descriptor []byte, cfg *Config, dataDir string) {
	w := env.Stdout
	fmt.Fprintln(w)
	fmt.Fprintf(w, "tenon dev: %s is installed in the fake Jira site %q.\n\n", app.Key, site.Name)
	fmt.Fprintf(w, "  Open in your browser:  %s\n\n", devPageURL(fake, site, app.Key, descriptor))
	fmt.Fprintf(w, "  App:                   %s  (descriptor: %s/atlassian-connect.json)\n", cfg.BaseURL, cfg.BaseURL)
	fmt.Fprintf(w, "  Fake Atlassian:        %s  (control API under /_fake/)\n", fake.URL())
	fmt.Fprintf(w, "  Data:                  %s\n\n", dataDir)
	fmt.Fprintln(w, "Press Ctrl+C to stop.")
}

// devForgeOnly installs a pure Forge app into the fake site, without any
// Connect descriptor, and sends it Forge's installed event on its
// lifecycle route, as Forge does after `forge install` (retried when the
// app refuses it).
func devForgeOnly(ctx context.Context, env Env, fake *fakeatlassian.Fake, site *fakeatlassian.Site, b *Backend, cfg *Config, dataDir string) error {
	if !hasForgeRoutes(b.Server.Routes()) {
		return errors.New("the app registers no Forge route (ForgeRemote, ForgeEvent, ForgeTrigger, ForgeLifecycle), so there is nothing to install as a Forge app")
	}
	inst, err := fake.InstallForge(site, fakeatlassian.ForgeInstallOptions{RemoteBaseURL: cfg.BaseURL, Environment: fakeatlassian.ForgeDevelopment})
	if err != nil {
		return fmt.Errorf("install the Forge app into the fake site: %w", err)
	}
	w := env.Stdout
	fmt.Fprintln(w)
	fmt.Fprintf(w, "tenon dev: the Forge app %s is installed in the fake Jira site %q (installation %s), without a Connect descriptor.\n",
		inst.AppID, site.Name, inst.InstallationID)
	if _, path := routeOf(b.Server.Routes(), "forge-lifecycle"); path != "" {
		sendCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		resp, err := fake.SendForgeLifecycleEvent(sendCtx, site, fakeatlassian.ForgeLifecycleOptions{Path: path})
		cancel()
		switch {
		case err != nil:
			return fmt.Errorf("send the Forge installed event to %s: %w", path, err)
		case resp.Status < 200 || resp.Status > 299:
			fmt.Fprintf(env.Stderr, "tenon dev: the app answered the installed event with %d; Forge's retries follow.\n", resp.Status)
		default:
			fmt.Fprintf(w, "tenon dev: sent %s to %s: %d.\n", fakeatlassian.ForgeInstalledEvent, path, resp.Status)
		}
	}
	fmt.Fprintln(w)
	if method, path := routeOf(b.Server.Routes(), "forge-remote"); path != "" {
		issue := firstIssueKey(fake, site)
		path = strings.ReplaceAll(strings.ReplaceAll(path, "{issueKey}", issue), "{$}", "")
		body, _ := json.Marshal(map[string]string{"method": method, "path": path, "issueKey": issue})
		fmt.Fprintf(w, "  Invoke the remote as Forge does:\n    curl -s -X POST %s/_fake/sites/%s/forge/invoke -H 'Content-Type: application/json' -d '%s'\n\n",
			fake.URL(), site.Name, body)
	}
	fmt.Fprintf(w, "  App (Forge remote):    %s\n", cfg.BaseURL)
	fmt.Fprintf(w, "  Fake Atlassian:        %s  (control API under /_fake/)\n", fake.URL())
	fmt.Fprintf(w, "  Data:                  %s\n\n", dataDir)
	fmt.Fprintln(w, "Press Ctrl+C to stop.")
	return nil
}

// routeOf is the method ("GET" when the pattern names none) and path of
// the first route of kind; path "" when there is none.
func routeOf(routes []server.Route, kind string) (method, path string) {
	for _, r := range routes {
		if r.Kind != kind || r.Pattern == "" {
			continue
		}
		if m, p, ok := strings.Cut(r.Pattern, " "); ok {
			return m, p
		}
		return "GET", r.Pattern
	}
	return "", ""
}

// hasForgeRoutes reports whether the app registered any Forge route.
func hasForgeRoutes(routes []server.Route) bool {
	for _, r := range routes {
		if strings.HasPrefix(r.Kind, "forge-") {
			return true
		}
	}
	return false
}

// devPageURL is the fake page where the app shows itself: an issue page
// when the app has modules on the issue view (or no page of its own), else
// its first general or admin page.
func devPageURL(fake *fakeatlassian.Fake, site *fakeatlassian.Site, appKey string, descriptor []byte) string {
	var d struct {
		Modules map[string]json.RawMessage `json:"modules"`
	}
	if json.Unmarshal(descriptor, &d) == nil {
		_, panels := d.Modules["webPanels"]
		_, glances := d.Modules["jiraIssueGlances"]
		_, contents := d.Modules["jiraIssueContents"]
		if !panels && !glances && !contents {
			for _, typ := range []string{"generalPages", "adminPages"} {
				var pages []struct {
					Key string `json:"key"`
				}
				if json.Unmarshal(d.Modules[typ], &pages) == nil && len(pages) > 0 && pages[0].Key != "" {
					return fake.ModulePageURL(site, appKey, pages[0].Key)
				}
			}
		}
	}
	return fake.IssuePageURL(site, firstIssueKey(fake, site))
}

// firstIssueKey is the seeded issue to show.
func firstIssueKey(fake *fakeatlassian.Fake, site *fakeatlassian.Site) string {
	const seeded = "DEMO-1"
	if _, err := fake.GetIssue(site, seeded); err != nil {
		return ""
	}
	return seeded
}

// devSite is the identity of the fake site, kept in the data directory:
// the fake is in memory, but the app's data is not, so the same clientKey
// and users on every start keep the checklist across restarts.
type devSite struct {
	ClientKey string               `json:"clientKey"`
	Users     []fakeatlassian.User `json:"users"`
	// ForgeAppID keeps the fake's Forge app id, so Forge installations
	// and their data survive restarts like the Connect tenant does.
	ForgeAppID string `json:"forgeAppId,omitempty"`
}

func loadDevSite(dir, name string) (*devSite, error) {
	path := filepath.Join(dir, "site-"+name+".json")
	raw, err := os.ReadFile(path)
	if err == nil {
		var s devSite
		if err := json.Unmarshal(raw, &s); err != nil || s.ClientKey == "" || len(s.Users) == 0 {
			return nil, fmt.Errorf("%s is damaged; delete it to start with a new fake site", path)
		}
		if s.ForgeAppID == "" {
			// Written by an earlier version: add an id and keep it.
			if s.ForgeAppID, err = newForgeAppID(); err != nil {
				return nil, err
			}
			if err := writeDevSite(path, &s); err != nil {
				return nil, err
			}
		}
		return &s, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("new site id: %w", err)
	}
	suffix := hex.EncodeToString(id[:])
	s := &devSite{
		ClientKey: "dev-" + suffix,
		Users: []fakeatlassian.User{
			{AccountID: "712020:alice-" + suffix, DisplayName: "Alice Admin", Email: "alice@example.com"},
			{AccountID: "712020:bob-" + suffix, DisplayName: "Bob Builder", Email: "bob@example.com", Locale: "de-DE", TimeZone: "Europe/Berlin"},
		},
	}
	if s.ForgeAppID, err = newForgeAppID(); err != nil {
		return nil, err
	}
	if err := writeDevSite(path, s); err != nil {
		return nil, err
	}
	return s, nil
}

func writeDevSite(path string, s *devSite) error {
	raw, _ := json.MarshalIndent(s, "", "  ")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// newForgeAppID is a random Forge app id, as `forge register` gives.
func newForgeAppID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("new Forge app id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(b[:])
	return "ari:cloud:ecosystem::app/" + h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

// reportPort says when a listener took another port than the one asked
// for, because that one was busy.
func reportPort(env Env, what, asked string, ln net.Listener) {
	got := ln.Addr().String()
	_, want, _ := net.SplitHostPort(asked)
	_, port, _ := net.SplitHostPort(got)
	if want != "0" && want != port {
		fmt.Fprintf(env.Stderr, "tenon dev: %s is busy; the %s listens on %s instead.\n", asked, what, got)
	}
}

// ensureDevKey creates the development key file on first use.
func ensureDevKey(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create data directory: %w", err)
	}
	path := filepath.Join(dir, "secret.key")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("key file: %w", err)
	}
	line, err := keyring.Generate(nil)
	if err != nil {
		return "", fmt.Errorf("generate development key: %w", err)
	}
	if err := os.WriteFile(path, []byte(line+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write development key: %w", err)
	}
	return path, nil
}

// listenLoopback listens on addr, or on a free port of the same host when
// addr is taken. Development servers only ever listen on loopback.
func listenLoopback(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", addr, err)
	}
	if !tenon.LoopbackHost(host) {
		return nil, fmt.Errorf("address %q: tenon dev listens on loopback only", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	ln, err2 := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err2 != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}
