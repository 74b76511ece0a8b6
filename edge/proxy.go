package edge

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// forwardedHeaders are the request headers a proxy sets about the client.
// Anyone can send them; they mean something only when a trusted proxy
// set them.
var forwardedHeaders = []string{
	"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port",
	"X-Forwarded-Prefix", "Forwarded", "X-Real-Ip", "X-Request-Id",
}

// TrustedProxies are the addresses of the proxies in front of the app.
// The zero value and nil trust nobody.
type TrustedProxies struct {
	prefixes []netip.Prefix
}

// ParseTrustedProxies reads addresses ("10.0.0.7", "::1") and networks
// ("10.0.0.0/8", "fd00::/8").
func ParseTrustedProxies(list []string) (*TrustedProxies, error) {
	tp := &TrustedProxies{}
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if strings.Contains(s, "/") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("edge: trusted proxy %q is not an address or network: %w", s, err)
			}
			tp.prefixes = append(tp.prefixes, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("edge: trusted proxy %q is not an address or network: %w", s, err)
		}
		a = a.Unmap()
		tp.prefixes = append(tp.prefixes, netip.PrefixFrom(a, a.BitLen()))
	}
	return tp, nil
}

// Empty reports whether no proxy is trusted.
func (tp *TrustedProxies) Empty() bool { return tp == nil || len(tp.prefixes) == 0 }

// Trusts reports whether a is a trusted proxy.
func (tp *TrustedProxies) Trusts(a netip.Addr) bool {
	if tp == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap()
	for _, p := range tp.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Handler makes next see the client as the proxies saw it, and only then.
//
// From a trusted peer: RemoteAddr becomes the client address taken from
// X-Forwarded-For — the rightmost entry that is not itself a trusted
// proxy, since everything left of it was written by the client and may
// be forged — Host becomes X-Forwarded-Host when it is a well-formed
// host, and X-Forwarded-Proto is kept when it is "http" or "https".
//
// From anyone else every forwarding header, X-Request-Id included, is
// removed before next runs, so neither the app nor the request log can
// be fooled by a client claiming to be someone else.
func (tp *TrustedProxies) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer := addrOf(r.RemoteAddr)
		if !tp.Trusts(peer) {
			if hasForwarded(r.Header) {
				r = r.Clone(r.Context())
				for _, h := range forwardedHeaders {
					r.Header.Del(h)
				}
			}
			next.ServeHTTP(w, r)
			return
		}
		r = r.Clone(r.Context())
		if client, ok := tp.clientFrom(r.Header.Values("X-Forwarded-For")); ok {
			r.RemoteAddr = net.JoinHostPort(client.String(), "0")
		}
		if h := lastValue(r.Header.Values("X-Forwarded-Host")); h != "" && validHost(h) {
			r.Host = h
		}
		switch p := strings.ToLower(lastValue(r.Header.Values("X-Forwarded-Proto"))); p {
		case "http", "https":
			r.Header.Set("X-Forwarded-Proto", p)
		default:
			r.Header.Del("X-Forwarded-Proto")
		}
		next.ServeHTTP(w, r)
	})
}

// clientFrom walks X-Forwarded-For from the right, skipping trusted
// proxies. A malformed entry ends the walk: nothing left of it can be
// attributed to a proxy, so the last good hop is the client.
func (tp *TrustedProxies) clientFrom(values []string) (netip.Addr, bool) {
	var hops []string
	for _, v := range values {
		hops = append(hops, strings.Split(v, ",")...)
	}
	var client netip.Addr
	for i := len(hops) - 1; i >= 0; i-- {
		a := addrOf(strings.TrimSpace(hops[i]))
		if !a.IsValid() {
			break
		}
		client = a
		if !tp.Trusts(a) {
			break
		}
	}
	return client, client.IsValid()
}

// addrOf parses "ip", "ip:port" or "[ip]:port".
func addrOf(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}

func hasForwarded(h http.Header) bool {
	for _, k := range forwardedHeaders {
		if _, ok := h[k]; ok {
			return true
		}
	}
	return false
}

// lastValue is the value the nearest proxy appended.
func lastValue(values []string) string {
	if len(values) == 0 {
		return ""
	}
	v := values[len(values)-1]
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return strings.TrimSpace(v)
}

// validHost accepts a DNS name or an IP, with an optional port.
func validHost(h string) bool {
	host := h
	if hh, port, err := net.SplitHostPort(h); err == nil {
		if port == "" || len(port) > 5 {
			return false
		}
		for i := 0; i < len(port); i++ {
			if port[i] < '0' || port[i] > '9' {
				return false
			}
		}
		host = hh
	}
	if addrOf(host).IsValid() {
		return true
	}
	if host == "" || len(host) > 253 {
		return false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
