package main_test

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// deployment is a releases directory with a server started from its
// `current` link, as the systemd unit runs it.
type deployment struct {
	t       *testing.T
	bin     string // the freshly built binary, copied into each release
	dir     string
	baseURL string
	pidFile string
	logFile string
	args    []string
	secret  string
	token   string // a context token of the installed tenant
}

const upgradeTenant = "upgrade-test-tenant"

func newDeployment(t *testing.T, extraArgs ...string) *deployment {
	t.Helper()
	// Successors outlive their parents; as the subreaper of this test
	// process, the test adopts them, so it can see each one exit and
	// reap it, and nothing is left running.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Skipf("cannot become a subreaper: %v", err)
	}
	d := &deployment{t: t, bin: buildBinary(t), dir: t.TempDir(), secret: strings.Repeat("u", 40)}
	d.pidFile = filepath.Join(d.dir, "tenon.pid")
	d.logFile = filepath.Join(d.dir, "tenon.log")
	keyFile := filepath.Join(d.dir, "secret.key")
	if out, err := exec.Command(d.bin, "keygen", "-o", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	d.baseURL = "http://" + addr
	priv, keys := installKeyServer(t)
	d.args = []string{
		"serve", "--addr", addr, "--base-url", d.baseURL, "--environment", "development",
		"--db", filepath.Join(d.dir, "tenon.db"), "--secret-key-file", keyFile,
		"--install-keys-url", keys.URL, "--log-level", "info", "--admin-addr", "off",
		"--pid-file", d.pidFile, "--drain-delay", "0s", "--shutdown-timeout", "10s",
	}
	d.args = append(d.args, extraArgs...) // later flags win
	d.addRelease("1")
	d.release("activate", "1")
	d.start()
	d.install(priv)
	d.token = contextToken(t, upgradeTenant, d.secret)
	return d
}

// addRelease copies the built binary into releases/<v>.
func (d *deployment) addRelease(v string) {
	d.t.Helper()
	raw, err := os.ReadFile(d.bin)
	if err != nil {
		d.t.Fatal(err)
	}
	rd := filepath.Join(d.dir, "releases", v)
	if err := os.MkdirAll(rd, 0o755); err != nil {
		d.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rd, "tenon"), raw, 0o755); err != nil {
		d.t.Fatal(err)
	}
}

// release runs `tenon release ...` on the deployment's directory.
func (d *deployment) release(args ...string) string {
	d.t.Helper()
	cmd := exec.Command(d.bin, append([]string{"release"}, args...)...)
	cmd.Env = append(os.Environ(), "TENON_RELEASES_DIR="+d.dir, "TENON_PID_FILE="+d.pidFile)
	out, err := cmd.CombinedOutput()
	if err != nil {
		d.t.Fatalf("tenon release %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// start runs current/tenon serve and waits for its PID file.
func (d *deployment) start() {
	d.t.Helper()
	logf, err := os.OpenFile(d.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		d.t.Fatal(err)
	}
	defer logf.Close()
	// A file, not a pipe, for the logs: successors inherit it, and
	// waiting on a pipe would wait for every successor.
	cmd := exec.Command(filepath.Join(d.dir, "current", "tenon"), d.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "TENON_CONFIG=")
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	// The process is reaped with syscall.Wait4 by PID, like its
	// successors; cmd.Wait is never called.
	d.t.Cleanup(d.stopAll)
	if pid := d.waitPID(0); pid != cmd.Process.Pid {
		d.t.Fatalf("the PID file names %d, want %d", pid, cmd.Process.Pid)
	}
}

// waitPID waits until the PID file names a process other than old and
// returns it.
func (d *deployment) waitPID(old int) int {
	d.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if raw, err := os.ReadFile(d.pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil && pid != old {
				return pid
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.t.Fatalf("no new PID in %s after 30 s\n%s", d.pidFile, d.logs())
	return 0
}

// pid is the serving process.
func (d *deployment) pid() int {
	d.t.Helper()
	raw, err := os.ReadFile(d.pidFile)
	if err != nil {
		d.t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		d.t.Fatal(err)
	}
	return pid
}

// exe is the release a process runs.
func exe(t *testing.T, pid int) string {
	t.Helper()
	p, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitExit reaps pid, a child or adopted process, when it exits and
// sends its exit status (-1 when it cannot be waited for).
func waitExit(pid int) <-chan int {
	done := make(chan int, 1)
	go func() {
		var ws syscall.WaitStatus
		for {
			_, err := syscall.Wait4(pid, &ws, 0, nil)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err != nil {
				done <- -1
				return
			}
			done <- ws.ExitStatus()
			return
		}
	}()
	return done
}

// reap waits for pid to exit and returns its exit status.
func (d *deployment) reap(pid int) int {
	d.t.Helper()
	select {
	case code := <-waitExit(pid):
		return code
	case <-time.After(30 * time.Second):
		d.t.Fatalf("process %d did not exit\n%s", pid, d.logs())
		return 0
	}
}

// upgrade sends SIGHUP and waits until a new process serves and the old
// one has exited cleanly. It returns the new PID.
func (d *deployment) upgrade() int {
	d.t.Helper()
	old := d.pid()
	if err := syscall.Kill(old, syscall.SIGHUP); err != nil {
		d.t.Fatal(err)
	}
	return d.handedOver(old)
}

func (d *deployment) handedOver(old int) int {
	d.t.Helper()
	pid := d.waitPID(old)
	if code := d.reap(old); code != 0 {
		d.t.Fatalf("the old process %d exited with %d after the upgrade\n%s", old, code, d.logs())
	}
	return pid
}

func (d *deployment) stopAll() {
	raw, err := os.ReadFile(d.pidFile)
	if err != nil {
		return
	}
	if pid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil && syscall.Kill(pid, syscall.SIGKILL) == nil {
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil)
	}
}

func (d *deployment) logs() string {
	raw, _ := os.ReadFile(d.logFile)
	if len(raw) > 8000 {
		raw = raw[len(raw)-8000:]
	}
	return string(raw)
}

func (d *deployment) install(priv *rsa.PrivateKey) {
	d.t.Helper()
	if status, page := signedInstall(d.t, d.baseURL, upgradeTenant, d.secret, "http://127.0.0.1:1/s/upgrade", priv); status/100 != 2 {
		d.t.Fatalf("install answered %d %s\n%s", status, page, d.logs())
	}
}

// load is a bounded loopback load: a few clients alternating the public
// descriptor and an authenticated API call that reads the store.
type load struct {
	stop     atomic.Bool
	ok, fail atomic.Int64
	mu       sync.Mutex
	errs     []string
	wg       sync.WaitGroup
}

const (
	loadClients     = 4
	loadMaxRequests = 40000
)

func startLoad(d *deployment) *load {
	l := &load{}
	client := &http.Client{Timeout: 10 * time.Second}
	for c := range loadClients {
		l.wg.Go(func() {
			for i := 0; !l.stop.Load() && l.ok.Load()+l.fail.Load() < loadMaxRequests; i++ {
				var req *http.Request
				if (i+c)%2 == 0 {
					req, _ = http.NewRequest("GET", d.baseURL+"/atlassian-connect.json", nil)
				} else {
					req, _ = http.NewRequest("GET", d.baseURL+"/api/checklists/DEMO-1", nil)
					req.Header.Set("Authorization", d.token)
				}
				resp, err := client.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					l.fail.Add(1)
					l.mu.Lock()
					if len(l.errs) < 10 {
						l.errs = append(l.errs, fmt.Sprintf("%s %s: %v", req.Method, req.URL.Path, err))
					}
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
				time.Sleep(time.Millisecond) // leave the two cores to the servers
			}
		})
	}
	return l
}

// finish stops the load and fails the test if any request failed.
func (l *load) finish(t *testing.T, d *deployment) {
	t.Helper()
	l.stop.Store(true)
	l.wg.Wait()
	t.Logf("load: %d requests answered, %d failed", l.ok.Load(), l.fail.Load())
	if l.fail.Load() != 0 {
		t.Fatalf("%d requests failed during the upgrades, e.g. %q\n%s", l.fail.Load(), l.errs, d.logs())
	}
}

// waitServed waits until the load has had n more answers, so every
// process serves a share of it.
func (l *load) waitServed(t *testing.T, n int64) {
	t.Helper()
	target := l.ok.Load() + n
	deadline := time.Now().Add(20 * time.Second)
	for l.ok.Load() < target {
		if time.Now().After(deadline) || l.ok.Load()+l.fail.Load() >= loadMaxRequests {
			t.Fatalf("the load stalled at %d answers (%d failed)", l.ok.Load(), l.fail.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestZeroDowntimeUpgrades upgrades the running server in place three
// times, each to a new release activated in the releases directory,
// under a steady loopback load, and requires every request to be
// answered: each old process hands its socket over, drains and exits 0.
func TestZeroDowntimeUpgrades(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	d := newDeployment(t)
	l := startLoad(d)
	defer l.stop.Store(true)
	l.waitServed(t, 200)
	for i := 2; i <= 4; i++ {
		v := strconv.Itoa(i)
		d.addRelease(v)
		d.release("activate", v)
		pid := d.upgrade()
		if got, want := exe(t, pid), filepath.Join(d.dir, "releases", v, "tenon"); got != want {
			t.Fatalf("upgrade %d: the new process runs %s, want %s", i-1, got, want)
		}
		l.waitServed(t, 200)
	}
	l.finish(t, d)

	// SIGTERM still ends the last process cleanly and removes its PID file.
	last := d.pid()
	if err := syscall.Kill(last, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := d.reap(last); code != 0 {
		t.Fatalf("exit status %d after SIGTERM\n%s", code, d.logs())
	}
	if _, err := os.Stat(d.pidFile); !os.IsNotExist(err) {
		t.Errorf("PID file left after SIGTERM: %v", err)
	}
}

// TestReleaseRollbackInPlace activates a second release, upgrades to it,
// then rolls back with `tenon release rollback --reload`: the server ends
// up running the first release again, without a failed request.
func TestReleaseRollbackInPlace(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	d := newDeployment(t)
	first := filepath.Join(d.dir, "releases", "1", "tenon")
	if got := exe(t, d.pid()); got != first {
		t.Fatalf("started from %s, want %s", got, first)
	}
	l := startLoad(d)
	defer l.stop.Store(true)
	l.waitServed(t, 100)

	d.addRelease("2")
	old := d.pid()
	out := d.release("activate", "--reload", "2")
	if !strings.Contains(out, "sent SIGHUP") {
		t.Fatalf("activate --reload: %s", out)
	}
	pid := d.handedOver(old)
	if got := exe(t, pid); got != filepath.Join(d.dir, "releases", "2", "tenon") {
		t.Fatalf("after activating 2 the server runs %s", got)
	}
	l.waitServed(t, 100)

	out = d.release("rollback", "--reload")
	if !strings.Contains(out, "current -> releases/1 (was 2)") {
		t.Fatalf("rollback: %s", out)
	}
	pid = d.handedOver(pid)
	if got := exe(t, pid); got != first {
		t.Fatalf("after the rollback the server runs %s, want %s", got, first)
	}
	l.waitServed(t, 100)
	l.finish(t, d)
}

// A release that cannot start leaves the running server in charge.
func TestBrokenReleaseKeepsServing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	d := newDeployment(t)
	rd := filepath.Join(d.dir, "releases", "broken")
	if err := os.MkdirAll(rd, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rd, "tenon"), []byte("#!/bin/sh\necho 'cannot start' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	before := d.pid()
	d.release("activate", "broken")
	if err := syscall.Kill(before, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(d.logs(), "upgrade failed; this process keeps serving") {
		if time.Now().After(deadline) {
			t.Fatalf("no failed upgrade logged\n%s", d.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d.pid() != before {
		t.Fatalf("the PID file changed to %d", d.pid())
	}
	if status, _ := send(t, "GET", d.baseURL+"/api/checklists/DEMO-1", d.token, nil); status != http.StatusOK {
		t.Fatalf("after the failed upgrade: %d", status)
	}
	// Rolled back, the next reload works again.
	d.release("rollback")
	if pid := d.upgrade(); exe(t, pid) != filepath.Join(d.dir, "releases", "1", "tenon") {
		t.Fatalf("after the rollback the server runs %s", exe(t, pid))
	}
}

// TestSIGTERMDrains stops the server with SIGTERM: readiness fails at
// once while requests are still answered for the drain delay, then the
// process exits 0 and removes its PID file.
func TestSIGTERMDrains(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	d := newDeployment(t, "--drain-delay", "3s")
	ready := func() int {
		status, _ := send(t, "GET", d.baseURL+"/readyz", "", nil)
		return status
	}
	if got := ready(); got != http.StatusOK {
		t.Fatalf("readyz before SIGTERM: %d\n%s", got, d.logs())
	}
	pid := d.pid()
	exited := waitExit(pid)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for ready() != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatalf("readyz never turned 503 after SIGTERM\n%s", d.logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Draining: not ready, but still answering.
	if status, _ := send(t, "GET", d.baseURL+"/api/checklists/DEMO-1", d.token, nil); status != http.StatusOK {
		t.Fatalf("a request during the drain delay: %d", status)
	}
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("exit status %d\n%s", code, d.logs())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the process did not exit after SIGTERM\n%s", d.logs())
	}
	if _, err := os.Stat(d.pidFile); !os.IsNotExist(err) {
		t.Errorf("PID file left after SIGTERM: %v", err)
	}
}
