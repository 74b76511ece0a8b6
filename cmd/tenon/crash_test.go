package main_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildBinary compiles the tenon command once for this test binary.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tenon")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build: %v", err)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type proc struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
}

// startServer runs `tenon serve` and waits until its descriptor answers.
func startServer(t *testing.T, bin string, args []string, baseURL string) *proc {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Stderr = &stderr
	cmd.Env = append(os.Environ(), "TENON_CONFIG=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, stderr: &stderr}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", baseURL+"/atlassian-connect.json", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("server did not start: %v\n%s", err, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestAcknowledgedWritesSurviveSIGKILL acknowledges an install, kills the
// server process without warning right after the acknowledgement, restarts
// it on the same database and finds the tenant able to authenticate; then
// the same for a stored value written through the app's API.
func TestAcknowledgedWritesSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret.key")
	if out, err := exec.Command(bin, "keygen", "-o", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}

	priv, keys := installKeyServer(t)

	addr := freeAddr(t)
	baseURL := "http://" + addr
	args := []string{
		"--addr", addr, "--base-url", baseURL, "--environment", "development",
		"--db", filepath.Join(dir, "tenon.db"), "--secret-key-file", keyFile,
		"--install-keys-url", keys.URL, "--log-level", "warn",
	}
	p := startServer(t, bin, args, baseURL)

	const clientKey = "crash-test-tenant"
	secret := strings.Repeat("s", 40)
	status, _ := signedInstall(t, baseURL, clientKey, secret, "http://127.0.0.1:1/s/crash", priv)
	if status/100 != 2 {
		t.Fatalf("install answered %d\n%s", status, p.stderr.String())
	}
	kill(t, p) // acknowledged: kill at once, no chance to flush anything

	p = startServer(t, bin, args, baseURL)
	ctxTok := func() string { return contextToken(t, clientKey, secret) }
	status, page := send(t, "POST", baseURL+"/api/checklists/DEMO-1/items", ctxTok(), []byte(`{"text":"survives a crash"}`))
	if status/100 != 2 {
		t.Fatalf("after restart the tenant does not authenticate: %d %s", status, page)
	}
	kill(t, p)

	startServer(t, bin, args, baseURL)
	status, page = send(t, "GET", baseURL+"/api/checklists/DEMO-1", ctxTok(), nil)
	if status != 200 || !strings.Contains(string(page), "survives a crash") {
		t.Fatalf("acknowledged item lost after SIGKILL: %d %s", status, page)
	}
}

func send(t *testing.T, method, url, auth string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func kill(t *testing.T, p *proc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
}
