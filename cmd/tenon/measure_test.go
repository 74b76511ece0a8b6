package main_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/connectjwt"
	"github.com/tenon-dev/tenon/internal/loadseed"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/qsh"
	"github.com/tenon-dev/tenon/sqlite"
)

// TestMeasure produces the figures of docs/PERFORMANCE.md ("The binary
// on one node"): binary size, start-up time, and memory at idle and under
// a bounded load with 10,000 installed tenants. It runs only with
// TENON_MEASURE=1, since it takes about a minute and its figures are
// reported, not asserted:
//
//	TENON_MEASURE=1 go test -run TestMeasure -v ./cmd/tenon
func TestMeasure(t *testing.T) {
	if os.Getenv("TENON_MEASURE") != "1" {
		t.Skip("set TENON_MEASURE=1 to measure (see docs/PERFORMANCE.md)")
	}
	const (
		tenants       = 10000
		startRuns     = 5
		loadClients   = 8
		loadFor       = 20 * time.Second
		loadMax       = 200000
		writeFraction = 0.05
	)
	dir := t.TempDir()
	bin := filepath.Join(dir, "tenon")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("binary: %.1f MiB (go build -trimpath -ldflags='-s -w')", float64(fi.Size())/(1<<20))

	keyFile := filepath.Join(dir, "secret.key")
	if out, err := exec.Command(bin, "keygen", "-o", keyFile).CombinedOutput(); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	baseURL := "http://" + addr
	args := func(db string) []string {
		return []string{"serve", "--addr", addr, "--base-url", baseURL, "--environment", "development",
			"--db", db, "--secret-key-file", keyFile, "--install-keys-url", "http://127.0.0.1:1",
			"--log-level", "warn", "--admin-addr", "off", "--drain-delay", "0s"}
	}

	emptyDB := filepath.Join(dir, "empty.db")
	t.Logf("start-up, empty database: %s", startups(t, bin, args(emptyDB), baseURL, startRuns))

	db := filepath.Join(dir, "tenants.db")
	box, err := keyring.Load(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(db, sqlite.Options{SecretBox: box})
	if err != nil {
		t.Fatal(err)
	}
	seedStart := time.Now()
	if err := loadseed.Seed(context.Background(), st, tenants, loadseed.Options{AppKey: "tenon-checklist"}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	t.Logf("seeded %d tenants in %v", tenants, time.Since(seedStart).Round(time.Millisecond))
	t.Logf("start-up, %d tenants: %s", tenants, startups(t, bin, args(db), baseURL, startRuns))

	cmd := exec.Command(bin, args(db)...)
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), "TENON_CONFIG=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	waitDescriptor(t, baseURL)
	time.Sleep(3 * time.Second)
	t.Logf("RSS idle after start: %s", rss(t, cmd.Process.Pid, "VmRSS"))

	tokens := make([]string, tenants)
	now := time.Now()
	for i := range tokens {
		tok, err := connectjwt.SignHS256(connectjwt.Claims{
			Issuer: loadseed.ClientKey(i), Subject: "user-1",
			IssuedAt: now.Unix(), ExpiresAt: now.Add(10 * time.Minute).Unix(), QSH: qsh.ContextQSH,
		}, []byte(loadseed.Secret(i)))
		if err != nil {
			t.Fatal(err)
		}
		tokens[i] = "JWT " + tok
	}

	var (
		stop       atomic.Bool
		sent, fail atomic.Int64
		mu         sync.Mutex
		latencies  []time.Duration
		wg         sync.WaitGroup
		peak       int64
	)
	transport := &http.Transport{MaxIdleConnsPerHost: loadClients}
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	sampleDone := make(chan struct{})
	go func() {
		defer close(sampleDone)
		for !stop.Load() {
			if kb := rssKB(cmd.Process.Pid, "VmRSS"); kb > peak {
				peak = kb
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	loadStart := time.Now()
	for c := range loadClients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 42))
			var mine []time.Duration
			for !stop.Load() && sent.Add(1) <= loadMax {
				i := rng.IntN(tenants)
				var req *http.Request
				if rng.Float64() < writeFraction {
					req, _ = http.NewRequest("POST", fmt.Sprintf("%s/api/checklists/DEMO-%d/items", baseURL, 1+rng.IntN(50)),
						strings.NewReader(`{"text":"measured"}`))
					req.Header.Set("Content-Type", "application/json")
				} else {
					req, _ = http.NewRequest("GET", fmt.Sprintf("%s/api/checklists/DEMO-%d", baseURL, 1+rng.IntN(50)), nil)
				}
				req.Header.Set("Authorization", tokens[i])
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode/100 != 2 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					fail.Add(1)
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			mu.Unlock()
		})
	}
	time.Sleep(loadFor)
	stop.Store(true)
	wg.Wait()
	<-sampleDone
	elapsed := time.Since(loadStart)
	slices.Sort(latencies)
	pct := func(p float64) time.Duration { return latencies[int(p*float64(len(latencies)-1))] }
	t.Logf("load: %d clients, %.0f%% writes, random tenant of %d per request: %d answered, %d failed, %.0f req/s",
		loadClients, writeFraction*100, tenants, len(latencies), fail.Load(), float64(len(latencies))/elapsed.Seconds())
	t.Logf("latency: p50 %v, p90 %v, p95 %v, p99 %v, max %v",
		pct(0.50).Round(10*time.Microsecond), pct(0.90).Round(10*time.Microsecond), pct(0.95).Round(10*time.Microsecond),
		pct(0.99).Round(10*time.Microsecond), latencies[len(latencies)-1].Round(10*time.Microsecond))
	t.Logf("RSS under load: peak sampled %.1f MiB, VmHWM %s", float64(peak)/1024, rss(t, cmd.Process.Pid, "VmHWM"))
	transport.CloseIdleConnections()
	time.Sleep(5 * time.Second)
	t.Logf("RSS idle 5 s after the load: %s", rss(t, cmd.Process.Pid, "VmRSS"))
	if fail.Load() != 0 {
		t.Errorf("%d requests failed", fail.Load())
	}
}

// startups starts the server runs times and reports the time from
// starting the process to the first answer of the descriptor.
func startups(t *testing.T, bin string, args []string, baseURL string, runs int) string {
	t.Helper()
	var times []time.Duration
	for range runs {
		cmd := exec.Command(bin, args...)
		cmd.Stderr = os.Stderr
		cmd.Env = append(os.Environ(), "TENON_CONFIG=")
		t0 := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitDescriptor(t, baseURL)
		times = append(times, time.Since(t0))
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}
	slices.Sort(times)
	var parts []string
	for _, d := range times {
		parts = append(parts, d.Round(time.Millisecond).String())
	}
	return fmt.Sprintf("median %v (runs: %s)", times[len(times)/2].Round(time.Millisecond), strings.Join(parts, ", "))
}

func waitDescriptor(t *testing.T, baseURL string) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := client.Get(baseURL + "/atlassian-connect.json")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				client.CloseIdleConnections()
				return
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatal("the server did not answer within 30 s")
}

// rssKB reads a memory figure (VmRSS, VmHWM) of pid in KiB.
func rssKB(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}

func rss(t *testing.T, pid int, field string) string {
	t.Helper()
	kb := rssKB(pid, field)
	if kb == 0 {
		t.Fatalf("no %s for process %d", field, pid)
	}
	return fmt.Sprintf("%.1f MiB", float64(kb)/1024)
}
