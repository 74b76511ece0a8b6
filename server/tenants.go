package server

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/connectjwt"
)

// tenant is a cached installation with its secret prepared for HMAC, so
// the hot path neither queries the store nor hashes the key. The key is made
// from the record it is cached with: a new secret arrives with a new
// record, and with it a new key.
type tenant struct {
	inst    *tenon.Installation // shared; never modified after caching
	key     *connectjwt.HS256Key
	expires time.Time
}

// tenantCache keeps verified tenant records for a short time. Only found
// tenants are cached: an unknown clientKey is asked of the store every
// time, so a tenant is usable the moment its install commits, and a flood
// of made-up clientKeys cannot fill memory.
type tenantCache struct {
	ttl   time.Duration
	now   func() time.Time
	store tenon.InstallationStore

	mu sync.RWMutex
	m  map[string]*tenant
	// gen counts invalidations. A load that started before one must not
	// cache what it read: the record it read may be the one just replaced.
	gen uint64
}

func newTenantCache(store tenon.InstallationStore, ttl time.Duration, now func() time.Time) *tenantCache {
	return &tenantCache{ttl: ttl, now: now, store: store, m: make(map[string]*tenant)}
}

// get returns the tenant with clientKey from the cache or the store. A
// store error (ENOTFOUND included) is returned as is.
func (c *tenantCache) get(ctx context.Context, clientKey string) (*tenant, error) {
	now := c.now()
	c.mu.RLock()
	t := c.m[clientKey]
	gen := c.gen
	c.mu.RUnlock()
	if t != nil && now.Before(t.expires) {
		return t, nil
	}

	inst, err := c.store.Installation(ctx, clientKey)
	if err != nil {
		return nil, err
	}
	// The raw installed body stays in the store: no handler needs it,
	// and at thousands of tenants it would be most of the cache.
	inst.Payload = nil
	t = &tenant{inst: inst, key: connectjwt.NewHS256Key([]byte(inst.SharedSecret)), expires: now.Add(c.ttl)}
	if c.ttl > 0 {
		// The map keeps its key for as long as the entry lives. The
		// caller's clientKey is usually a slice of a request's decoded
		// token, which would keep all of that token in memory with every
		// cached tenant (about 460 bytes each); the record's own key is
		// already kept.
		key := inst.ClientKey
		if key != clientKey {
			key = strings.Clone(clientKey)
		}
		c.mu.Lock()
		if c.gen == gen {
			c.m[key] = t
		}
		c.mu.Unlock()
	}
	return t, nil
}

// invalidate drops clientKey's entry; an empty clientKey drops them all.
func (c *tenantCache) invalidate(clientKey string) {
	c.mu.Lock()
	c.gen++
	if clientKey == "" {
		clear(c.m)
	} else {
		delete(c.m, clientKey)
	}
	c.mu.Unlock()
}
