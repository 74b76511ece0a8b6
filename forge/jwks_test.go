package forge_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/forge"
)

func newJWKS(t *testing.T, url string, c *clock) *forge.JWKS {
	t.Helper()
	j, err := forge.NewJWKS(url, forge.JWKSOptions{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestJWKSRefreshesStaleSet(t *testing.T) {
	k1, k2 := testKey(t, 0, "k1"), testKey(t, 1, "k2")
	ks := newKeyServer(t, k1)
	c := newClock()
	j := newJWKS(t, ks.url(), c)
	ctx := context.Background()
	if _, err := j.PublicKey(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	// Within RefreshInterval a known kid costs no fetch.
	c.Advance(forge.DefaultRefreshInterval - time.Second)
	if _, err := j.PublicKey(ctx, "k1"); err != nil || ks.fetches.Load() != 1 {
		t.Fatalf("fresh lookup: %v, %d fetches", err, ks.fetches.Load())
	}
	// Atlassian withdrew k1: once the set is stale, a lookup fetches it
	// again and k1 is refused.
	ks.set(k2)
	c.Advance(2 * time.Second)
	if _, err := j.PublicKey(ctx, "k1"); !errors.Is(err, forge.ErrKeyNotFound) {
		t.Fatalf("withdrawn key: %v", err)
	}
	if _, err := j.PublicKey(ctx, "k2"); err != nil {
		t.Fatalf("new key: %v", err)
	}
	if n := ks.fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
}

func TestJWKSMaxAge(t *testing.T) {
	k1 := testKey(t, 0, "k1")
	ks := newKeyServer(t, k1)
	c := newClock()
	j := newJWKS(t, ks.url(), c)
	ctx := context.Background()
	if _, err := j.PublicKey(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	ks.setDown(true)
	// Stale but younger than MaxAge: the cached key still answers while
	// the refresh fails.
	c.Advance(2 * forge.DefaultRefreshInterval)
	if _, err := j.PublicKey(ctx, "k1"); err != nil {
		t.Fatalf("stale set within MaxAge: %v", err)
	}
	// An unknown kid while the set cannot be fetched is "try again".
	c.Advance(forge.DefaultMinRefetchInterval)
	if _, err := j.PublicKey(ctx, "new-kid"); !errors.Is(err, forge.ErrKeyUnavailable) {
		t.Fatalf("unknown kid with the JWKS down: %v", err)
	}
	// Past MaxAge nothing is trusted any more.
	c.Advance(forge.DefaultMaxAge)
	if _, err := j.PublicKey(ctx, "k1"); !errors.Is(err, forge.ErrKeyUnavailable) {
		t.Fatalf("set older than MaxAge: %v", err)
	}
	if st := j.Stats(); st.LastError == "" || st.Keys != 1 {
		t.Errorf("stats %+v", st)
	}
	// Back up: the next allowed fetch restores service.
	ks.setDown(false)
	c.Advance(forge.DefaultMinRefetchInterval)
	if _, err := j.PublicKey(ctx, "k1"); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	if st := j.Stats(); st.LastError != "" || !st.FetchedAt.Equal(c.Now()) {
		t.Errorf("stats after recovery %+v", st)
	}
}

func TestJWKSColdStartSharesOneFetch(t *testing.T) {
	k1 := testKey(t, 0, "k1")
	release := make(chan struct{})
	var fetches sync.WaitGroup
	fetches.Add(1)
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(fetches.Done)
		<-release
		json.NewEncoder(w).Encode(map[string]any{"keys": []any{jwk(k1)}})
	}))
	defer srv.Close()
	counting := &countingTransport{rt: http.DefaultTransport}
	j, err := forge.NewJWKS(srv.URL, forge.JWKSOptions{Now: newClock().Now, HTTPClient: &http.Client{Transport: counting}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := j.PublicKey(context.Background(), "k1")
			errs <- err
		}()
	}
	fetches.Wait() // the first fetch is in flight
	close(release)
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("lookup during the first fetch: %v", err)
		}
	}
	if got := counting.count(); got != 1 {
		t.Errorf("%d lookups on a cold cache made %d fetches, want 1", n, got)
	}
}

type countingTransport struct {
	rt http.RoundTripper
	mu sync.Mutex
	n  int
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.rt.RoundTrip(r)
}

func (c *countingTransport) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func TestJWKSRefusesCrossOriginRedirect(t *testing.T) {
	k1 := testKey(t, 0, "k1")
	evil := newKeyServer(t, k1)
	srv := httptest.NewServer(http.RedirectHandler(evil.url(), http.StatusFound))
	defer srv.Close()
	// Both are 127.0.0.1 but on different ports: another origin.
	j := newJWKS(t, srv.URL, newClock())
	if _, err := j.PublicKey(context.Background(), "k1"); !errors.Is(err, forge.ErrKeyUnavailable) {
		t.Fatalf("redirected JWKS: %v", err)
	}
	if evil.fetches.Load() != 0 {
		t.Error("the redirect was followed")
	}
}

func TestNewJWKSURL(t *testing.T) {
	for _, u := range []string{
		forge.ProductionJWKSURL, forge.StagingJWKSURL, "http://127.0.0.1:8081/forge/jwks.json", "http://localhost/jwks",
	} {
		if _, err := forge.NewJWKS(u, forge.JWKSOptions{}); err != nil {
			t.Errorf("NewJWKS(%q): %v", u, err)
		}
	}
	for _, u := range []string{
		"", "/.well-known/jwks.json", "http://forge.cdn.prod.atlassian-dev.net/.well-known/jwks.json",
		"https://user:pw@example.com/jwks", "ftp://example.com/jwks",
	} {
		if _, err := forge.NewJWKS(u, forge.JWKSOptions{}); err == nil {
			t.Errorf("NewJWKS(%q) accepted", u)
		}
	}
	if _, err := forge.NewJWKS(forge.ProductionJWKSURL, forge.JWKSOptions{RefreshInterval: 2 * time.Hour, MaxAge: time.Hour}); err == nil {
		t.Error("MaxAge shorter than RefreshInterval accepted")
	}
}

func TestParseJWKS(t *testing.T) {
	good := jwk(testKey(t, 0, "good"))
	other := jwk(testKey(t, 1, "other"))
	with := func(m map[string]any, k string, v any) map[string]any {
		c := map[string]any{}
		for kk, vv := range m {
			c[kk] = vv
		}
		c[k] = v
		return c
	}
	doc := func(keys ...map[string]any) []byte {
		b, _ := json.Marshal(map[string]any{"keys": keys})
		return b
	}
	tests := []struct {
		name    string
		doc     []byte
		want    []string
		wantErr bool
	}{
		{"one key", doc(good), []string{"good"}, false},
		{"two keys", doc(good, other), []string{"good", "other"}, false},
		{"encryption key skipped", doc(good, with(other, "use", "enc")), []string{"good"}, false},
		{"other alg skipped", doc(good, with(other, "alg", "RS512")), []string{"good"}, false},
		{"EC key skipped", doc(good, with(other, "kty", "EC")), []string{"good"}, false},
		{"no kid skipped", doc(good, with(other, "kid", "")), []string{"good"}, false},
		{"short modulus skipped", doc(good, with(other, "n", "AQAB")), []string{"good"}, false},
		{"even exponent skipped", doc(good, with(other, "e", "AAI")), []string{"good"}, false},
		{"bad base64 skipped", doc(good, with(other, "n", "***")), []string{"good"}, false},
		{"duplicate kid", doc(good, with(other, "kid", "good")), nil, true},
		{"no usable key", doc(with(good, "use", "enc")), nil, true},
		{"empty", doc(), nil, true},
		{"not JSON", []byte("<html>"), nil, true},
	}
	for _, tt := range tests {
		keys, err := forge.ParseJWKS(tt.doc)
		if (err != nil) != tt.wantErr {
			t.Errorf("%s: err = %v", tt.name, err)
			continue
		}
		if len(keys) != len(tt.want) {
			t.Errorf("%s: %d keys, want %v", tt.name, len(keys), tt.want)
		}
		for _, kid := range tt.want {
			if keys[kid] == nil {
				t.Errorf("%s: kid %s missing", tt.name, kid)
			}
		}
	}
}

func TestJWKSRun(t *testing.T) {
	ks := newKeyServer(t, testKey(t, 0, "k1"))
	j := newJWKS(t, ks.url(), newClock())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- j.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for j.Stats().Keys == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not fetch the key set")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v", err)
	}
	// The set Run fetched serves lookups without another fetch.
	if _, err := j.PublicKey(context.Background(), "k1"); err != nil || ks.fetches.Load() != 1 {
		t.Errorf("lookup after Run: %v, %d fetches", err, ks.fetches.Load())
	}
}

func TestJWKSErrorsDoNotLeakInternals(t *testing.T) {
	// Errors name the URL and kid for the operator's log; the server maps
	// them to fixed messages for callers. Here: a kid with odd bytes is
	// quoted and shortened.
	ks := newKeyServer(t, testKey(t, 0, "k1"))
	j := newJWKS(t, ks.url(), newClock())
	long := fmt.Sprintf("%0200d\n", 7)
	_, err := j.PublicKey(context.Background(), long)
	if err == nil || len(err.Error()) > 400 {
		t.Errorf("error for a long kid: %v", err)
	}
}
