package server

import "unsafe"

// Internals exercised by the external tests.
var (
	HostMatches       = hostMatches
	ValidateHostGlob  = validateHostGlob
	AppendRequestLine = appendRequestLine
)

// CachedTenantKeys counts the entries of s's tenant cache, and those
// whose map key is the cached record's own ClientKey string (the same
// memory), not a copy or a slice of something else.
func CachedTenantKeys(s *Server) (entries, ownKey int) {
	c := s.tenants
	c.mu.RLock()
	defer c.mu.RUnlock()
	for k, t := range c.m {
		entries++
		if len(k) > 0 && unsafe.StringData(k) == unsafe.StringData(t.inst.ClientKey) {
			ownKey++
		}
	}
	return entries, ownKey
}
