package connectjwt

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// KeySource gives the RSA public key of a kid. Implementations return
// errors wrapping ErrKeyNotFound when the key server says there is no such
// key (the caller answers 401), and ErrKeyUnavailable for network errors,
// timeouts, 5xx, oversized or garbage responses (the caller answers 503,
// and the product retries). They must be safe for concurrent use.
type KeySource interface {
	PublicKey(ctx context.Context, kid string) (*rsa.PublicKey, error)
}

// Defaults of KeyServerOptions.
const (
	DefaultKeyTimeout     = 5 * time.Second
	DefaultKeyMaxBytes    = 16 << 10
	DefaultMaxKeys        = 1000
	DefaultKeyNotFoundTTL = 5 * time.Second
	maxKidLength          = 256
)

// KeyServerOptions configure NewKeyServer. The zero value is ready to use.
type KeyServerOptions struct {
	Client   *http.Client  // nil: a client with Timeout
	Timeout  time.Duration // bounds each attempt (one base URL: connect, request, body); default 5s
	MaxBytes int64         // response limit; default 16 KiB
	// Fallbacks are further base URLs, tried in order when the ones before
	// are unavailable. A 404 is an answer, not an outage: it ends the
	// search.
	Fallbacks []string

	// MaxKeys bounds the cache; when full, the oldest kid is dropped.
	// Default 1000: a product rotates its install key rarely.
	MaxKeys int
	// NotFoundTTL is how long a 404 for a kid is remembered, so that
	// tokens repeating one unknown kid do not each cost a request to the
	// key server. Default 5s; negative: not remembered. Unavailability is
	// never remembered (see KeyServer).
	NotFoundTTL time.Duration
	// Now is the clock of NotFoundTTL; nil: time.Now.
	Now func() time.Time
}

// KeyServer is a KeySource that fetches GET <baseURL>/<kid>, a PEM
// "PUBLIC KEY" (PKIX) holding an RSA key of 2048 to 8192 bits.
//
// A kid never changes its key, so keys are cached per kid for the life of
// the KeyServer (at most MaxKeys, oldest dropped first). Concurrent
// lookups of one kid share one fetch, which runs detached from any one
// caller's context: a caller that gives up gets an error at once, while
// the fetch goes on, bounded by Timeout, for the others and for the cache.
//
// Failures are not cached, except a 404 for NotFoundTTL: an outage should
// end the moment the key server is back, and the shared fetch already
// keeps a burst of tokens with one kid to one request. A stream of tokens
// with ever new kids is not something a cache can stop; the lifecycle
// routes that reach this are for rate limits to protect.
type KeyServer struct {
	bases    []string // primary, then fallbacks; no trailing '/'
	client   *http.Client
	timeout  time.Duration
	maxBytes int64
	maxKeys  int
	notFound time.Duration
	now      func() time.Time

	flights singleflight.Group

	mu      sync.RWMutex
	keys    map[string]*rsa.PublicKey
	order   []string             // kids of keys, oldest first
	missing map[string]time.Time // kid → until when its 404 is believed
}

var _ KeySource = (*KeyServer)(nil)

// NewKeyServer returns a KeyServer for baseURL and opts.Fallbacks. The URLs
// come from configuration, never from a request: whoever chooses the key
// server chooses which installs are genuine. Each must be an absolute http
// or https URL without query or fragment (use https outside tests).
func NewKeyServer(baseURL string, opts KeyServerOptions) (*KeyServer, error) {
	k := &KeyServer{
		client:   opts.Client,
		timeout:  opts.Timeout,
		maxBytes: opts.MaxBytes,
		maxKeys:  opts.MaxKeys,
		notFound: opts.NotFoundTTL,
		now:      opts.Now,
		keys:     make(map[string]*rsa.PublicKey),
		missing:  make(map[string]time.Time),
	}
	for _, raw := range append([]string{baseURL}, opts.Fallbacks...) {
		base, err := checkBaseURL(raw)
		if err != nil {
			return nil, err
		}
		k.bases = append(k.bases, base)
	}
	if k.timeout <= 0 {
		k.timeout = DefaultKeyTimeout
	}
	if k.maxBytes <= 0 {
		k.maxBytes = DefaultKeyMaxBytes
	}
	if k.maxKeys <= 0 {
		k.maxKeys = DefaultMaxKeys
	}
	if k.notFound == 0 {
		k.notFound = DefaultKeyNotFoundTTL
	}
	if k.now == nil {
		k.now = time.Now
	}
	if k.client == nil {
		k.client = &http.Client{Timeout: k.timeout}
	}
	return k, nil
}

func checkBaseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("connectjwt: key server URL %q: %w", raw, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", fmt.Errorf("connectjwt: key server URL %q: want http(s)://host[/path] without user, query or fragment", raw)
	}
	return strings.TrimRight(raw, "/"), nil
}

// PublicKey returns the key of kid from the cache or the key server.
func (k *KeyServer) PublicKey(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	if err := checkKid(kid); err != nil {
		// No key server can hold a key under such a name.
		return nil, fmt.Errorf("%w: %w", ErrKeyNotFound, err)
	}
	if key, err := k.cached(kid); key != nil || err != nil {
		return key, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: kid %q: %w", ErrKeyUnavailable, kid, err)
	}
	// The fetch must not die with the caller that happened to start it,
	// or every caller sharing it would fail too.
	shared := context.WithoutCancel(ctx)
	ch := k.flights.DoChan(kid, func() (any, error) {
		if key, err := k.cached(kid); key != nil || err != nil {
			return key, err // a fetch finished between our look and this one
		}
		return k.fetch(shared, kid)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*rsa.PublicKey), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: kid %q: %w", ErrKeyUnavailable, kid, ctx.Err())
	}
}

// cached returns the cached key of kid, or an ErrKeyNotFound error while a
// recent 404 for it is believed, or neither.
func (k *KeyServer) cached(kid string) (*rsa.PublicKey, error) {
	k.mu.RLock()
	key := k.keys[kid]
	until, missing := k.missing[kid]
	k.mu.RUnlock()
	if key != nil {
		return key, nil
	}
	if missing && k.now().Before(until) {
		return nil, fmt.Errorf("%w: kid %q (key server answered 404 moments ago)", ErrKeyNotFound, kid)
	}
	return nil, nil
}

// fetch asks each base URL in turn until one answers with a key or a 404.
func (k *KeyServer) fetch(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	var errs []error
	for _, base := range k.bases {
		key, err := k.fetchFrom(ctx, base, kid)
		if err == nil {
			k.remember(kid, key)
			return key, nil
		}
		if errors.Is(err, ErrKeyNotFound) {
			k.rememberMissing(kid)
			return nil, err
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func (k *KeyServer) fetchFrom(ctx context.Context, base, kid string) (*rsa.PublicKey, error) {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	u := base + "/" + escapeKid(kid)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrKeyUnavailable, u, err)
	}
	req.Header.Set("Accept", "application/x-pem-file, text/plain, */*")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyUnavailable, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusGone:
		drain(resp.Body)
		return nil, fmt.Errorf("%w: GET %s: %s", ErrKeyNotFound, u, resp.Status)
	default:
		// 403 included: it may be a missing object behind a CDN, or a
		// misconfiguration; either way another server may know better.
		drain(resp.Body)
		return nil, fmt.Errorf("%w: GET %s: %s", ErrKeyUnavailable, u, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, k.maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: reading body: %w", ErrKeyUnavailable, u, err)
	}
	if int64(len(body)) > k.maxBytes {
		return nil, fmt.Errorf("%w: GET %s: response over %d bytes", ErrKeyUnavailable, u, k.maxBytes)
	}
	key, err := ParsePublicKeyPEM(body)
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %w", ErrKeyUnavailable, u, err)
	}
	return key, nil
}

// drain reads a little of an unwanted body so the connection can be
// reused, without letting a large body hold us up.
func drain(r io.Reader) {
	_, _ = io.CopyN(io.Discard, r, 4<<10)
}

func (k *KeyServer) remember(kid string, key *rsa.PublicKey) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.missing, kid)
	if _, ok := k.keys[kid]; ok {
		return
	}
	for len(k.order) >= k.maxKeys {
		delete(k.keys, k.order[0])
		k.order = k.order[1:]
	}
	k.keys[kid] = key
	k.order = append(k.order, kid)
}

func (k *KeyServer) rememberMissing(kid string) {
	if k.notFound < 0 {
		return
	}
	now := k.now()
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.missing) >= k.maxKeys {
		for id, until := range k.missing {
			if !now.Before(until) {
				delete(k.missing, id)
			}
		}
		for id := range k.missing {
			if len(k.missing) < k.maxKeys {
				break
			}
			delete(k.missing, id)
		}
	}
	k.missing[kid] = now.Add(k.notFound)
}

// ParsePublicKeyPEM decodes one PEM "PUBLIC KEY" block (PKIX) holding an
// RSA key of 2048 to 8192 bits, as the Connect install key server serves
// it. Only whitespace may surround the block.
func ParsePublicKeyPEM(data []byte) (*rsa.PublicKey, error) {
	trimmed := bytes.TrimSpace(data)
	block, rest := pem.Decode(trimmed)
	if block == nil || len(bytes.TrimSpace(rest)) != 0 || !bytes.HasPrefix(trimmed, []byte("-----BEGIN ")) {
		return nil, errors.New("not exactly one PEM block")
	}
	if block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("PEM block is %q, want PUBLIC KEY", block.Type)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing public key: %w", err)
	}
	key, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key is %T, want RSA", pub)
	}
	if err := checkRSAKey(key); err != nil {
		return nil, err
	}
	return key, nil
}

// checkKid accepts the kids a key server can serve as a path: 1 to 256
// bytes of [A-Za-z0-9._-] in '/'-separated non-empty segments, without
// "..". The rules are narrower than any real kid needs, so that a kid
// cannot steer the request anywhere but under the base URL.
func checkKid(kid string) error {
	if kid == "" {
		return errors.New("kid is empty")
	}
	if len(kid) > maxKidLength {
		return fmt.Errorf("kid is %d bytes, limit %d", len(kid), maxKidLength)
	}
	if strings.Contains(kid, "..") {
		return fmt.Errorf("kid %s contains \"..\"", quoteShort(kid))
	}
	if kid[0] == '/' || kid[len(kid)-1] == '/' || strings.Contains(kid, "//") {
		return fmt.Errorf("kid %s has an empty path segment", quoteShort(kid))
	}
	for i := 0; i < len(kid); i++ {
		c := kid[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '.' || c == '_' || c == '-' || c == '/') {
			return fmt.Errorf("kid %s has a character outside [A-Za-z0-9._-/]", quoteShort(kid))
		}
	}
	for seg := range strings.SplitSeq(kid, "/") {
		if seg == "." {
			return fmt.Errorf("kid %s has a \".\" segment", quoteShort(kid))
		}
	}
	return nil
}

// escapeKid path-escapes each segment of a checked kid. The check leaves
// nothing to escape; escaping anyway keeps the URL safe should the rules
// above ever be widened.
func escapeKid(kid string) string {
	if !strings.Contains(kid, "/") {
		return url.PathEscape(kid)
	}
	segs := strings.Split(kid, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
