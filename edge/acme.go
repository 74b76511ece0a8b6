// Package edge is where the app meets the network: automatic HTTPS with
// certificates from an ACME authority (Let's Encrypt by default), the
// plain-HTTP listener that answers HTTP-01 challenges and redirects
// everything else to HTTPS, and the mode for running behind a proxy that
// terminates TLS, where X-Forwarded-* headers are believed only from the
// proxy's own addresses.
//
// Certificates, their private keys, ACME accounts and the locks that keep
// two nodes from ordering the same certificate live in the tenon Store
// (Storage), so every node that shares the store shares them. Both
// TLS-ALPN-01 (on the HTTPS listener) and HTTP-01 (on the plain-HTTP
// listener) challenges are answered; either is enough.
package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
)

// LetsEncrypt is the default ACME directory.
const LetsEncrypt = certmagic.LetsEncryptProductionCA

// ACMEOptions configure automatic certificates.
type ACMEOptions struct {
	// Domains to obtain certificates for. Required; plain DNS names,
	// no wildcards (those need DNS-01) and no IP addresses.
	Domains []string
	// CA is the ACME directory URL. Default LetsEncrypt.
	CA string
	// CARoots are the roots trusted for the CA's own HTTPS endpoint, for
	// a private CA. Default: the system's roots.
	CARoots *x509.CertPool
	// Email is given to the CA for expiry notices and account recovery.
	Email string
	// Storage keeps certificates, keys, accounts and locks. Required;
	// NewStorage makes one on the tenon Store.
	Storage certmagic.Storage
	// TLSAddr is the bound address of this process's HTTPS listener,
	// which answers TLS-ALPN-01 challenges; "" disables them.
	TLSAddr string
	// HTTPAddr is the bound address of the plain-HTTP listener whose
	// handler is wrapped by HTTPHandler, which answers HTTP-01
	// challenges; "" disables them. The CA connects to ports 443 and
	// 80: other ports only work behind a port forward (or in tests).
	HTTPAddr string
	// Logger receives certificate events. Default: discard.
	Logger *slog.Logger
	// Now is the clock for readiness and expiry. Default time.Now.
	Now func() time.Time
}

// Manager obtains, serves and renews the certificates of the domains.
type Manager struct {
	domains []string
	cache   *certmagic.Cache
	cfg     *certmagic.Config
	issuer  *certmagic.ACMEIssuer
	now     func() time.Time
}

// NewManager checks opts and prepares certificate management. Listeners
// at TLSAddr and HTTPAddr must be bound before Start, or certmagic would
// try to bind those ports itself.
func NewManager(opts ACMEOptions) (*Manager, error) {
	domains, err := CleanDomains(opts.Domains)
	if err != nil {
		return nil, err
	}
	if opts.Storage == nil {
		return nil, errors.New("edge: ACMEOptions.Storage is required: use NewStorage on the tenon store, so nodes share certificates")
	}
	if opts.TLSAddr == "" && opts.HTTPAddr == "" {
		return nil, errors.New("edge: neither TLSAddr nor HTTPAddr is set: no ACME challenge could be answered")
	}
	if opts.CA == "" {
		opts.CA = LetsEncrypt
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	logger := zapToSlog(opts.Logger, "acme")

	m := &Manager{domains: domains, now: opts.Now}
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return m.cfg, nil },
		Logger:           logger,
	})
	m.cfg = certmagic.New(m.cache, certmagic.Config{
		Storage: opts.Storage,
		Logger:  logger,
		// The store is checked by readiness; certmagic's own check
		// would write and delete a 10 KiB key at every start.
		DisableStorageCheck: true,
	})
	tmpl := certmagic.ACMEIssuer{
		CA:                      opts.CA,
		Email:                   opts.Email,
		Agreed:                  true,
		TrustedRoots:            opts.CARoots,
		DisableTLSALPNChallenge: opts.TLSAddr == "",
		DisableHTTPChallenge:    opts.HTTPAddr == "",
		Logger:                  logger,
	}
	// Point certmagic's challenge solvers at our own listeners: finding
	// the address taken, they leave the answering to them.
	for _, a := range []struct {
		addr string
		port *int
	}{{opts.TLSAddr, &tmpl.AltTLSALPNPort}, {opts.HTTPAddr, &tmpl.AltHTTPPort}} {
		if a.addr == "" {
			continue
		}
		host, port, err := net.SplitHostPort(a.addr)
		if err != nil {
			m.cache.Stop()
			return nil, fmt.Errorf("edge: listener address %q: %w", a.addr, err)
		}
		if *a.port, err = strconv.Atoi(port); err != nil {
			m.cache.Stop()
			return nil, fmt.Errorf("edge: listener address %q: %w", a.addr, err)
		}
		if host != "" && host != "::" && host != "0.0.0.0" {
			tmpl.ListenHost = host
		}
	}
	m.issuer = certmagic.NewACMEIssuer(m.cfg, tmpl)
	m.cfg.Issuers = []certmagic.Issuer{m.issuer}
	return m, nil
}

// CleanDomains lower-cases and checks domain names for ACME.
func CleanDomains(domains []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, d := range domains {
		d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if d == "" || seen[d] {
			continue
		}
		switch {
		case strings.Contains(d, "*"):
			return nil, fmt.Errorf("edge: domain %q: wildcard certificates need DNS-01 challenges, which tenon does not do; list each name", d)
		case net.ParseIP(strings.Trim(d, "[]")) != nil:
			return nil, fmt.Errorf("edge: domain %q: use a DNS name, not an IP address", d)
		case !validDNSName(d):
			return nil, fmt.Errorf("edge: domain %q is not a valid DNS name", d)
		}
		seen[d] = true
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil, errors.New("edge: no domains: list the DNS names the app is reached under")
	}
	return out, nil
}

func validDNSName(d string) bool {
	if len(d) > 253 || !strings.Contains(d, ".") {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// Domains returns the managed domain names.
func (m *Manager) Domains() []string { return append([]string(nil), m.domains...) }

// Start loads the certificates from storage, or obtains them, in the
// background, and keeps renewing them until Stop. Failures are retried
// with backoff and logged; Ready says when every domain has one. ctx
// bounds the whole management, so pass the server's lifetime.
func (m *Manager) Start(ctx context.Context) error {
	if err := m.cfg.ManageAsync(ctx, m.domains); err != nil {
		return fmt.Errorf("edge: manage certificates of %s: %w", strings.Join(m.domains, ", "), err)
	}
	return nil
}

// Stop ends renewals. It does not close the storage.
func (m *Manager) Stop() { m.cache.Stop() }

// TLSConfig returns the configuration of the HTTPS listener: certificates
// of the managed domains by SNI, TLS-ALPN-01 answers, HTTP/2, TLS 1.2 at
// least.
func (m *Manager) TLSConfig() *tls.Config {
	tc := m.cfg.TLSConfig()
	tc.NextProtos = []string{"h2", "http/1.1", acmez.ACMETLS1Protocol}
	tc.MinVersion = tls.VersionTLS12
	return tc
}

// HTTPHandler answers HTTP-01 challenges and passes everything else to
// next (usually RedirectHTTPS).
func (m *Manager) HTTPHandler(next http.Handler) http.Handler {
	return m.issuer.HTTPChallengeHandler(next)
}

// Ready reports whether every domain has a certificate loaded that has
// not expired: the readiness check "certificate".
func (m *Manager) Ready(context.Context) error {
	now := m.now()
	var missing []string
	for _, d := range m.domains {
		if exp, ok := m.expiry(d); !ok || !now.Before(exp) {
			missing = append(missing, d)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("no valid certificate loaded yet for %s", strings.Join(missing, ", "))
	}
	return nil
}

// Expiry returns, for each domain with a certificate loaded, when it
// expires; for metrics.
func (m *Manager) Expiry() map[string]time.Time {
	out := map[string]time.Time{}
	for _, d := range m.domains {
		if exp, ok := m.expiry(d); ok {
			out[d] = exp
		}
	}
	return out
}

func (m *Manager) expiry(domain string) (time.Time, bool) {
	var latest time.Time
	for _, c := range m.cache.AllMatchingCertificates(domain) {
		if c.Leaf != nil && c.Leaf.NotAfter.After(latest) {
			latest = c.Leaf.NotAfter
		}
	}
	return latest, !latest.IsZero()
}
