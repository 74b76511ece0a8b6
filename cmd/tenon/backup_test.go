package main_test

import (
	"bufio"
	"crypto/rsa"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ack is one write the server acknowledged, and when.
type ack struct {
	clientKey, secret, item string // item empty: the install itself
	at                      time.Time
}

// TestRestoreIfEmptyAfterDiskLoss writes through real routes (signed
// installs, then checklist items of each new tenant) while serve
// replicates to a backup directory, SIGKILLs the server, deletes the
// database with its -wal and -shm files, and starts serve with
// --restore-if-empty. Every write acknowledged before the last moment the
// server reported its replica complete (the measured recovery point) must
// be there; the writes after it are counted and reported.
func TestRestoreIfEmptyAfterDiskLoss(t *testing.T) {
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
	addr, admin := freeAddr(t), freeAddr(t)
	baseURL := "http://" + addr
	db := filepath.Join(dir, "tenon.db")
	args := []string{
		"--addr", addr, "--base-url", baseURL, "--environment", "development",
		"--db", db, "--secret-key-file", keyFile, "--install-keys-url", keys.URL,
		"--log-level", "warn", "--admin-addr", admin, "--drain-delay", "0s",
		"--backup-url", "file://" + filepath.Join(dir, "backups"), "--backup-sync-interval", "1s",
		"--backup-schedule", "off", "--drill-schedule", "off", "--restore-if-empty", "true",
	}
	p := startServer(t, bin, args, baseURL)
	acks, synced, killedAt := loadUntilKilled(t, p, baseURL, admin, priv, "dl", 400, 4*time.Second)
	for _, f := range []string{db, db + "-wal", db + "-shm"} {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}

	start := time.Now()
	startServer(t, bin, args, baseURL)
	restartTook := time.Since(start)
	checkRestored(t, baseURL, acks, synced, killedAt)
	t.Logf("restart with --restore-if-empty to serving: %s", restartTook.Round(time.Millisecond))
}

// loadUntilKilled writes through real routes (signed installs, then
// checklist items of each new tenant, keys starting with prefix) for
// loadFor (at most perWriter writes by each of 4 writers) while watching the server's tenon_backup_replica_synced gauge,
// then SIGKILLs the server. It returns the acknowledged writes, the
// newest sync the server reported and the moment of the kill.
func loadUntilKilled(t *testing.T, p *proc, baseURL, admin string, priv *rsa.PrivateKey, prefix string, perWriter int, loadFor time.Duration) ([]ack, time.Time, time.Time) {
	t.Helper()
	// Bounded load: 4 writers for at most loadFor or perWriter writes each.
	const writers = 4
	var (
		mu     sync.Mutex
		acks   []ack
		synced time.Time // newest tenon_backup_replica_synced_timestamp_seconds seen
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var clientKey, secret string
			for i := 0; i < perWriter; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if i%5 == 0 {
					clientKey, secret = fmt.Sprintf("%s-%d-%03d", prefix, w, i), fmt.Sprintf("secret-%d-%03d-%s", w, i, strings.Repeat("x", 24))
					auth, body := installRequest(t, baseURL, clientKey, secret, "http://127.0.0.1:1/s/"+clientKey, priv)
					status, _ := sendQuiet(baseURL+"/installed", auth, string(body))
					if status/100 != 2 {
						return // the server is gone
					}
					mu.Lock()
					acks = append(acks, ack{clientKey: clientKey, secret: secret, at: time.Now()})
					mu.Unlock()
					continue
				}
				item := fmt.Sprintf("item %d of %s", i, clientKey)
				status, _ := sendQuiet(baseURL+"/api/checklists/DEMO-1/items", contextToken(t, clientKey, secret), `{"text":"`+item+`"}`)
				if status/100 != 2 {
					return
				}
				mu.Lock()
				acks = append(acks, ack{clientKey: clientKey, secret: secret, item: item, at: time.Now()})
				mu.Unlock()
			}
		}()
	}
	// Watch the server's own account of its replica while the load runs.
	deadline := time.Now().Add(loadFor)
	for time.Now().Before(deadline) {
		if s, ok := scrapeGauge(admin, "tenon_backup_replica_synced_timestamp_seconds"); ok && s > 0 {
			mu.Lock()
			synced = time.Unix(0, int64(s*1e9))
			mu.Unlock()
		}
		time.Sleep(200 * time.Millisecond)
	}
	killedAt := time.Now()
	kill(t, p)
	close(stop)
	wg.Wait()
	if synced.IsZero() {
		t.Fatal("the server never reported its replica in sync")
	}
	return acks, synced, killedAt
}

// checkRestored reads back, through the API, every tenant and item
// acknowledged: all of those acknowledged before synced must be there.
func checkRestored(t *testing.T, baseURL string, acks []ack, synced, killedAt time.Time) {
	t.Helper()
	items := map[string]string{}
	installed := map[string]bool{}
	for _, a := range acks {
		if a.item != "" || installed[a.clientKey] {
			continue
		}
		status, page := sendQuiet(baseURL+"/api/checklists/DEMO-1", contextToken(t, a.clientKey, a.secret), "")
		if status == 200 {
			installed[a.clientKey], items[a.clientKey] = true, page
		}
	}
	var covered, lost int
	var newestPresent time.Time
	for _, a := range acks {
		present := installed[a.clientKey] && (a.item == "" || strings.Contains(items[a.clientKey], a.item))
		if present && a.at.After(newestPresent) {
			newestPresent = a.at
		}
		if a.at.Before(synced) {
			covered++
			if !present {
				t.Errorf("acknowledged at %s, before the replica was reported complete (%s), and missing after restore: %+v",
					a.at.Format(time.RFC3339Nano), synced.Format(time.RFC3339Nano), a)
			}
		} else if !present {
			lost++
		}
	}
	if covered == 0 {
		t.Fatal("no acknowledged write fell before the measured recovery point; the test proved nothing")
	}
	t.Logf("%d writes acknowledged; %d before the last reported replica sync, all restored; %d after it lost", len(acks), covered, lost)
	t.Logf("RPO: the newest restored write was acknowledged %s before SIGKILL; the server's last reported sync was %s before it",
		killedAt.Sub(newestPresent).Round(time.Millisecond), killedAt.Sub(synced).Round(time.Millisecond))
}

func sendQuiet(url, auth, body string) (int, string) {
	method := "GET"
	if body != "" {
		method = "POST"
	}
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		b.WriteString(sc.Text())
	}
	return resp.StatusCode, b.String()
}

// scrapeGauge reads one unlabelled gauge from the admin listener.
func scrapeGauge(admin, name string) (float64, bool) {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}
