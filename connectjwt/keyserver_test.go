package connectjwt_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/connectjwt"
)

func mustKeyServer(t testing.TB, base string, opts connectjwt.KeyServerOptions) *connectjwt.KeyServer {
	t.Helper()
	k, err := connectjwt.NewKeyServer(base, opts)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyServerFetchAndCache(t *testing.T) {
	ks := newKeyServer(t)
	key := rsaKey2048()
	ks.put("keys/install/kid-1", publicPEM(t, key))
	k := mustKeyServer(t, ks.URL+"/keys/", connectjwt.KeyServerOptions{})
	for i := range 3 {
		got, err := k.PublicKey(context.Background(), "install/kid-1")
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if !got.Equal(&key.PublicKey) {
			t.Fatalf("call %d: wrong key", i)
		}
	}
	if n := ks.requests.Load(); n != 1 {
		t.Errorf("key server got %d requests, want 1 (cached)", n)
	}
}

func TestKeyServerConcurrentFetchesCollapse(t *testing.T) {
	ks := newKeyServer(t)
	key := rsaKey2048()
	ks.put("kid-1", publicPEM(t, key))
	ks.gate = make(chan struct{})
	k := mustKeyServer(t, ks.URL, connectjwt.KeyServerOptions{})

	const callers = 50
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			got, err := k.PublicKey(context.Background(), "kid-1")
			if err == nil && !got.Equal(&key.PublicKey) {
				err = errors.New("wrong key")
			}
			errs <- err
		})
	}
	waitFor(t, func() bool { return ks.requests.Load() > 0 })
	close(ks.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := ks.requests.Load(); n != 1 {
		t.Errorf("%d concurrent callers made %d requests, want 1", callers, n)
	}
}

// TestKeyServerCancelDoesNotPoison: the caller whose lookup started the
// fetch gives up; another caller waiting on the same fetch still gets the
// key, and the fetch still fills the cache.
func TestKeyServerCancelDoesNotPoison(t *testing.T) {
	ks := newKeyServer(t)
	ks.put("kid-1", publicPEM(t, rsaKey2048()))
	ks.gate = make(chan struct{})
	k := mustKeyServer(t, ks.URL, connectjwt.KeyServerOptions{})

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := k.PublicKey(ctx, "kid-1")
		first <- err
	}()
	waitFor(t, func() bool { return ks.requests.Load() > 0 })
	second := make(chan error, 1)
	go func() {
		_, err := k.PublicKey(context.Background(), "kid-1")
		second <- err
	}()
	cancel()
	if err := <-first; !errors.Is(err, connectjwt.ErrKeyUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v, want ErrKeyUnavailable and context.Canceled", err)
	}
	close(ks.gate)
	if err := <-second; err != nil {
		t.Fatalf("other caller: %v", err)
	}
	if _, err := k.PublicKey(context.Background(), "kid-1"); err != nil {
		t.Fatal(err)
	}
	if n := ks.requests.Load(); n != 1 {
		t.Errorf("key server got %d requests, want 1", n)
	}
}

func TestKeyServerCancelledBeforeFetch(t *testing.T) {
	ks := newKeyServer(t)
	k := mustKeyServer(t, ks.URL, connectjwt.KeyServerOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := k.PublicKey(ctx, "kid-1"); !errors.Is(err, connectjwt.ErrKeyUnavailable) {
		t.Fatalf("err = %v, want ErrKeyUnavailable", err)
	}
	if n := ks.requests.Load(); n != 0 {
		t.Errorf("key server got %d requests, want 0", n)
	}
}

func TestKeyServerResponses(t *testing.T) {
	der1024, _ := x509.MarshalPKIXPublicKey(&rsaKey1024().PublicKey)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	derEC, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	good := publicPEM(t, rsaKey2048())
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsaKey2048().PublicKey)})
	tests := []struct {
		name    string
		status  int
		body    []byte
		wantErr error
	}{
		{name: "PEM", body: good},
		{name: "PEM with surrounding whitespace", body: append(append([]byte("\n  "), good...), "\n\n"...)},
		{name: "404", status: http.StatusNotFound, wantErr: connectjwt.ErrKeyNotFound},
		{name: "410", status: http.StatusGone, wantErr: connectjwt.ErrKeyNotFound},
		{name: "403", status: http.StatusForbidden, wantErr: connectjwt.ErrKeyUnavailable},
		{name: "500", status: http.StatusInternalServerError, wantErr: connectjwt.ErrKeyUnavailable},
		{name: "503", status: http.StatusServiceUnavailable, wantErr: connectjwt.ErrKeyUnavailable},
		{name: "oversized", body: append(good, strings.Repeat(" ", 2048)...), wantErr: connectjwt.ErrKeyUnavailable},
		{name: "garbage", body: []byte("<html>hello</html>"), wantErr: connectjwt.ErrKeyUnavailable},
		{name: "empty", body: []byte{}, wantErr: connectjwt.ErrKeyUnavailable},
		{name: "text before the PEM", body: append([]byte("note\n"), good...), wantErr: connectjwt.ErrKeyUnavailable},
		{name: "two PEM blocks", body: append(append([]byte{}, good...), good...), wantErr: connectjwt.ErrKeyUnavailable},
		{name: "PEM with garbage inside", body: []byte("-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n"), wantErr: connectjwt.ErrKeyUnavailable},
		{name: "PKCS#1 block", body: pkcs1, wantErr: connectjwt.ErrKeyUnavailable},
		{name: "EC key", body: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: derEC}), wantErr: connectjwt.ErrKeyUnavailable},
		{name: "RSA 1024", body: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der1024}), wantErr: connectjwt.ErrKeyUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks := newKeyServer(t)
			ks.status = tt.status
			if tt.body != nil {
				ks.put("kid-1", tt.body)
			}
			k := mustKeyServer(t, ks.URL, connectjwt.KeyServerOptions{MaxBytes: len64(good) + 100})
			key, err := k.PublicKey(context.Background(), "kid-1")
			if tt.wantErr == nil {
				if err != nil || key == nil {
					t.Fatalf("PublicKey = %v, %v", key, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || key != nil {
				t.Fatalf("PublicKey = %v, %v; want %v", key, err, tt.wantErr)
			}
		})
	}
}

func len64(b []byte) int64 { return int64(len(b)) }

func TestKeyServerFailuresNotCached(t *testing.T) {
	ks := newKeyServer(t)
	ks.status = http.StatusInternalServerError
	ks.put("kid-1", publicPEM(t, rsaKey2048()))
	k := mustKeyServer(t, ks.URL, connectjwt.KeyServerOptions{})
	if _, err := k.PublicKey(context.Background(), "kid-1"); !errors.Is(err, connectjwt.ErrKeyUnavailable) {
		t.Fatalf("err = %v, want ErrKeyUnavailable", err)
	}
	ks.mu.Lock()
	ks.status = 0
	ks.mu.Unlock()
	if _, err := k.PublicKey(context.Background(), "kid-1"); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	if n := ks.requests.Load(); n != 2 {
		t.Errorf("key server got %d requests, want 2", n)
	}
}

func TestKeyServerNotFoundRememberedBriefly(t *testing.T) {
	ks := newKeyServer(t)
	clock := now
	var mu sync.Mutex
	k := mustKeyServer(t, ks.URL, connectjwt.KeyServerOptions{
		NotFoundTTL: 5 * time.Second,
		Now:         func() time.Time { mu.Lock(); defer mu.Unlock(); return clock },
	})
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	lookup := func() error { _, err := k.PublicKey(context.Background(), "kid-new"); return err }

	for range 3 {
		if err := lookup(); !errors.Is(err, connectjwt.ErrKeyNotFound) {
			t.Fatalf("err = %v, want ErrKeyNotFound", err)
		}
	}
	if n := ks.requests.Load(); n != 1 {
		t.Fatalf("key server got %d requests within the TTL, want 1", n)
	}
	// The key is published; once the TTL is over it is found.
	ks.put("kid-new", publicPEM(t, rsaKey2048()))
	advance(4 * time.Second)
	if err := lookup(); !errors.Is(err, connectjwt.ErrKeyNotFound) {
		t.Fatalf("within TTL: %v, want ErrKeyNotFound", err)
	}
	advance(time.Second)
	if err := lookup(); err != nil {
		t.Fatalf("after TTL: %v", err)
	}
	if n := ks.requests.Load(); n != 2 {
		t.Errorf("key server got %d requests, want 2", n)
	}

	// A negative TTL turns the memory off.
	ks2 := newKeyServer(t)
	k2 := mustKeyServer(t, ks2.URL, connectjwt.KeyServerOptions{NotFoundTTL: -1})
	for range 2 {
		if _, err := k2.PublicKey(context.Background(), "kid-x"); !errors.Is(err, connectjwt.ErrKeyNotFound) {
			t.Fatalf("err = %v, want ErrKeyNotFound", err)
		}
	}
	if n := ks2.requests.Load(); n != 2 {
		t.Errorf("with NotFoundTTL < 0: %d requests, want 2", n)
	}
}

func TestKeyServerDown(t *testing.T) {
	k := mustKeyServer(t, closedURL(t), connectjwt.KeyServerOptions{Timeout: 2 * time.Second})
	if _, err := k.PublicKey(context.Background(), "kid-1"); !errors.Is(err, connectjwt.ErrKeyUnavailable) {
		t.Fatalf("err = %v, want ErrKeyUnavailable", err)
	}
}

func TestKeyServerSlow(t *testing.T) {
	ks := newKeyServer(t)
	ks.put("kid-1", publicPEM(t, rsaKey2048()))
	ks.delay = time.Minute
	const timeout = 200 * time.Millisecond
	k := mustKeyServer(t, ks.URL, connectjwt.KeyServerOptions{Timeout: timeout})
	start := time.Now()
	_, err := k.PublicKey(context.Background(), "kid-1")
	if !errors.Is(err, connectjwt.ErrKeyUnavailable) {
		t.Fatalf("err = %v, want ErrKeyUnavailable", err)
	}
	if took := time.Since(start); took > timeout+2*time.Second {
		t.Errorf("gave up after %s, want about %s", took, timeout)
	}
}

func TestKeyServerFallbacks(t *testing.T) {
	pemBytes := publicPEM(t, rsaKey2048())
	newServer := func(status int) *keyServer {
		ks := newKeyServer(t)
		ks.status = status
		ks.put("kid-1", pemBytes)
		return ks
	}
	t.Run("primary down", func(t *testing.T) {
		fb := newServer(0)
		k := mustKeyServer(t, closedURL(t), connectjwt.KeyServerOptions{Fallbacks: []string{fb.URL}})
		if _, err := k.PublicKey(context.Background(), "kid-1"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("primary 500, second down, third answers", func(t *testing.T) {
		primary, third := newServer(http.StatusInternalServerError), newServer(0)
		k := mustKeyServer(t, primary.URL, connectjwt.KeyServerOptions{Fallbacks: []string{closedURL(t), third.URL}})
		if _, err := k.PublicKey(context.Background(), "kid-1"); err != nil {
			t.Fatal(err)
		}
		if primary.requests.Load() != 1 || third.requests.Load() != 1 {
			t.Errorf("requests: primary %d, third %d", primary.requests.Load(), third.requests.Load())
		}
	})
	t.Run("primary 404 ends the search", func(t *testing.T) {
		primary, fb := newServer(http.StatusNotFound), newServer(0)
		k := mustKeyServer(t, primary.URL, connectjwt.KeyServerOptions{Fallbacks: []string{fb.URL}})
		if _, err := k.PublicKey(context.Background(), "kid-1"); !errors.Is(err, connectjwt.ErrKeyNotFound) {
			t.Fatalf("err = %v, want ErrKeyNotFound", err)
		}
		if n := fb.requests.Load(); n != 0 {
			t.Errorf("fallback got %d requests, want 0", n)
		}
	})
	t.Run("all down", func(t *testing.T) {
		primary, fb := newServer(http.StatusBadGateway), newServer(http.StatusServiceUnavailable)
		k := mustKeyServer(t, primary.URL, connectjwt.KeyServerOptions{Fallbacks: []string{fb.URL}})
		_, err := k.PublicKey(context.Background(), "kid-1")
		if !errors.Is(err, connectjwt.ErrKeyUnavailable) || errors.Is(err, connectjwt.ErrKeyNotFound) {
			t.Fatalf("err = %v, want ErrKeyUnavailable", err)
		}
		if !strings.Contains(err.Error(), "502") || !strings.Contains(err.Error(), "503") {
			t.Errorf("error does not name both failures: %v", err)
		}
	})
}

func TestKeyServerBadKid(t *testing.T) {
	ks := newKeyServer(t)
	k := mustKeyServer(t, ks.URL, connectjwt.KeyServerOptions{})
	for _, kid := range []string{
		"", "../x", "..", ".", "a/../b", "a..b", "a/./b", "/a", "a/", "a//b",
		"a b", "a%2Fb", "a?b", "a#b", "a\\b", "ключ", "a\x00", strings.Repeat("k", 257),
	} {
		if _, err := k.PublicKey(context.Background(), kid); !errors.Is(err, connectjwt.ErrKeyNotFound) {
			t.Errorf("kid %q: err = %v, want ErrKeyNotFound", kid, err)
		}
	}
	if n := ks.requests.Load(); n != 0 {
		t.Errorf("key server got %d requests for bad kids, want 0", n)
	}
	// The longest allowed kid is fine (and unknown).
	if _, err := k.PublicKey(context.Background(), strings.Repeat("k", 256)); !errors.Is(err, connectjwt.ErrKeyNotFound) || ks.requests.Load() != 1 {
		t.Errorf("256-byte kid: %v after %d requests", err, ks.requests.Load())
	}
}

func TestKeyServerEvictsOldest(t *testing.T) {
	ks := newKeyServer(t)
	pemBytes := publicPEM(t, rsaKey2048())
	for _, kid := range []string{"a", "b", "c"} {
		ks.put(kid, pemBytes)
	}
	k := mustKeyServer(t, ks.URL, connectjwt.KeyServerOptions{MaxKeys: 2})
	for _, kid := range []string{"a", "b", "c", "c", "b", "a"} { // a is evicted by c
		if _, err := k.PublicKey(context.Background(), kid); err != nil {
			t.Fatal(err)
		}
	}
	if n := ks.requests.Load(); n != 4 {
		t.Errorf("key server got %d requests, want 4", n)
	}
}

func TestNewKeyServerBadURL(t *testing.T) {
	for _, u := range []string{
		"", "connect-install-keys.atlassian.com", "ftp://keys.example.com", "https://",
		"https://keys.example.com?x=1", "https://keys.example.com/#f", "https://u:p@keys.example.com",
		"https://keys.example.com/%zz",
	} {
		if _, err := connectjwt.NewKeyServer(u, connectjwt.KeyServerOptions{}); err == nil {
			t.Errorf("NewKeyServer(%q) succeeded", u)
		}
	}
	if _, err := connectjwt.NewKeyServer("https://keys.example.com", connectjwt.KeyServerOptions{Fallbacks: []string{"nope"}}); err == nil {
		t.Error("bad fallback accepted")
	}
}

// waitFor polls cond, failing the test after a few seconds. It is used to
// wait for a request to reach a test server, not to pass time.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
