package upgrade

import "net"

// SameAddr exposes the address matching of socket-activated listeners.
func SameAddr(network, addr string, have net.Addr) bool { return sameAddr(key{network, addr}, have) }
