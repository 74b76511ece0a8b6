package tenon

import (
	"net/netip"
	"strings"
)

// LoopbackHost reports whether host, as url.URL.Hostname returns it,
// names this machine: "localhost", an address in 127.0.0.0/8, or ::1.
//
// It is the one test of where plain http:// may be spoken: a product, key
// server or token endpoint on loopback cannot be read or altered on the
// way, anything else can, whatever the environment calls itself. Names
// under .localhost are not included: nothing guarantees they resolve to
// loopback.
func LoopbackHost(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}
