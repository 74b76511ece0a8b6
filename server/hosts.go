package server

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/tenon-dev/tenon"
)

// validateHostGlob accepts a host name whose labels are either literal or
// a single '*'. Partial wildcards ("a*.example.com") and a bare "*" are
// refused: the first is easy to get wrong, the second allows any host.
func validateHostGlob(g string) error {
	if g == "" {
		return fmt.Errorf("empty host glob")
	}
	if g != strings.ToLower(g) {
		return fmt.Errorf("host glob %q must be lower case", g)
	}
	labels := strings.Split(g, ".")
	literal := 0
	for _, l := range labels {
		switch {
		case l == "":
			return fmt.Errorf("host glob %q has an empty label", g)
		case l == "*":
		case strings.Contains(l, "*"):
			return fmt.Errorf("host glob %q: '*' must be a whole label, as in *.atlassian.net", g)
		case strings.ContainsAny(l, ":/@ "):
			return fmt.Errorf("host glob %q must be a host name without scheme, port or path", g)
		default:
			literal++
		}
	}
	if literal == 0 {
		return fmt.Errorf("host glob %q matches any host", g)
	}
	return nil
}

// hostMatches reports whether host matches glob label by label; '*'
// matches exactly one non-empty label, so "*.atlassian.net" matches
// "acme.atlassian.net" but neither "atlassian.net" nor
// "a.b.atlassian.net".
func hostMatches(glob, host string) bool {
	for {
		gl, grest, gmore := strings.Cut(glob, ".")
		hl, hrest, hmore := strings.Cut(host, ".")
		if hl == "" || (gl != "*" && gl != hl) {
			return false
		}
		if !gmore || !hmore {
			return gmore == hmore
		}
		glob, host = grest, hrest
	}
}

// checkProductURL enforces the scheme and host policy on a product baseUrl
// from a lifecycle body: https, or http to a loopback host when AllowHTTP
// is set. It is defence in depth: the signature is the real
// protection, but a tenant record pointing at an arbitrary host would make
// the app send signed requests there.
func (s *Server) checkProductURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Opaque != "" {
		return errInvalid("The baseUrl in the body is not an absolute URL.")
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	switch u.Scheme {
	case "https":
	case "http":
		// Plain http only ever reaches a product on this machine (a fake
		// one, in development): anywhere else the shared secret and every
		// signed call would cross the network readable, whatever the
		// environment and the allow-list say.
		if !s.cfg.AllowHTTP {
			return errForbidden("The product baseUrl must use https.")
		}
		if !tenon.LoopbackHost(host) {
			return errForbidden("The product baseUrl must use https: http is accepted only for a product on this machine (localhost, 127.0.0.0/8, [::1]).")
		}
	default:
		return errInvalid("The baseUrl in the body must be an http or https URL.")
	}
	for _, g := range s.cfg.AllowedHosts {
		if hostMatches(g, host) {
			return nil
		}
	}
	return errForbidden("The product host is not allowed for this app.")
}
