package health_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/health"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/sqlite"
)

// clock is a manual clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func probe(t *testing.T, h http.Handler, method string) (int, string) {
	t.Helper()
	ts := httptest.NewServer(h)
	defer ts.Close()
	req, err := http.NewRequest(method, ts.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q", got)
	}
	return resp.StatusCode, string(b)
}

func TestLiveness(t *testing.T) {
	c := health.New(health.Options{})
	c.Register("store", func(context.Context) error { return errors.New("down") })
	// A failing dependency does not make the process dead.
	if status, body := probe(t, c.LiveHandler(), "GET"); status != 200 || body != "ok\n" {
		t.Errorf("livez: %d %q", status, body)
	}
	if status, _ := probe(t, c.LiveHandler(), "POST"); status != 405 {
		t.Errorf("POST livez: %d, want 405", status)
	}
}

// /readyz turns 503 when a check fails, and names the check; the error
// text is shown only by the verbose (admin) handler.
func TestReadyTurns503(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	c := health.New(health.Options{Now: clk.Now})
	if status, body := probe(t, c.ReadyHandler(false), "GET"); status != 200 || body != "ready\n" {
		t.Fatalf("no checks: %d %q", status, body)
	}
	var storeErr atomic.Pointer[error]
	c.Register("store", func(context.Context) error {
		if p := storeErr.Load(); p != nil {
			return *p
		}
		return nil
	})
	if status, body := probe(t, c.ReadyHandler(false), "GET"); status != 200 || body != "[+] store ok\nready\n" {
		t.Fatalf("healthy: %d %q", status, body)
	}
	down := errors.New("dial tcp 10.0.0.5:5432: connection refused")
	storeErr.Store(&down)
	clk.Advance(time.Second) // past the cached result
	status, body := probe(t, c.ReadyHandler(false), "GET")
	if status != 503 || body != "[-] store failed\nnot ready\n" {
		t.Errorf("store down, public: %d %q", status, body)
	}
	if strings.Contains(body, "10.0.0.5") {
		t.Errorf("public readiness reveals the error: %q", body)
	}
	status, body = probe(t, c.ReadyHandler(true), "GET")
	if status != 503 || !strings.Contains(body, "[-] store failed: dial tcp 10.0.0.5:5432: connection refused") {
		t.Errorf("store down, verbose: %d %q", status, body)
	}
	if status, body := probe(t, c.ReadyHandler(false), "HEAD"); status != 503 || body != "" {
		t.Errorf("HEAD: %d %q", status, body)
	}
}

// State checks show a change at once; others are cached for CacheFor.
func TestStateChecksAreNotCached(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	c := health.New(health.Options{Now: clk.Now})
	var runs atomic.Int32
	c.Register("store", func(context.Context) error { runs.Add(1); return nil })
	var draining atomic.Bool
	c.RegisterState("draining", func() error {
		if draining.Load() {
			return errors.New("draining")
		}
		return nil
	})
	ctx := context.Background()
	if rep := c.Ready(ctx); !rep.Ready || len(rep.Checks) != 2 {
		t.Fatalf("ready: %+v", rep)
	}
	draining.Store(true)
	rep := c.Ready(ctx)
	if rep.Ready || rep.Checks[1].Name != "draining" || rep.Checks[1].Err == nil {
		t.Fatalf("draining did not show at once: %+v", rep)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("store check ran %d times within CacheFor, want 1", n)
	}
	clk.Advance(time.Second)
	c.Ready(ctx)
	if n := runs.Load(); n != 2 {
		t.Errorf("store check ran %d times after CacheFor, want 2", n)
	}
}

func TestCheckTimeoutAndPanic(t *testing.T) {
	c := health.New(health.Options{Timeout: 20 * time.Millisecond, CacheFor: -1})
	c.Register("stuck", func(ctx context.Context) error { <-ctx.Done(); return nil })
	c.Register("broken", func(context.Context) error { panic("nil map") })
	rep := c.Ready(context.Background())
	if rep.Ready {
		t.Fatal("ready with a stuck and a panicking check")
	}
	if !errors.Is(rep.Checks[0].Err, context.DeadlineExceeded) {
		t.Errorf("stuck check: %v, want the deadline", rep.Checks[0].Err)
	}
	if rep.Checks[1].Err == nil || !strings.Contains(rep.Checks[1].Err.Error(), "panicked") {
		t.Errorf("panicking check: %v", rep.Checks[1].Err)
	}
	// Registering under an existing name replaces the check.
	c.Register("stuck", func(context.Context) error { return nil })
	c.Register("broken", func(context.Context) error { return nil })
	if rep := c.Ready(context.Background()); !rep.Ready || len(rep.Checks) != 2 {
		t.Errorf("after replacing: %+v", rep)
	}
}

func TestStoreCheck(t *testing.T) {
	kr, err := keyring.New(bytes.Repeat([]byte{7}, keyring.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "tenon.db"), sqlite.Options{SecretBox: kr})
	if err != nil {
		t.Fatal(err)
	}
	check := health.StoreCheck(st)
	if err := check(context.Background()); err != nil {
		t.Errorf("open store: %v", err)
	}
	st.Close()
	if err := check(context.Background()); err == nil {
		t.Error("closed store reported ready")
	}
}

// TestReadyExplainsUnavailableStore: a store that cannot be reached is
// explained in words on the public listener too, because a tenon error's
// message is written for callers; the admin listener shows the whole
// error, with any password in it masked.
func TestReadyExplainsUnavailableStore(t *testing.T) {
	c := health.New(health.Options{CacheFor: -1})
	cause := errors.New(`postgres: ping: dial postgres://tenon:hunter2@db.internal:5432/app failed; retry with host=db password=swordfish sslmode=disable`)
	c.Register("store", func(context.Context) error {
		return tenon.WrapError(tenon.EUNAVAILABLE, "The app's database cannot be reached right now; try again in a moment.", cause)
	})
	status, body := probe(t, c.ReadyHandler(false), "GET")
	if status != 503 || body != "[-] store failed: The app's database cannot be reached right now; try again in a moment.\nnot ready\n" {
		t.Errorf("public: %d %q", status, body)
	}
	status, body = probe(t, c.ReadyHandler(true), "GET")
	if status != 503 || !strings.Contains(body, "db.internal:5432") || !strings.Contains(body, "cannot be reached") {
		t.Errorf("admin: %d %q, want the whole error", status, body)
	}
	for _, secret := range []string{"hunter2", "swordfish"} {
		if strings.Contains(body, secret) {
			t.Errorf("admin readiness shows a password: %q", body)
		}
	}
	if !strings.Contains(body, "postgres://tenon:xxxxx@db.internal") || !strings.Contains(body, "password=xxxxx sslmode") {
		t.Errorf("admin: passwords not masked in place: %q", body)
	}
}
