package upgrade_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/upgrade"
)

// The test binary doubles as the successor process: with
// UPGRADE_TEST_ROLE set it plays that role instead of running the tests.
func TestMain(m *testing.M) {
	if role := os.Getenv("UPGRADE_TEST_ROLE"); role != "" {
		os.Exit(successor(role))
	}
	os.Exit(m.Run())
}

// successor is what a new release does after an upgrade: take the
// listener by the same address, serve, say it is ready.
func successor(role string) int {
	if role == "fail" {
		fmt.Fprintln(os.Stderr, "successor: refusing to start")
		return 3
	}
	u, err := upgrade.New(upgrade.Options{Notify: noNotify, SystemdFiles: noSystemd})
	if err != nil {
		fmt.Fprintln(os.Stderr, "successor:", err)
		return 1
	}
	defer u.Close()
	if !u.HasParent() {
		fmt.Fprintln(os.Stderr, "successor: started without a parent")
		return 1
	}
	ln, err := u.Listen("tcp", os.Getenv("UPGRADE_TEST_ADDR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "successor:", err)
		return 1
	}
	if role == "silent" {
		time.Sleep(time.Minute) // never ready; the parent kills it
		return 1
	}
	quit := make(chan struct{})
	var once sync.Once
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/quit" {
			once.Do(func() { close(quit) })
		}
		io.WriteString(w, "successor")
	}))
	if err := u.Ready(); err != nil {
		fmt.Fprintln(os.Stderr, "successor:", err)
		return 1
	}
	select {
	case <-quit:
	case <-time.After(30 * time.Second): // never outlive the test by long
	}
	ln.Close()
	return 0
}

func noNotify(string) (bool, error) { return false, nil }
func noSystemd() []*os.File         { return nil }

// parentOptions start this test binary as the successor in role.
func parentOptions(role, addr string) upgrade.Options {
	return upgrade.Options{
		Command: func() (string, []string, error) { return os.Args[0], nil, nil },
		Environ: func() []string {
			return append(os.Environ(), "UPGRADE_TEST_ROLE="+role, "UPGRADE_TEST_ADDR="+addr)
		},
		Notify:       noNotify,
		SystemdFiles: noSystemd,
		Getenv:       func(string) string { return "" },
		ReadyTimeout: 20 * time.Second,
	}
}

// serveParent serves "parent" on ln until the test ends.
func serveParent(t *testing.T, ln net.Listener) *http.Server {
	t.Helper()
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "parent")
	})}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return hs
}

func get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestUpgradeHandsOverSockets upgrades under a bounded load and checks
// that no request fails while the successor takes the socket over.
func TestUpgradeHandsOverSockets(t *testing.T) {
	const addrKey = "127.0.0.1:0" // both processes ask for the same address
	u, err := upgrade.New(parentOptions("serve", addrKey))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	ln, err := u.Listen("tcp", addrKey)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "parent")
	})}
	drain := upgrade.NewDrainer(hs, ln)
	served := make(chan error, 1)
	go func() { served <- drain.Serve() }()
	t.Cleanup(func() { get(url + "/quit") })

	// A bounded load: 4 clients, at most 2,000 requests in all.
	var (
		stop           atomic.Bool
		sent, failures atomic.Int64
		seen           sync.Map
		wg             sync.WaitGroup
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() && sent.Add(1) <= 2000 {
				body, err := get(url)
				if err != nil {
					failures.Add(1)
					t.Errorf("request failed during the upgrade: %v", err)
					continue
				}
				seen.Store(body, true)
			}
		}()
	}

	if err := u.Upgrade(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-u.Upgraded():
	default:
		t.Fatal("Upgraded is not closed after a successful upgrade")
	}
	// The parent's part after the hand-over: stop accepting, drain.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := drain.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
	}
	body, err := get(url)
	if err != nil || body != "successor" {
		t.Fatalf("after the hand-over: %q, %v", body, err)
	}
	stop.Store(true)
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d failed requests", failures.Load())
	}
	if _, ok := seen.Load("parent"); !ok {
		t.Error("the load never reached the parent")
	}
	if err := u.Upgrade(context.Background()); !errors.Is(err, upgrade.ErrUpgraded) {
		t.Errorf("a second upgrade: %v, want ErrUpgraded", err)
	}
}

// A successor that fails, or never says it is ready, leaves the parent
// serving as before.
func TestFailedUpgradeKeepsServing(t *testing.T) {
	tests := []struct {
		role, want string
	}{
		{"fail", "exited before it was ready"},
		{"silent", "not ready within"},
	}
	for _, tc := range tests {
		t.Run(tc.role, func(t *testing.T) {
			opts := parentOptions(tc.role, "127.0.0.1:0")
			opts.Stderr = io.Discard
			if tc.role == "silent" {
				opts.ReadyTimeout = 500 * time.Millisecond
			}
			u, err := upgrade.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			ln, err := u.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			serveParent(t, ln)
			err = u.Upgrade(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Upgrade: %v, want %q", err, tc.want)
			}
			select {
			case <-u.Upgraded():
				t.Fatal("Upgraded closed after a failed upgrade")
			default:
			}
			if body, err := get("http://" + ln.Addr().String()); err != nil || body != "parent" {
				t.Fatalf("after the failed upgrade: %q, %v", body, err)
			}
		})
	}
}

func TestUpgradeRefusesConcurrentUpgrade(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	opts := parentOptions("serve", "")
	opts.Command = func() (string, []string, error) {
		close(entered)
		<-release
		return "", nil, errors.New("no program today")
	}
	u, err := upgrade.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	first := make(chan error, 1)
	go func() { first <- u.Upgrade(context.Background()) }()
	<-entered
	if err := u.Upgrade(context.Background()); !errors.Is(err, upgrade.ErrInProgress) {
		t.Errorf("second Upgrade: %v, want ErrInProgress", err)
	}
	close(release)
	if err := <-first; err == nil || !strings.Contains(err.Error(), "no program today") {
		t.Errorf("first Upgrade: %v", err)
	}
}

func TestListenTakesSystemdSocket(t *testing.T) {
	pre, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := pre.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	port := pre.Addr().(*net.TCPAddr).Port
	pre.Close() // systemd's copy lives on in f
	opts := parentOptions("serve", "")
	opts.SystemdFiles = func() []*os.File { return []*os.File{f} }
	u, err := upgrade.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	ln, err := u.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("Listen on the socket-activated port: %v", err)
	}
	defer ln.Close()
	if got := ln.Addr().(*net.TCPAddr).Port; got != port {
		t.Errorf("port %d, want %d", got, port)
	}
	if _, err := u.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
		t.Error("the same address was opened twice")
	}
}

func TestReadyNotifiesServiceManager(t *testing.T) {
	var got []string
	opts := parentOptions("serve", "")
	opts.Notify = func(state string) (bool, error) { got = append(got, state); return true, nil }
	u, err := upgrade.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if u.HasParent() {
		t.Error("HasParent without a parent")
	}
	if err := u.Ready(); err != nil {
		t.Fatal(err)
	}
	u.Stopping()
	want := []string{fmt.Sprintf("READY=1\nMAINPID=%d", os.Getpid()), "STOPPING=1"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("notified %q, want %q", got, want)
	}
}

func TestNewRefusesDamagedEnvironment(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"ready fd not a number", map[string]string{upgrade.EnvReadyFD: "x"}, "not a descriptor"},
		{"ready fd is stdin", map[string]string{upgrade.EnvReadyFD: "0"}, "not a descriptor"},
		{"listeners not JSON", map[string]string{upgrade.EnvListeners: "tcp=:8080"}, "not valid"},
		{"listener on stderr", map[string]string{upgrade.EnvListeners: `[{"network":"tcp","addr":":1","fd":2}]`}, "names descriptor 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := parentOptions("serve", "")
			opts.Getenv = func(k string) string { return tc.env[k] }
			_, err := upgrade.New(opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want %q", err, tc.want)
			}
		})
	}
}

func TestSameAddr(t *testing.T) {
	tcp := func(ip string, port int) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: port} }
	tests := []struct {
		network, addr string
		have          net.Addr
		want          bool
	}{
		{"tcp", ":8080", tcp("::", 8080), true},
		{"tcp", ":8080", tcp("127.0.0.1", 8080), true},
		{"tcp", "127.0.0.1:8080", tcp("127.0.0.1", 8080), true},
		{"tcp", "127.0.0.1:8080", tcp("0.0.0.0", 8080), true},
		{"tcp", "127.0.0.1:8080", tcp("10.0.0.1", 8080), false},
		{"tcp", ":8080", tcp("::", 8081), false},
		{"tcp", "localhost:https", tcp("::", 443), false}, // named ports are not resolved
		{"unix", "/run/tenon.sock", &net.UnixAddr{Name: "/run/tenon.sock", Net: "unix"}, true},
		{"unix", "/run/tenon.sock", tcp("::", 8080), false},
		{"tcp", "/run/tenon.sock", &net.UnixAddr{Name: "/run/tenon.sock", Net: "unix"}, false},
	}
	for _, tc := range tests {
		if got := upgrade.SameAddr(tc.network, tc.addr, tc.have); got != tc.want {
			t.Errorf("SameAddr(%s %s, %v) = %v, want %v", tc.network, tc.addr, tc.have, got, tc.want)
		}
	}
}
