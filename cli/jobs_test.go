package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/cli"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/sqlite"
)

func TestJobsListAndRetry(t *testing.T) {
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
	ctx := context.Background()
	const queue = "webhook:jira:issue_deleted"
	dead, _, err := st.Enqueue(ctx, queue, tenon.NewJob{ClientKey: "site-1", Payload: json.RawMessage(`{"issue":{}}`)})
	if err != nil {
		t.Fatal(err)
	}
	pending, _, err := st.Enqueue(ctx, queue, tenon.NewJob{ClientKey: "site-1", Payload: json.RawMessage(`{}`), RunAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Claim(ctx, queue, 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := st.Bury(ctx, dead, "permanent failure: The issue key is not valid:\nexpected PROJ-123."); err != nil {
		t.Fatal(err)
	}
	st.Close()

	// A serve configuration file holds more than the store settings.
	conf := filepath.Join(dir, "tenon.conf")
	os.WriteFile(conf, []byte("TENON_BASE_URL=https://app.example.com\nTENON_DB="+db+"\n"), 0o600)
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := cli.Run(ctx, cli.Env{Stdout: &out, Stderr: &errOut, Getenv: env(map[string]string{"TENON_SECRET_KEY_FILE": keyFile})}, nil,
			append([]string{"jobs"}, args...))
		return code, out.String(), errOut.String()
	}

	code, out, errOut := run("list", "-state", "dead", "--config", conf)
	if code != 0 {
		t.Fatalf("jobs list: exit %d: %s", code, errOut)
	}
	rows := strings.Split(strings.TrimSpace(out), "\n")
	if len(rows) != 2 || strings.Join(strings.Fields(rows[1])[:3], " ") != strconv.FormatInt(dead, 10)+" "+queue+" dead" ||
		!strings.HasSuffix(rows[1], "permanent failure: The issue key is not valid: expected PROJ-123.") {
		t.Errorf("jobs list -state dead:\n%s", out)
	}
	code, out, _ = run("list", "-json", "--db", db)
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(out, `"payload":{"issue":{}}`) {
		t.Errorf("jobs list -json: exit %d\n%s", code, out)
	}

	code, out, errOut = run("retry", "--db", db, strconv.FormatInt(dead, 10))
	if code != 0 || !strings.Contains(out, "is pending again") {
		t.Fatalf("jobs retry: exit %d: %s %s", code, out, errOut)
	}
	code, _, errOut = run("retry", "--db", db, strconv.FormatInt(pending, 10))
	if code != 1 || !strings.Contains(errOut, "only dead jobs can be requeued") {
		t.Errorf("retry of a pending job: exit %d: %s", code, errOut)
	}
	code, out, _ = run("list", "-state", "dead", "--db", db)
	if code != 0 || strings.Count(out, "\n") != 1 {
		t.Errorf("dead letters after the retry:\n%s", out)
	}

	for _, args := range [][]string{
		{},                                       // no subcommand
		{"list", "-state", "zombie", "--db", db}, // unknown state
		{"retry", "--db", db},                    // no ids
		{"retry", "--db", db, "x1"},              // not an id
		{"list", "--db", ""},                     // no store
	} {
		if code, _, _ := run(args...); code == 0 {
			t.Errorf("jobs %v succeeded", args)
		}
	}
}

func TestConfigJobSettings(t *testing.T) {
	base := map[string]string{"TENON_BASE_URL": "https://app.example.com", "TENON_SECRET_KEY_FILE": "/k"}
	cfg, err := cli.LoadConfig(nil, env(base), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.JobWorkers != 4 || cfg.JobPoll != time.Second {
		t.Errorf("defaults: %d workers, poll %v", cfg.JobWorkers, cfg.JobPoll)
	}
	cfg, err = cli.LoadConfig([]string{"--job-workers", "0", "--job-poll", "250ms"}, env(base), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.JobWorkers >= 0 || cfg.JobPoll != 250*time.Millisecond {
		t.Errorf("--job-workers 0: %d (want negative: none), poll %v", cfg.JobWorkers, cfg.JobPoll)
	}
	for _, bad := range [][]string{{"--job-workers", "-1"}, {"--job-workers", "many"}, {"--job-poll", "0s"}, {"--job-poll", "soon"}} {
		if _, err := cli.LoadConfig(bad, env(base), io.Discard); err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(bad[0], "--")) {
			t.Errorf("LoadConfig(%v) = %v, want an error naming the setting", bad, err)
		}
	}
}
