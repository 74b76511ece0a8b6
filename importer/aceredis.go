package importer

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// aceRedis reads ACE's Redis store: the key "<clientKey>:<key>" holds a
// setting (clientInfo is the install payload), "installation:<id>;" links
// a Forge installation to a clientKey and "forge:<id>:<key>" is Forge
// storage.
type aceRedis struct {
	client *redis.Client
	shown  string
	opts   Options
}

// scanBatch is how many keys one SCAN asks for.
const scanBatch = 500

func openACERedis(ctx context.Context, dsn string, opts Options) (*aceRedis, error) {
	ro, err := redis.ParseURL(dsn)
	if err != nil {
		return nil, fmt.Errorf("the Redis URL %s is not valid: %w", redactDSN(dsn), err)
	}
	ro.MaxRetries = 1
	ro.DialTimeout, ro.ReadTimeout, ro.WriteTimeout = 5*time.Second, 10*time.Second, 10*time.Second
	c := redis.NewClient(ro)
	s := &aceRedis{client: c, shown: redactDSN(dsn), opts: opts}
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("cannot reach Redis at %s: %w", s.shown, err)
	}
	return s, nil
}

func (s *aceRedis) Close() error { return s.client.Close() }

func (s *aceRedis) Read(ctx context.Context) ([]Record, []Problem, error) {
	var keys []string
	var cursor uint64
	for {
		batch, next, err := s.client.Scan(ctx, cursor, "*", scanBatch).Result()
		if err != nil {
			return nil, nil, fmt.Errorf("list the keys of Redis at %s: %w", s.shown, err)
		}
		keys = append(keys, batch...)
		if cursor = next; cursor == 0 {
			break
		}
	}
	sort.Strings(keys)
	keys = dedupe(keys)
	// A tenant is a key ending in :clientInfo; its other settings are the
	// keys under the same prefix.
	tenants := map[string]bool{}
	for _, k := range keys {
		if ck, ok := strings.CutSuffix(k, ":clientInfo"); ok && ck != "" {
			tenants[ck] = true
		}
	}
	var rows []aceRow
	var probs []Problem
	links := map[string]string{}
	for _, k := range keys {
		val, err := s.client.Get(ctx, k).Result()
		if errors.Is(err, redis.Nil) {
			continue // deleted while we read
		}
		if err != nil {
			if strings.Contains(err.Error(), "WRONGTYPE") {
				probs = append(probs, Problem{Where: k, Reason: "not a string key; ACE writes only strings"})
				continue
			}
			return nil, nil, fmt.Errorf("read key %q from Redis at %s: %w", k, s.shown, err)
		}
		if id, ok := strings.CutPrefix(k, "installation:"); ok && strings.HasSuffix(id, ";") {
			links[val] = strings.TrimSuffix(id, ";")
			continue
		}
		if strings.HasPrefix(k, "forge:") {
			probs = append(probs, Problem{Where: k, Reason: "Forge settings are kept per Forge installation, not per tenant; not imported"})
			continue
		}
		ck, key := splitTenantKey(k, tenants)
		if ck == "" {
			probs = append(probs, Problem{Where: k, Reason: "not a key of a tenant with a clientInfo"})
			continue
		}
		rows = append(rows, aceRow{id: k, clientKey: sql.NullString{String: ck, Valid: true},
			key: sql.NullString{String: key, Valid: true}, val: val})
	}
	recs, more := aceRecords(rows, links, "", s.opts)
	return recs, append(probs, more...), nil
}

// splitTenantKey splits "<clientKey>:<key>" at the longest known clientKey.
func splitTenantKey(k string, tenants map[string]bool) (string, string) {
	best := ""
	for i := 0; i < len(k); i++ {
		if k[i] == ':' && tenants[k[:i]] && i > len(best) {
			best = k[:i]
		}
	}
	if best == "" {
		return "", ""
	}
	return best, k[len(best)+1:]
}

func dedupe(sorted []string) []string {
	out := sorted[:0]
	for i, k := range sorted {
		if i == 0 || k != sorted[i-1] {
			out = append(out, k)
		}
	}
	return out
}
