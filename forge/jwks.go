package forge

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/tenon-dev/tenon"
)

// Defaults of JWKSOptions.
const (
	DefaultRefreshInterval    = time.Hour
	DefaultMinRefetchInterval = time.Minute
	DefaultMaxAge             = 24 * time.Hour
	DefaultFetchTimeout       = 5 * time.Second
	// maxJWKSBytes bounds the key set document; Atlassian's holds a few keys.
	maxJWKSBytes = 256 << 10
	// minRSABits refuses keys too short to trust.
	minRSABits = 2048
)

// JWKSOptions configure a JWKS. The zero value is usable.
type JWKSOptions struct {
	// HTTPClient fetches the key set. Its redirect policy is replaced:
	// redirects are followed only on the same origin. Default: a client
	// with FetchTimeout as its timeout.
	HTTPClient *http.Client
	// Now is the clock deciding when the set is stale and when an unknown
	// kid may trigger another fetch. Default time.Now.
	Now func() time.Time
	// RefreshInterval is how often Run fetches the set, and the age after
	// which a lookup fetches it when Run is not running. Default 1 h.
	RefreshInterval time.Duration
	// MinRefetchInterval is the least time between two fetches caused by
	// lookups (an unknown kid, a stale set), so a flood of tokens with
	// made-up kids costs Atlassian's CDN one request per interval, not one
	// per token. Default 1 min.
	MinRefetchInterval time.Duration
	// MaxAge is how long a fetched set is trusted without a successful
	// refresh. Past it, every lookup fails with ErrKeyUnavailable until a
	// fetch succeeds: a key Atlassian withdrew must not stay valid for
	// ever because its CDN was unreachable. Default 24 h.
	MaxAge time.Duration
	// FetchTimeout bounds one fetch. Default 5 s.
	FetchTimeout time.Duration
	// Logger receives failed refreshes. Default: discard.
	Logger *slog.Logger
}

// JWKS is a cached JSON Web Key Set at one pinned URL. It keeps the RSA
// signing keys (kty RSA, use sig or unset, alg RS256 or unset, at least
// 2048 bits) and ignores every other key. It is safe for concurrent use;
// lookups of known kids take no lock.
type JWKS struct {
	url     string
	client  *http.Client
	now     func() time.Time
	refresh time.Duration
	minGap  time.Duration
	maxAge  time.Duration
	timeout time.Duration
	log     *slog.Logger

	set    atomic.Pointer[keySet]
	flight singleflight.Group

	mu          sync.Mutex
	lastAttempt time.Time // of the latest fetch, successful or not
	lastErr     error     // of the latest fetch; nil after a success
	fetches     int       // successful or not, for Stats
	inFlight    bool      // a fetch is running
}

type keySet struct {
	keys      map[string]*rsa.PublicKey
	fetchedAt time.Time
}

// NewJWKS returns a key set cache for rawURL, which must be an absolute
// https URL (http only for a loopback host, in tests and development).
// It fetches nothing yet.
func NewJWKS(rawURL string, opts JWKSOptions) (*JWKS, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return nil, fmt.Errorf("forge: JWKS URL %q is not an absolute URL", rawURL)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && tenon.LoopbackHost(u.Hostname())) {
		return nil, fmt.Errorf("forge: JWKS URL %q must be https (http only on a loopback host)", rawURL)
	}
	j := &JWKS{
		url:     u.String(),
		now:     opts.Now,
		refresh: opts.RefreshInterval,
		minGap:  opts.MinRefetchInterval,
		maxAge:  opts.MaxAge,
		timeout: opts.FetchTimeout,
		log:     opts.Logger,
	}
	if j.now == nil {
		j.now = time.Now
	}
	if j.refresh <= 0 {
		j.refresh = DefaultRefreshInterval
	}
	if j.minGap <= 0 {
		j.minGap = DefaultMinRefetchInterval
	}
	if j.maxAge <= 0 {
		j.maxAge = DefaultMaxAge
	}
	if j.maxAge < j.refresh {
		return nil, fmt.Errorf("forge: JWKS MaxAge %v is shorter than RefreshInterval %v", j.maxAge, j.refresh)
	}
	if j.timeout <= 0 {
		j.timeout = DefaultFetchTimeout
	}
	if j.log == nil {
		j.log = slog.New(slog.DiscardHandler)
	}
	j.client = &http.Client{Timeout: j.timeout}
	if opts.HTTPClient != nil {
		*j.client = *opts.HTTPClient
		if j.client.Timeout <= 0 {
			j.client.Timeout = j.timeout
		}
	}
	j.client.Jar = nil
	j.client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		first := via[0].URL
		if len(via) > 3 || req.URL.Scheme != first.Scheme || !strings.EqualFold(req.URL.Host, first.Host) {
			return errors.New("forge: the JWKS redirected to another origin")
		}
		return nil
	}
	return j, nil
}

// URL returns the pinned URL.
func (j *JWKS) URL() string { return j.url }

// PublicKey implements KeySource. A kid of a fresh set answers at once. An
// unknown kid, a set older than RefreshInterval, or no set at all causes a
// fetch, at most one per MinRefetchInterval (concurrent lookups share it).
// When the set cannot be fetched: a kid of a set younger than MaxAge still
// answers; anything else fails with ErrKeyUnavailable.
func (j *JWKS) PublicKey(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	now := j.now()
	ks := j.set.Load()
	if ks != nil && now.Sub(ks.fetchedAt) < j.refresh {
		if k := ks.keys[kid]; k != nil {
			return k, nil
		}
	}
	if j.mayFetch(now) {
		fresh, err := j.fetchShared(ctx)
		if err == nil {
			if k := fresh.keys[kid]; k != nil {
				return k, nil
			}
			return nil, fmt.Errorf("%w: kid %s, even after fetching the key set again", ErrKeyNotFound, quoteKid(kid))
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: %v", ErrKeyUnavailable, ctx.Err())
		}
		// Fall through to what is cached.
	}
	ks = j.set.Load()
	usable := ks != nil && now.Sub(ks.fetchedAt) < j.maxAge
	if !usable {
		why := "no key set fetched yet"
		if err := j.lastError(); err != nil {
			why = err.Error()
		} else if ks != nil {
			why = fmt.Sprintf("the key set is older than %v", j.maxAge)
		}
		return nil, fmt.Errorf("%w: %s: %s", ErrKeyUnavailable, j.url, why)
	}
	if k := ks.keys[kid]; k != nil {
		return k, nil
	}
	if err := j.lastError(); err != nil {
		// A kid we do not know while the set cannot be fetched may be a
		// new key: "try again" is the honest answer.
		return nil, fmt.Errorf("%w: kid %s is unknown and %s: %v", ErrKeyUnavailable, quoteKid(kid), j.url, err)
	}
	return nil, fmt.Errorf("%w: kid %s (the key set was fetched less than %v ago)", ErrKeyNotFound, quoteKid(kid), j.minGap)
}

// mayFetch reports whether a lookup may fetch now, and if so reserves the
// slot, so that concurrent lookups do not all decide to fetch. A lookup
// may always join a fetch in flight: on a cold start every request waits
// for the first fetch instead of failing.
func (j *JWKS) mayFetch(now time.Time) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.inFlight {
		return true
	}
	if !j.lastAttempt.IsZero() && now.Sub(j.lastAttempt) < j.minGap {
		return false
	}
	j.lastAttempt = now
	j.inFlight = true // until the fetch this caller starts ends
	return true
}

func (j *JWKS) lastError() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.lastErr
}

// Refresh fetches the key set now, whatever its age, and replaces the
// cached one on success. A failed fetch leaves the cached set in place.
func (j *JWKS) Refresh(ctx context.Context) error {
	j.mu.Lock()
	j.lastAttempt = j.now()
	j.inFlight = true
	j.mu.Unlock()
	_, err := j.fetchShared(ctx)
	return err
}

// fetchShared runs one fetch for all concurrent callers. The fetch runs
// on a context detached from any one caller's, bounded by FetchTimeout,
// so a caller that gives up does not fail the others.
func (j *JWKS) fetchShared(ctx context.Context) (*keySet, error) {
	ch := j.flight.DoChan("", func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), j.timeout)
		defer cancel()
		ks, err := j.fetch(fctx)
		if err == nil {
			j.set.Store(ks)
		}
		j.mu.Lock()
		j.inFlight = false
		j.fetches++
		j.lastErr = err
		j.mu.Unlock()
		if err != nil {
			j.log.Warn("forge: fetching the JWKS failed", "url", j.url, "err", err)
			return nil, err
		}
		return ks, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*keySet), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (j *JWKS) fetch(ctx context.Context) (*keySet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return nil, fmt.Errorf("forge: JWKS request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := j.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("forge: fetching %s: %w", j.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("forge: fetching %s: status %d", j.url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("forge: reading %s: %w", j.url, err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("forge: %s is larger than %d bytes", j.url, maxJWKSBytes)
	}
	keys, err := ParseJWKS(body)
	if err != nil {
		return nil, fmt.Errorf("forge: %s: %w", j.url, err)
	}
	return &keySet{keys: keys, fetchedAt: j.now()}, nil
}

// ParseJWKS returns the RS256 signing keys of a JWK Set document by kid.
// Keys of other types or uses, keys without kid, and keys shorter than
// 2048 bits are skipped; a kid that appears twice is refused, since which
// key it means would be a guess. A set without a usable key is an error.
func ParseJWKS(doc []byte) (map[string]*rsa.PublicKey, error) {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Use string `json:"use"`
			Alg string `json:"alg"`
			N   string `json:"n"`
			E   string `json:"e"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil, fmt.Errorf("the key set is not a JWK Set: %w", err)
	}
	keys := make(map[string]*rsa.PublicKey, len(set.Keys))
	for _, k := range set.Keys {
		if k.Kty != "RSA" || k.Kid == "" || (k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != "RS256") {
			continue
		}
		if _, dup := keys[k.Kid]; dup {
			return nil, fmt.Errorf("kid %s appears twice in the key set", quoteKid(k.Kid))
		}
		pub, err := rsaKey(k.N, k.E)
		if err != nil {
			continue
		}
		keys[k.Kid] = pub
	}
	if len(keys) == 0 {
		return nil, errors.New("the key set has no RS256 signing key")
	}
	return keys, nil
}

func rsaKey(n64, e64 string) (*rsa.PublicKey, error) {
	nb, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(n64, "="))
	if err != nil {
		return nil, err
	}
	eb, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(e64, "="))
	if err != nil {
		return nil, err
	}
	n := new(big.Int).SetBytes(nb)
	if n.BitLen() < minRSABits {
		return nil, errors.New("RSA modulus too short")
	}
	if len(eb) == 0 || len(eb) > 4 {
		return nil, errors.New("RSA exponent out of range")
	}
	e := 0
	for _, b := range eb {
		e = e<<8 | int(b)
	}
	if e < 3 || e%2 == 0 {
		return nil, errors.New("RSA exponent invalid")
	}
	return &rsa.PublicKey{N: n, E: e}, nil
}

// quoteKid quotes an untrusted kid for an error message, shortened.
func quoteKid(kid string) string {
	if len(kid) > 64 {
		kid = kid[:64] + "…"
	}
	return fmt.Sprintf("%q", kid)
}

// Run keeps the key set fresh until ctx ends: it fetches at once when the
// set is missing or older than RefreshInterval, then every
// RefreshInterval; after a failure it tries again sooner (backing off from
// 5 s to RefreshInterval). It returns nil when ctx ends. Running it is
// optional: without it, lookups refresh a stale set themselves.
func (j *JWKS) Run(ctx context.Context) error {
	retry := 5 * time.Second
	for {
		wait := j.refresh
		if ks := j.set.Load(); ks == nil || j.now().Sub(ks.fetchedAt) >= j.refresh {
			if err := j.Refresh(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				wait = min(retry, j.refresh)
				retry = min(2*retry, j.refresh)
			} else {
				retry = 5 * time.Second
			}
		} else {
			wait = j.refresh - j.now().Sub(ks.fetchedAt)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// JWKSStats describe the cache, for health checks.
type JWKSStats struct {
	Keys      int       // usable keys in the cached set
	FetchedAt time.Time // of the cached set; zero when none
	Fetches   int       // fetch attempts so far
	LastError string    // of the latest fetch; "" after a success
}

// Stats returns the cache's state.
func (j *JWKS) Stats() JWKSStats {
	var st JWKSStats
	if ks := j.set.Load(); ks != nil {
		st.Keys, st.FetchedAt = len(ks.keys), ks.fetchedAt
	}
	j.mu.Lock()
	st.Fetches = j.fetches
	if j.lastErr != nil {
		st.LastError = j.lastErr.Error()
	}
	j.mu.Unlock()
	return st
}
