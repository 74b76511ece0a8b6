package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/tenon-dev/tenon/edge"
	"github.com/tenon-dev/tenon/health"
	"github.com/tenon-dev/tenon/metrics"
)

// This file is the network edge of `tenon serve`: automatic HTTPS or
// plain HTTP behind trusted proxies on the main listener, the plain-HTTP
// listener for ACME challenges and redirects, the health probes, and the
// admin listener with metrics.
//
// Hooks for the rest of the command:
//   - Backend.Health: register readiness checks of in-process state with
//     Health.RegisterState (draining, maintenance) and of dependencies
//     with Health.Register. /readyz on the main and admin listeners
//     answers 503 while any fails.
//   - Backend.Admin: the admin listener's mux; add operator endpoints to
//     it before Serve. It listens on --admin-addr (loopback by default);
//     failing to bind it is logged, not fatal.
//   - Backend.Listen: how the extra listeners are opened (default
//     net.Listen); a process handing its sockets to a successor sets it.

// parseEdgeSettings reads the edge settings into c and reports what is
// wrong through add.
func parseEdgeSettings(c *Config, vals values, src map[string]string, add func(string, ...any)) {
	c.ACMECA = strings.TrimSpace(vals["acme-ca"])
	c.ACMECARoots = vals["acme-ca-roots"]
	c.ACMEEmail = strings.TrimSpace(vals["acme-email"])
	c.HTTPAddr = offOr(vals["http-addr"])
	c.AdminAddr = offOr(vals["admin-addr"])
	c.TrustedProxies = splitList(vals["trusted-proxies"])
	if _, err := edge.ParseTrustedProxies(c.TrustedProxies); err != nil {
		add("--trusted-proxies / TENON_TRUSTED_PROXIES: %v", strings.TrimPrefix(err.Error(), "edge: "))
	}
	if c.AdminAddr != "" && !validAddr(c.AdminAddr) {
		add("--admin-addr / TENON_ADMIN_ADDR must be host:port (e.g. 127.0.0.1:9090) or off, not %q", c.AdminAddr)
	}
	if c.ACMEEmail != "" && (!strings.Contains(c.ACMEEmail, "@") || strings.ContainsAny(c.ACMEEmail, " \t<>")) {
		add("--acme-email / TENON_ACME_EMAIL must be an email address, not %q", c.ACMEEmail)
	}

	domains := splitList(vals["domains"])
	if len(domains) == 0 {
		if src["http-addr"] != "default" && c.HTTPAddr != "" {
			add("--http-addr / TENON_HTTP_ADDR only applies with --domains / TENON_DOMAINS (automatic HTTPS)")
		}
		c.HTTPAddr = ""
		return
	}
	var err error
	if c.Domains, err = edge.CleanDomains(domains); err != nil {
		add("--domains / TENON_DOMAINS: %v", strings.TrimPrefix(err.Error(), "edge: "))
	}
	if src["addr"] == "default" {
		c.Addr = ":443"
	}
	if u, err := url.Parse(c.ACMECA); err != nil || u.Scheme != "https" || u.Host == "" {
		add("--acme-ca / TENON_ACME_CA must be the https URL of an ACME directory, not %q", c.ACMECA)
	}
	if c.HTTPAddr != "" && !validAddr(c.HTTPAddr) {
		add("--http-addr / TENON_HTTP_ADDR must be host:port (e.g. :80) or off, not %q", c.HTTPAddr)
	}
	if c.HTTPAddr != "" && c.HTTPAddr == c.Addr {
		add("--http-addr / TENON_HTTP_ADDR and --addr / TENON_ADDR are both %q: HTTPS and the plain-HTTP listener need their own ports", c.Addr)
	}
	// The certificates are for the names products call; a base URL on
	// another name would be served with a certificate that does not
	// match it.
	if u, err := url.Parse(c.BaseURL); err == nil && u.Host != "" {
		switch {
		case u.Scheme != "https":
			add("--base-url / TENON_BASE_URL must be https with --domains: the server speaks only HTTPS on %s", c.Addr)
		case len(c.Domains) > 0 && !slices.Contains(c.Domains, strings.ToLower(u.Hostname())):
			add("--base-url / TENON_BASE_URL host %q is not among --domains / TENON_DOMAINS (%s)", u.Hostname(), strings.Join(c.Domains, ", "))
		}
	}
}

func offOr(v string) string {
	v = strings.TrimSpace(v)
	if strings.EqualFold(v, "off") {
		return ""
	}
	return v
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func validAddr(a string) bool {
	_, port, err := net.SplitHostPort(a)
	if err != nil || port == "" {
		return false
	}
	_, err = net.LookupPort("tcp", port)
	return err == nil
}

// initObservability gives the backend its health checks, metrics and
// admin mux. Open calls it before the server is built, so the server
// reports every request to the metrics.
func (b *Backend) initObservability() {
	b.Metrics = metrics.New(metrics.Options{Store: b.Store, Logger: b.Logger})
	b.Health = health.New(health.Options{Logger: b.Logger.With("component", "health")})
	// Store reachable and migrated to this build's schema (tenon.Pinger).
	b.Health.Register("store", health.StoreCheck(b.Store))
	b.Admin = http.NewServeMux()
	b.Admin.Handle("GET /metrics", b.Metrics.Handler())
	b.Health.Mount(b.Admin, true)
}

// listen opens one of the extra listeners.
func (b *Backend) listen(addr string) (net.Listener, error) {
	if b.Listen != nil {
		return b.Listen("tcp", addr)
	}
	return net.Listen("tcp", addr)
}

// startEdge prepares hs and ln for the configuration: health probes and
// trusted-proxy handling in front of the app, HTTPS with automatic
// certificates when domains are set (it returns the TLS listener to
// serve on), and the plain-HTTP and admin listeners. stop closes what it
// started; call it after hs has shut down.
func (b *Backend) startEdge(ctx context.Context, hs *http.Server, ln net.Listener) (_ net.Listener, stop func(), err error) {
	cfg := b.Config
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	if b.Health == nil {
		b.initObservability()
	}
	proxies, err := edge.ParseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return nil, nil, err
	}
	hs.Handler = proxies.Handler(probes(b.Health, hs.Handler))

	if len(cfg.Domains) > 0 {
		tlsLn, stopACME, err := b.startACME(ctx, ln)
		if err != nil {
			return nil, nil, err
		}
		stops = append(stops, stopACME)
		ln = tlsLn
	} else if proxies.Empty() && cfg.Environment == "production" {
		b.Logger.Warn("serving plain HTTP: set --domains for automatic HTTPS, or put a TLS-terminating proxy in front and list it in --trusted-proxies",
			"addr", ln.Addr().String())
	}

	if cfg.AdminAddr != "" {
		aln, err := b.listen(cfg.AdminAddr)
		if err != nil {
			// Metrics matter, but not more than serving: the app stays
			// up and the scraper reports the target down.
			b.Logger.Error("admin listener unavailable: no metrics or detailed readiness from this process",
				"addr", cfg.AdminAddr, "err", err)
			return ln, stop, nil
		}
		as := &http.Server{
			Handler:           b.Admin,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       120 * time.Second,
			ErrorLog:          hs.ErrorLog,
		}
		go func() { _ = as.Serve(aln) }()
		stops = append(stops, func() { _ = as.Close() })
		attrs := []any{"addr", aln.Addr().String()}
		if ap, err := netip.ParseAddrPort(aln.Addr().String()); err == nil && !ap.Addr().IsLoopback() {
			b.Logger.Warn("the admin listener is not on loopback: make sure only operators and the metrics scraper reach it", attrs...)
		} else {
			b.Logger.Info("admin listening", attrs...)
		}
	}
	return ln, stop, nil
}

// startACME starts certificate management and the plain-HTTP listener,
// and returns ln wrapped in TLS.
func (b *Backend) startACME(ctx context.Context, ln net.Listener) (_ net.Listener, stop func(), err error) {
	cfg := b.Config
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	var roots *x509.CertPool
	if cfg.ACMECARoots != "" {
		pem, err := os.ReadFile(cfg.ACMECARoots)
		if err != nil {
			return nil, nil, fmt.Errorf("ACME CA roots: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("ACME CA roots: %s holds no PEM certificate", cfg.ACMECARoots)
		}
	}
	storage, err := edge.NewStorage(b.Store, edge.StorageOptions{})
	if err != nil {
		return nil, nil, err
	}
	stops = append(stops, func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = storage.Close(cctx)
	})

	// Both listeners are bound before certificate management starts, so
	// challenges are answered by them and nothing else takes the ports.
	var httpLn net.Listener
	if cfg.HTTPAddr != "" {
		if httpLn, err = b.listen(cfg.HTTPAddr); err != nil {
			return nil, nil, fmt.Errorf("plain-HTTP listener on %s: %w", cfg.HTTPAddr, err)
		}
	}
	opts := edge.ACMEOptions{
		Domains: cfg.Domains,
		CA:      cfg.ACMECA,
		CARoots: roots,
		Email:   cfg.ACMEEmail,
		Storage: storage,
		TLSAddr: ln.Addr().String(),
		Logger:  b.Logger,
	}
	if httpLn != nil {
		opts.HTTPAddr = httpLn.Addr().String()
	}
	mgr, err := edge.NewManager(opts)
	if err != nil {
		if httpLn != nil {
			httpLn.Close()
		}
		return nil, nil, err
	}
	b.Health.Register("certificate", mgr.Ready)
	// Registered once per process: a second Serve keeps the first.
	_ = b.Metrics.WatchCertificates(mgr.Expiry)

	if httpLn != nil {
		_, httpsPort, _ := net.SplitHostPort(ln.Addr().String())
		plain := &http.Server{
			Handler:           mgr.HTTPHandler(edge.RedirectHTTPS(cfg.Domains, httpsPort)),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       30 * time.Second,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(b.Logger.Handler(), slog.LevelWarn),
		}
		go func() { _ = plain.Serve(httpLn) }()
		stops = append(stops, func() { _ = plain.Close() })
		b.Logger.Info("redirecting plain HTTP to HTTPS", "addr", httpLn.Addr().String())
	}

	mctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if err := mgr.Start(mctx); err != nil {
		cancel()
		mgr.Stop()
		return nil, nil, err
	}
	stops = append(stops, func() {
		cancel()
		mgr.Stop()
	})
	b.Logger.Info("serving HTTPS with automatic certificates", "domains", strings.Join(cfg.Domains, ","), "ca", cfg.ACMECA)
	return tls.NewListener(ln, mgr.TLSConfig()), stop, nil
}

// probes answers /livez and /readyz, whatever the app's base path, and
// passes everything else to app. The public answers name the failing
// checks without their errors; the admin listener shows those.
func probes(h *health.Checker, app http.Handler) http.Handler {
	live, ready := h.LiveHandler(), h.ReadyHandler(false)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/livez":
			live.ServeHTTP(w, r)
		case "/readyz":
			ready.ServeHTTP(w, r)
		default:
			app.ServeHTTP(w, r)
		}
	})
}
