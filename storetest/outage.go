package storetest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
)

// OutageFunc opens a fresh, empty store, like an OpenFunc, whose database
// the test can take away underneath it: down makes the database
// unreachable while the store stays open (its server stopped, its
// connections closed), and up brings it back. up is nil when the
// database cannot come back (a closed store stays closed).
type OutageFunc func(t *testing.T, now func() time.Time) (st tenon.Store, down, up func())

// testOutage checks that a store whose database is gone answers every
// method of every interface it implements with EUNAVAILABLE and a
// message meant for a person, changes nothing meanwhile, and — when the
// database comes back — serves again, with all it had acknowledged.
func (s *suite) testOutage(t *testing.T) {
	if s.opts.Outage == nil {
		t.Skip("storetest: Options.Outage is not set")
	}
	c := NewClock(Start)
	st, down, up := s.opts.Outage(t, c.Now)
	ctx := context.Background()

	// Acknowledged work before the outage.
	in := mustSave(t, st, NewInstallation("outage-tenant"))
	mustPut(t, st, in.ClientKey, "kept", `{"v":1}`)
	var jobID int64
	if q, ok := st.(tenon.JobQueue); ok {
		id, _, err := q.Enqueue(ctx, "outage", tenon.NewJob{ClientKey: in.ClientKey, Payload: []byte(`{}`)})
		if err != nil {
			t.Fatalf("Enqueue before the outage: %v", err)
		}
		jobID = id
	}
	if kv, ok := st.(tenon.KVStore); ok {
		if err := kv.PutKV(ctx, "outage/kept", []byte("kept")); err != nil {
			t.Fatalf("PutKV before the outage: %v", err)
		}
	}

	down()

	for _, call := range outageCalls(st, in.ClientKey, jobID) {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := call.fn(cctx)
		cancel()
		checkUnavailable(t, call.name, err)
	}

	if up == nil {
		return
	}
	up()
	// The same store, not a new one, serves again: its pool reconnects.
	// A connection that broke in the outage may fail one call more
	// before the pool drops it, so the first read may be retried.
	var got *tenon.Installation
	var err error
	for range 3 {
		if got, err = st.Installation(ctx, in.ClientKey); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("after the database came back: Installation: %v", err)
	}
	checkInstallation(t, "after the outage", got, in)
	if v, err := st.GetValue(ctx, in.ClientKey, "kept"); err != nil || string(v) != `{"v":1}` {
		t.Errorf("after the outage: GetValue(kept) = %s, %v; want the acknowledged value", v, err)
	}
	// Writes refused during the outage left nothing behind.
	_, err = st.GetValue(ctx, in.ClientKey, "refused")
	wantCode(t, "after the outage: GetValue(refused)", err, tenon.ENOTFOUND)
	if q, ok := st.(tenon.JobAdmin); ok {
		jobs, err := q.Jobs(ctx, tenon.JobFilter{Queue: "outage"})
		if err != nil {
			t.Errorf("after the outage: Jobs: %v", err)
		} else if len(jobs) != 1 || jobs[0].ID != jobID || jobs[0].State != tenon.JobPending {
			t.Errorf("after the outage: jobs %+v, want only the acknowledged one, pending", jobs)
		}
	}
	if kv, ok := st.(tenon.KVStore); ok {
		if v, _, err := kv.GetKV(ctx, "outage/kept"); err != nil || string(v) != "kept" {
			t.Errorf("after the outage: GetKV(kept) = %q, %v", v, err)
		}
		_, err := kv.StatKV(ctx, "outage/refused")
		wantCode(t, "after the outage: StatKV(refused)", err, tenon.ENOTFOUND)
	}
	// And it takes writes again.
	mustPut(t, st, in.ClientKey, "after", `{"v":2}`)
	if _, err := st.SetState(ctx, in.ClientKey, tenon.StateDisabled); err != nil {
		t.Errorf("after the outage: SetState: %v", err)
	}
}

// checkUnavailable fails t unless err is EUNAVAILABLE with a message a
// person can read, free of driver detail.
func checkUnavailable(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error while the database is unreachable", what)
		return
	}
	if code := tenon.ErrorCode(err); code != tenon.EUNAVAILABLE {
		t.Errorf("%s: code %q, want %q (%v)", what, code, tenon.EUNAVAILABLE, err)
		return
	}
	msg := tenon.ErrorMessage(err)
	if len(msg) < 20 || !strings.HasSuffix(msg, ".") {
		t.Errorf("%s: message %q is not a sentence for a person", what, msg)
	}
	for _, detail := range []string{"postgres", "sqlite", "dial", "tcp", "127.0.0.1", "sql:", "pgx", "EOF", "%!"} {
		if strings.Contains(msg, detail) {
			t.Errorf("%s: message %q shows internal detail %q", what, msg, detail)
		}
	}
}

type outageCall struct {
	name string
	fn   func(ctx context.Context) error
}

// outageCalls is one valid call of every method of every store interface
// st implements, so each of them is seen failing the same way.
func outageCalls(st tenon.Store, clientKey string, jobID int64) []outageCall {
	now := Start
	calls := []outageCall{
		{"Installation", func(ctx context.Context) error { _, err := st.Installation(ctx, clientKey); return err }},
		{"Installation(unknown)", func(ctx context.Context) error { _, err := st.Installation(ctx, "outage-unknown"); return err }},
		{"Installations", func(ctx context.Context) error { _, err := st.Installations(ctx, ""); return err }},
		{"Installations(enabled)", func(ctx context.Context) error {
			_, err := st.Installations(ctx, tenon.StateEnabled)
			return err
		}},
		{"SaveInstallation", func(ctx context.Context) error { return st.SaveInstallation(ctx, NewInstallation("outage-new")) }},
		{"SetState", func(ctx context.Context) error {
			_, err := st.SetState(ctx, clientKey, tenon.StateDisabled)
			return err
		}},
		{"GetValue", func(ctx context.Context) error { _, err := st.GetValue(ctx, clientKey, "kept"); return err }},
		{"PutValue", func(ctx context.Context) error {
			return st.PutValue(ctx, clientKey, "refused", json.RawMessage(`{"v":0}`))
		}},
		{"DeleteValue", func(ctx context.Context) error { return st.DeleteValue(ctx, clientKey, "kept") }},
		{"ListValues", func(ctx context.Context) error { _, err := st.ListValues(ctx, clientKey, "", "", 10); return err }},
		{"DeleteTenantData", func(ctx context.Context) error { return st.DeleteTenantData(ctx, clientKey) }},
	}
	add := func(name string, fn func(ctx context.Context) error) {
		calls = append(calls, outageCall{name, fn})
	}
	if q, ok := st.(tenon.JobQueue); ok {
		add("Enqueue", func(ctx context.Context) error {
			_, _, err := q.Enqueue(ctx, "outage", tenon.NewJob{ClientKey: clientKey, Payload: []byte(`{}`)})
			return err
		})
		add("Claim", func(ctx context.Context) error { _, err := q.Claim(ctx, "outage", 1, time.Minute); return err })
		add("Complete", func(ctx context.Context) error { return q.Complete(ctx, jobID) })
		add("Retry", func(ctx context.Context) error { return q.Retry(ctx, jobID, now, "x") })
		add("Bury", func(ctx context.Context) error { return q.Bury(ctx, jobID, "x") })
		add("Stats", func(ctx context.Context) error { _, err := q.Stats(ctx, "outage"); return err })
		add("PurgeJobs", func(ctx context.Context) error { _, err := q.PurgeJobs(ctx, now); return err })
	}
	if q, ok := st.(tenon.JobAdmin); ok {
		add("Jobs", func(ctx context.Context) error { _, err := q.Jobs(ctx, tenon.JobFilter{}); return err })
		add("Requeue", func(ctx context.Context) error { return q.Requeue(ctx, jobID) })
	}
	if tc, ok := st.(tenon.TokenCache); ok {
		add("Token", func(ctx context.Context) error { _, _, err := tc.Token(ctx, "outage-token", now); return err })
		add("PutToken", func(ctx context.Context) error {
			return tc.PutToken(ctx, "outage-token", "token-value", now.Add(time.Hour))
		})
		add("DeleteToken", func(ctx context.Context) error { return tc.DeleteToken(ctx, "outage-token") })
		add("PurgeTokens", func(ctx context.Context) error { _, err := tc.PurgeTokens(ctx, now); return err })
	}
	if kv, ok := st.(tenon.KVStore); ok {
		add("PutKV", func(ctx context.Context) error { return kv.PutKV(ctx, "outage/refused", []byte("x")) })
		add("GetKV", func(ctx context.Context) error { _, _, err := kv.GetKV(ctx, "outage/kept"); return err })
		add("StatKV", func(ctx context.Context) error { _, err := kv.StatKV(ctx, "outage/kept"); return err })
		add("DeleteKV", func(ctx context.Context) error { return kv.DeleteKV(ctx, "outage/kept") })
		add("DeleteKVPrefix", func(ctx context.Context) error { _, err := kv.DeleteKVPrefix(ctx, "outage/"); return err })
		add("ListKV", func(ctx context.Context) error { _, err := kv.ListKV(ctx, "outage/", "", 10); return err })
	}
	if l, ok := st.(tenon.Locker); ok {
		add("TryLock", func(ctx context.Context) error { _, err := l.TryLock(ctx, "outage", "me", time.Minute); return err })
		add("Unlock", func(ctx context.Context) error { return l.Unlock(ctx, "outage", "me") })
	}
	if ss, ok := st.(tenon.SettingsStore); ok {
		add("Setting", func(ctx context.Context) error { _, err := ss.Setting(ctx, tenon.SettingMaintenance); return err })
		add("PutSetting", func(ctx context.Context) error {
			return ss.PutSetting(ctx, tenon.SettingMaintenance, json.RawMessage(`{"message":"x"}`))
		})
		add("DeleteSetting", func(ctx context.Context) error { return ss.DeleteSetting(ctx, tenon.SettingMaintenance) })
		add("ListSettings", func(ctx context.Context) error { _, err := ss.ListSettings(ctx, ""); return err })
	}
	if fs, ok := st.(tenon.ForgeStore); ok {
		add("RecordForgeInstallation", func(ctx context.Context) error {
			return fs.RecordForgeInstallation(ctx, NewForgeInstallation("ari:cloud:ecosystem::installation/outage", "outage-cloud"))
		})
		add("ForgeInstallation", func(ctx context.Context) error {
			_, err := fs.ForgeInstallation(ctx, "ari:cloud:ecosystem::installation/outage")
			return err
		})
		add("ForgeInstallations", func(ctx context.Context) error { _, err := fs.ForgeInstallations(ctx, clientKey); return err })
		add("LinkForgeInstallations", func(ctx context.Context) error {
			_, err := fs.LinkForgeInstallations(ctx, clientKey)
			return err
		})
	}
	if p, ok := st.(tenon.Pinger); ok {
		add("Ping", p.Ping)
	}
	if tc, ok := st.(tenon.TenantCounter); ok {
		add("CountInstallations", func(ctx context.Context) error { _, err := tc.CountInstallations(ctx); return err })
	}
	if w, ok := st.(tenon.InstallationWatcher); ok {
		add("WatchInstallations", func(ctx context.Context) error {
			return w.WatchInstallations(ctx, func(string) {})
		})
	}
	if w, ok := st.(interface {
		WatchSettings(ctx context.Context, fn func(name string)) error
	}); ok {
		add("WatchSettings", func(ctx context.Context) error { return w.WatchSettings(ctx, func(string) {}) })
	}
	return calls
}
