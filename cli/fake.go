package cli

import (
	"context"
	"flag"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/fakeatlassian"
)

// runFake serves the fake Atlassian on its own, so an app written in any
// language can be installed, framed, called and sent webhooks locally.
func runFake(ctx context.Context, env Env, app App, args []string) error {
	fs := flag.NewFlagSet("fake", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	addr := fs.String("addr", "127.0.0.1:8081", "address to listen on (loopback)")
	sites := fs.String("sites", "dev", "comma-separated names of Jira sites to create; name:confluence makes a Confluence site")
	install := fs.String("install", "", "descriptor URL of an app to install into every site at start")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	webhookRetry := fs.Duration("webhook-retry", 0, "wait before each webhook retry (default: Jira-like minutes)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", *addr, err)
	}
	if !tenon.LoopbackHost(host) {
		return fmt.Errorf("--addr %q: the fake Atlassian listens on loopback only", *addr)
	}
	opts := fakeatlassian.Options{Logger: newLogger(env, *logLevel)}
	if *webhookRetry > 0 {
		opts.WebhookRetryDelays = []time.Duration{*webhookRetry, *webhookRetry, *webhookRetry}
	}
	fake := fakeatlassian.New(opts)
	if err := fake.Start(*addr); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	defer fake.Close()

	w := env.Stdout
	fmt.Fprintf(w, "fake Atlassian at %s\n", fake.URL())
	fmt.Fprintf(w, "  install keys:  %s   (the app's --install-keys-url)\n", fake.KeyServerURL())
	fmt.Fprintf(w, "  OAuth server:  %s\n", fake.AuthServerURL())
	fmt.Fprintf(w, "  control API:   %s/_fake/\n", fake.URL())
	for _, spec := range strings.Split(*sites, ",") {
		spec = strings.TrimSpace(spec)
		if spec == "" {
			continue
		}
		name, product, _ := strings.Cut(spec, ":")
		site, err := fake.AddSite(fakeatlassian.SiteOptions{Name: name, Product: product})
		if err != nil {
			return fmt.Errorf("site %q: %w", spec, err)
		}
		fmt.Fprintf(w, "  site %-8s  %s  (clientKey %s)\n", site.Name, site.BaseURL, site.ClientKey)
		if *install == "" {
			continue
		}
		ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
		a, err := fake.Install(ictx, site, *install)
		cancel()
		if err != nil {
			return fmt.Errorf("install %s into %s: %w", *install, site.Name, err)
		}
		if site.Product == fakeatlassian.ProductJira {
			fmt.Fprintf(w, "    %s installed; issue page: %s\n", a.Key, fake.IssuePageURL(site, "DEMO-1"))
		} else {
			fmt.Fprintf(w, "    %s installed\n", a.Key)
		}
	}
	<-ctx.Done()
	return nil
}
