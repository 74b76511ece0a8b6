package storetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
)

func (s *suite) testSaveAndGet(t *testing.T) {
	st, clock := s.store(t)
	in := NewInstallation("tenant-a")
	in.State = tenon.StateUninstalled // ignored by SaveInstallation
	mustSave(t, st, in)

	want := NewInstallation("tenant-a")
	want.State = tenon.StateEnabled
	want.InstalledAt = clock.Now()
	want.UpdatedAt = clock.Now()
	checkInstallation(t, "SaveInstallation updates its argument", in, want)
	checkInstallation(t, "Installation", mustGet(t, st, "tenant-a"), want)

	// A tenant without a payload or secret (possible for Forge-only
	// records) round-trips as such.
	bare := &tenon.Installation{ClientKey: "tenant-bare", BaseURL: "https://bare.atlassian.net"}
	mustSave(t, st, bare)
	got := mustGet(t, st, "tenant-bare")
	if got.SharedSecret != "" || len(got.Payload) != 0 || got.State != tenon.StateEnabled {
		t.Errorf("bare installation = %+v", got.Redacted())
	}
}

func (s *suite) testInstallationNotFound(t *testing.T) {
	st, _ := s.store(t)
	mustSave(t, st, NewInstallation("tenant-a"))
	ctx := context.Background()
	for _, key := range []string{"tenant-b", "TENANT-A", "tenant-a ", "", "bad\xffutf8", "nul\x00"} {
		in, err := st.Installation(ctx, key)
		wantCode(t, fmt.Sprintf("Installation(%q)", key), err, tenon.ENOTFOUND)
		if in != nil {
			t.Errorf("Installation(%q) returned a record with an error", key)
		}
	}
}

func (s *suite) testSaveInvalid(t *testing.T) {
	st, _ := s.store(t)
	ctx := context.Background()
	wantCode(t, "SaveInstallation(nil)", st.SaveInstallation(ctx, nil), tenon.EINVALID)
	tests := map[string]func(*tenon.Installation){
		"empty clientKey":    func(in *tenon.Installation) { in.ClientKey = "" },
		"long clientKey":     func(in *tenon.Installation) { in.ClientKey = strings.Repeat("k", 10000) },
		"clientKey not UTF8": func(in *tenon.Installation) { in.ClientKey = "\xff" },
		"NUL in baseUrl":     func(in *tenon.Installation) { in.BaseURL = "https://a\x00.atlassian.net" },
		"payload not JSON":   func(in *tenon.Installation) { in.Payload = []byte(`{"clientKey":`) },
	}
	for name, mutate := range tests {
		in := NewInstallation("tenant-a")
		mutate(in)
		wantCode(t, "SaveInstallation with "+name, st.SaveInstallation(ctx, in), tenon.EINVALID)
	}
	if _, err := st.Installation(ctx, "tenant-a"); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("a refused save left a record behind: %v", err)
	}
}

func (s *suite) testReinstallReplaces(t *testing.T) {
	st, clock := s.store(t)
	first := mustSave(t, st, NewInstallation("tenant-a"))
	installedAt := clock.Now()

	clock.Advance(90 * time.Minute)
	second := &tenon.Installation{
		ClientKey:    "tenant-a",
		AppKey:       "com.example.app",
		SharedSecret: "a-new-secret",
		BaseURL:      "https://renamed.atlassian.net",
		ProductType:  "confluence",
		Payload:      []byte(`{"clientKey":"tenant-a","sharedSecret":"a-new-secret","baseUrl":"https://renamed.atlassian.net"}`),
	}
	mustSave(t, st, second)

	want := *second
	want.State = tenon.StateEnabled
	want.InstalledAt = installedAt
	want.UpdatedAt = clock.Now()
	checkInstallation(t, "after reinstall", mustGet(t, st, "tenant-a"), &want)
	checkInstallation(t, "SaveInstallation updates its argument", second, &want)
	if first.SharedSecret == second.SharedSecret {
		t.Fatal("test is broken: secrets equal")
	}
}

func (s *suite) testReinstallKeepsDisabled(t *testing.T) {
	st, clock := s.store(t)
	mustSave(t, st, NewInstallation("tenant-a"))
	clock.Advance(time.Minute)
	mustSetState(t, st, "tenant-a", tenon.StateDisabled)
	clock.Advance(time.Minute)
	in := NewInstallation("tenant-a")
	in.State = tenon.StateEnabled // ignored
	mustSave(t, st, in)
	if in.State != tenon.StateDisabled {
		t.Errorf("SaveInstallation set in.State = %s, want disabled", in.State)
	}
	if got := mustGet(t, st, "tenant-a"); got.State != tenon.StateDisabled {
		t.Errorf("after reinstall of a disabled tenant: state = %s, want disabled", got.State)
	}
}

func (s *suite) testReinstallAfterUninstall(t *testing.T) {
	st, clock := s.store(t)
	mustSave(t, st, NewInstallation("tenant-a"))
	installedAt := clock.Now()
	clock.Advance(time.Hour)
	mustSetState(t, st, "tenant-a", tenon.StateDisabled)
	clock.Advance(time.Hour)
	un := mustSetState(t, st, "tenant-a", tenon.StateUninstalled)
	checkTime(t, "UninstalledAt", un.UninstalledAt, clock.Now())

	clock.Advance(24 * time.Hour)
	in := mustSave(t, st, NewInstallation("tenant-a"))
	want := NewInstallation("tenant-a")
	want.State = tenon.StateEnabled
	want.InstalledAt = installedAt
	want.UpdatedAt = clock.Now()
	checkInstallation(t, "SaveInstallation after uninstall", in, want)
	checkInstallation(t, "Installation after reinstall", mustGet(t, st, "tenant-a"), want)
}

func (s *suite) testSetState(t *testing.T) {
	st, clock := s.store(t)
	mustSave(t, st, NewInstallation("tenant-a"))
	want := NewInstallation("tenant-a")
	want.InstalledAt = clock.Now()

	step := func(state tenon.State, changes bool) {
		t.Helper()
		clock.Advance(time.Minute)
		if changes {
			want.UpdatedAt = clock.Now()
		}
		want.State = state
		got := mustSetState(t, st, "tenant-a", state)
		checkInstallation(t, "SetState("+string(state)+") result", got, want)
		checkInstallation(t, "Installation after SetState("+string(state)+")", mustGet(t, st, "tenant-a"), want)
	}
	want.UpdatedAt = clock.Now()
	step(tenon.StateDisabled, true)
	step(tenon.StateDisabled, false) // no change: UpdatedAt stays
	step(tenon.StateEnabled, true)
	step(tenon.StateEnabled, false)

	_, err := st.SetState(context.Background(), "tenant-a", tenon.State("deleted"))
	wantCode(t, "SetState(deleted)", err, tenon.EINVALID)
	_, err = st.SetState(context.Background(), "tenant-a", "")
	wantCode(t, `SetState("")`, err, tenon.EINVALID)
	checkInstallation(t, "after refused SetState", mustGet(t, st, "tenant-a"), want)
}

func (s *suite) testUninstalledWins(t *testing.T) {
	st, clock := s.store(t)
	mustSave(t, st, NewInstallation("tenant-a"))
	want := NewInstallation("tenant-a")
	want.InstalledAt = clock.Now()

	clock.Advance(time.Minute)
	got := mustSetState(t, st, "tenant-a", tenon.StateUninstalled)
	want.State = tenon.StateUninstalled
	want.UpdatedAt = clock.Now()
	want.UninstalledAt = clock.Now()
	checkInstallation(t, "SetState(uninstalled)", got, want)
	if got.Active() {
		t.Error("an uninstalled tenant is Active")
	}

	for _, state := range []tenon.State{tenon.StateEnabled, tenon.StateDisabled} {
		clock.Advance(time.Minute)
		got, err := st.SetState(context.Background(), "tenant-a", state)
		wantCode(t, "SetState("+string(state)+") of an uninstalled tenant", err, tenon.ECONFLICT)
		if got != nil {
			t.Errorf("SetState(%s) returned a record with an error", state)
		}
	}
	// Uninstalling again is idempotent and keeps the first UninstalledAt:
	// Atlassian retries callbacks.
	clock.Advance(time.Minute)
	checkInstallation(t, "second SetState(uninstalled)", mustSetState(t, st, "tenant-a", tenon.StateUninstalled), want)
	checkInstallation(t, "Installation", mustGet(t, st, "tenant-a"), want)
}

func (s *suite) testSetStateUnknown(t *testing.T) {
	st, _ := s.store(t)
	mustSave(t, st, NewInstallation("tenant-a"))
	for _, key := range []string{"tenant-b", "", "\xff"} {
		for _, state := range []tenon.State{tenon.StateEnabled, tenon.StateDisabled, tenon.StateUninstalled} {
			in, err := st.SetState(context.Background(), key, state)
			wantCode(t, fmt.Sprintf("SetState(%q, %s)", key, state), err, tenon.ENOTFOUND)
			if in != nil {
				t.Errorf("SetState(%q) returned a record with an error", key)
			}
		}
	}
	if _, err := st.Installation(context.Background(), "tenant-b"); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("SetState created a tenant: %v", err)
	}
}

// testConcurrentDisableUninstall replays what Atlassian does when an admin
// uninstalls: `disabled` and `uninstalled` arrive together and are handled
// in parallel. Whatever the interleaving, the tenant must end uninstalled.
func (s *suite) testConcurrentDisableUninstall(t *testing.T) {
	st, _ := s.store(t)
	const tenants, disablers = 10, 8
	ctx := context.Background()
	for i := range tenants {
		mustSave(t, st, NewInstallation(fmt.Sprintf("tenant-%02d", i)))
	}
	var wg sync.WaitGroup
	errs := make(chan error, tenants*(disablers+2))
	for i := range tenants {
		key := fmt.Sprintf("tenant-%02d", i)
		for j := range disablers + 2 {
			wg.Go(func() {
				state := tenon.StateDisabled
				switch j {
				case disablers / 2:
					state = tenon.StateUninstalled
				case disablers + 1:
					state = tenon.StateEnabled
				}
				_, err := st.SetState(ctx, key, state)
				if err != nil && !(state != tenon.StateUninstalled && tenon.ErrorCode(err) == tenon.ECONFLICT) {
					errs <- fmt.Errorf("SetState(%q, %s): %w", key, state, err)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range tenants {
		key := fmt.Sprintf("tenant-%02d", i)
		if got := mustGet(t, st, key); got.State != tenon.StateUninstalled || got.UninstalledAt.IsZero() {
			t.Errorf("%s: state = %s, UninstalledAt = %v; want uninstalled with a time", key, got.State, got.UninstalledAt)
		}
	}
}

// testConcurrentReinstall checks a save replaces secret and payload in one
// step: readers racing reinstalls never see one save's secret with another
// save's payload.
func (s *suite) testConcurrentReinstall(t *testing.T) {
	st, _ := s.store(t)
	ctx := context.Background()
	mustSave(t, st, NewInstallation("tenant-a"))
	payloadFor := func(secret string) string {
		return fmt.Sprintf(`{"clientKey":"tenant-a","sharedSecret":%q}`, secret)
	}
	mustSave(t, st, &tenon.Installation{ClientKey: "tenant-a", SharedSecret: "s-init", Payload: []byte(payloadFor("s-init"))})

	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 8 {
		wg.Go(func() {
			for j := range 5 {
				secret := fmt.Sprintf("s-%d-%d", i, j)
				in := &tenon.Installation{ClientKey: "tenant-a", SharedSecret: secret, Payload: []byte(payloadFor(secret))}
				if err := st.SaveInstallation(ctx, in); err != nil {
					errs <- err
					return
				}
			}
		})
		wg.Go(func() {
			for range 5 {
				in, err := st.Installation(ctx, "tenant-a")
				if err != nil {
					errs <- err
					return
				}
				if string(in.Payload) != payloadFor(in.SharedSecret) {
					errs <- fmt.Errorf("secret and payload come from different saves")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func (s *suite) testList(t *testing.T) {
	st, _ := s.store(t)
	ctx := context.Background()
	// Byte order: "B" < "_x" < "a..." < "é"; a collation-aware database
	// would sort these differently.
	for _, key := range []string{"tenant-c", "tenant-a", "é-tenant", "B", "_x", "tenant-b", "tenant-d"} {
		mustSave(t, st, NewInstallation(key))
	}
	mustSetState(t, st, "tenant-b", tenon.StateDisabled)
	mustSetState(t, st, "tenant-d", tenon.StateUninstalled)
	mustSetState(t, st, "_x", tenon.StateDisabled)

	tests := []struct {
		state tenon.State
		want  []string
	}{
		{"", []string{"B", "_x", "tenant-a", "tenant-b", "tenant-c", "tenant-d", "é-tenant"}},
		{tenon.StateEnabled, []string{"B", "tenant-a", "tenant-c", "é-tenant"}},
		{tenon.StateDisabled, []string{"_x", "tenant-b"}},
		{tenon.StateUninstalled, []string{"tenant-d"}},
	}
	for _, tt := range tests {
		list, err := st.Installations(ctx, tt.state)
		if err != nil {
			t.Fatalf("Installations(%q): %v", tt.state, err)
		}
		var keys []string
		for _, in := range list {
			keys = append(keys, in.ClientKey)
			if in.State != tt.state && tt.state != "" {
				t.Errorf("Installations(%q) returned %s in state %s", tt.state, in.ClientKey, in.State)
			}
			if want := NewInstallation(in.ClientKey); in.SharedSecret != want.SharedSecret || string(in.Payload) != string(want.Payload) {
				t.Errorf("Installations(%q): %s has a wrong secret or payload", tt.state, in.ClientKey)
			}
		}
		if !equalStrings(keys, tt.want) {
			t.Errorf("Installations(%q) = %q, want %q", tt.state, keys, tt.want)
		}
	}
	_, err := st.Installations(ctx, "deleted")
	wantCode(t, "Installations(deleted)", err, tenon.EINVALID)

	empty, _ := s.store(t)
	list, err := empty.Installations(ctx, "")
	if err != nil || len(list) != 0 {
		t.Errorf("Installations on an empty store = %d records, %v", len(list), err)
	}
}

func (s *suite) testPayloadRoundTrip(t *testing.T) {
	st, _ := s.store(t)
	// Whitespace, key order, escapes, non-ASCII, a field no version knows
	// yet and big numbers must all come back exactly as received.
	payload := "{\n  \"sharedSecret\" : \"x\\u0041\\\"y\",\t\"clientKey\":\"tenant-a\",\n" +
		"  \"future\": {\"z\": [1, 2.50, 1e400, 12345678901234567890]}, \"name\": \"Zürich \\ud83d\\ude00 😀\"\n}\n"
	in := NewInstallation("tenant-a")
	in.Payload = []byte(payload)
	mustSave(t, st, in)
	if got := mustGet(t, st, "tenant-a"); string(got.Payload) != payload {
		t.Errorf("Payload = %q, want %q", got.Payload, payload)
	}
	big := NewInstallation("tenant-big")
	big.Payload = []byte(`{"description":"` + strings.Repeat("é", 100_000) + `"}`)
	mustSave(t, st, big)
	if got := mustGet(t, st, "tenant-big"); string(got.Payload) != string(big.Payload) {
		t.Errorf("a 200 kB payload did not round-trip (got %d bytes)", len(got.Payload))
	}
}

func (s *suite) testSecretsEncrypted(t *testing.T) {
	if s.opts.RawInstallation == nil {
		t.Fatal("storetest: Options.RawInstallation is required to check secrets are encrypted at rest")
	}
	st, clock := s.store(t)
	const secret = "plain-shared-secret-0f3a9c"
	const payloadSecret = "plain-payload-secret-77e1b2"
	const payloadMarker = "payload-marker-5d41"
	in := NewInstallation("tenant-a")
	in.SharedSecret = secret
	in.Payload = []byte(`{"clientKey":"tenant-a","sharedSecret":"` + payloadSecret + `","description":"` + payloadMarker + `"}`)

	check := func(when string) {
		t.Helper()
		raw := s.opts.RawInstallation(t, st, "tenant-a")
		if !strings.Contains(raw, "tenant-a") {
			t.Fatalf("%s: RawInstallation does not look like the record (no clientKey)", when)
		}
		for _, plain := range []string{secret, payloadSecret, payloadMarker} {
			if strings.Contains(raw, plain) {
				t.Errorf("%s: the stored record contains %q in plain text", when, plain)
			}
		}
	}
	mustSave(t, st, in)
	check("after install")
	clock.Advance(time.Minute)
	mustSetState(t, st, "tenant-a", tenon.StateDisabled)
	check("after SetState")
	mustSave(t, st, in)
	check("after reinstall")
	if got := mustGet(t, st, "tenant-a"); got.SharedSecret != secret {
		t.Error("the secret does not decrypt back")
	}
}
