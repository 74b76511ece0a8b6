package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/cli"
	"github.com/tenon-dev/tenon/fakeatlassian"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/leader"
	"github.com/tenon-dev/tenon/reconcile"
	"github.com/tenon-dev/tenon/sqlite"
)

func TestTenantsReconcile(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "secret.key")
	line, err := keyring.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	box, err := keyring.Load(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "tenon.db")
	st, err := sqlite.Open(db, sqlite.Options{SecretBox: box})
	if err != nil {
		t.Fatal(err)
	}
	f := fakeatlassian.New(fakeatlassian.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := f.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx := context.Background()
	var ids []string
	var sites []*fakeatlassian.Site
	for _, name := range []string{"kept", "left"} {
		site, err := f.AddSite(fakeatlassian.SiteOptions{Name: name, Product: fakeatlassian.ProductJira})
		if err != nil {
			t.Fatal(err)
		}
		inst, err := f.InstallForge(site, fakeatlassian.ForgeInstallOptions{RemoteBaseURL: "http://127.0.0.1:9/r"})
		if err != nil {
			t.Fatal(err)
		}
		in := &tenon.ForgeInstallation{InstallationID: inst.InstallationID, AppID: inst.AppID, CloudID: inst.CloudID,
			APIBaseURL: inst.APIBaseURL, Environment: tenon.ForgeEnvironment{Type: inst.EnvironmentType, ID: inst.EnvironmentID}}
		if _, _, err := st.ForgeInstalled(ctx, in, false, false, time.Now()); err != nil {
			t.Fatal(err)
		}
		sys, _, err := f.ForgeTokens(site, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if err := st.PutToken(ctx, tenon.ForgeSystemTokenKey(inst.InstallationID), sys, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		ids, sites = append(ids, inst.InstallationID), append(sites, site)
	}
	st.Close()
	if err := f.UninstallForge(sites[1], ""); err != nil {
		t.Fatal(err)
	}
	run := func(vars map[string]string, args ...string) (string, error) {
		vars["TENON_SECRET_KEY_FILE"] = keyFile
		var out, errOut bytes.Buffer
		err := cli.RunTenantsReconcile(ctx, cli.Env{Stdout: &out, Stderr: &errOut, Getenv: env(vars)}, nil, args)
		return out.String(), err
	}
	states := func() []tenon.ForgeState {
		t.Helper()
		st, err := sqlite.Open(db, sqlite.Options{SecretBox: box})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		var out []tenon.ForgeState
		for _, id := range ids {
			in, err := st.ForgeInstallation(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, in.State)
		}
		return out
	}
	active := []tenon.ForgeState{tenon.ForgeActive, tenon.ForgeActive}

	// Refusals: nothing is asked, nothing changes.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--db", filepath.Join(dir, "missing.db")}, "no database at"},
		{[]string{"--db", db, "-concurrency", "0"}, "-concurrency must be between 1 and 64"},
		{[]string{"--db", db, "-timeout", "-1s"}, "-timeout must be positive"},
		{[]string{"--db", db, "extra"}, "unexpected arguments"},
	} {
		if _, err := run(map[string]string{"TENON_ENVIRONMENT": "development"}, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
	// In production the fake's http:// API is not trusted with a token:
	// no answer, so nothing is marked.
	out, err := run(map[string]string{"TENON_ENVIRONMENT": "production"}, "--db", db)
	if err != nil || !strings.Contains(out, "checked 2: live 0, gone 0") || !strings.Contains(out, "unknown 2") {
		t.Errorf("production: %v\n%s", err, out)
	}
	if got := states(); got[0] != active[0] || got[1] != active[1] {
		t.Fatalf("states after a run without answers: %v", got)
	}

	out, err = run(map[string]string{"TENON_ENVIRONMENT": "development"}, "--db", db)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "checked 2: live 1, gone 1") || !strings.Contains(out, "uninstalled "+ids[1]+": ") {
		t.Errorf("output:\n%s", out)
	}
	if got := states(); got[0] != tenon.ForgeActive || got[1] != tenon.ForgeUninstalled {
		t.Errorf("states: %v", got)
	}
}

func TestReconcileSchedule(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "tenon.db"), sqlite.Options{SecretBox: noBox{}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var mu sync.Mutex
	now := time.Date(2026, 12, 3, 4, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	ticks := make(chan time.Time)
	ran := make(chan struct{}, 10)
	runs := 0
	s := cli.NewReconcileSchedule(st, clock, func(time.Duration) <-chan time.Time { return ticks },
		func(context.Context) (reconcile.Report, error) {
			runs++
			ran <- struct{}{}
			return reconcile.Report{Checked: runs}, nil
		})
	ctx := context.Background()
	s.RunIfDue(ctx) // no run recorded yet: runs
	advance(23 * time.Hour)
	s.RunIfDue(ctx) // a day has not passed
	if runs != 1 {
		t.Fatalf("%d runs within a day", runs)
	}
	advance(time.Hour)
	s.RunIfDue(ctx)
	if runs != 2 {
		t.Fatalf("%d runs after a day", runs)
	}
	raw, err := st.Setting(ctx, "forge/reconcile")
	var rec struct {
		LastRun time.Time `json:"lastRun"`
		Report  string    `json:"report"`
	}
	if err != nil || json.Unmarshal(raw, &rec) != nil || !rec.LastRun.Equal(clock()) || !strings.HasPrefix(rec.Report, "checked 2") {
		t.Errorf("recorded %s (%v)", raw, err)
	}
	for len(ran) > 0 {
		<-ran
	}

	// On the leader: a run at the start of the term when due, then one
	// per poll when a day has passed.
	advance(24 * time.Hour)
	tctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); s.Run(tctx, leader.Always{}) }()
	<-ran
	ticks <- time.Time{} // not due: no run
	advance(24 * time.Hour)
	ticks <- time.Time{}
	<-ran
	cancel()
	<-done
	if runs != 4 {
		t.Errorf("%d runs, want 4", runs)
	}
}

// noBox is the SecretBox of a store holding no secrets.
type noBox struct{}

func (noBox) Seal(b []byte) (string, error) { return string(b), nil }
func (noBox) Open(s string) ([]byte, error) { return []byte(s), nil }
