package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/connectjwt"
	"github.com/tenon-dev/tenon/qsh"
	"github.com/tenon-dev/tenon/server"
)

func TestInstallStoresTenant(t *testing.T) {
	e := newEnv(t)
	e.install("client-a", "secret-a-0123456789")
	in := e.installation("client-a")
	if in.SharedSecret != "secret-a-0123456789" || in.BaseURL != siteURL || in.State != tenon.StateEnabled ||
		in.AppKey != appKey || in.ProductType != "jira" {
		t.Fatalf("stored %+v", in.Redacted())
	}
	var payload map[string]any
	if err := json.Unmarshal(in.Payload, &payload); err != nil || payload["futureField"] == nil {
		t.Fatalf("payload not kept whole: %s", in.Payload)
	}
}

// Each case is one attack on the installed callback. Every one must be
// refused with the given status and leave the store exactly as it was
// (a tenant "client-a" is installed beforehand, so overwrites show).
func TestInstalledRejections(t *testing.T) {
	e := newEnv(t)
	e.install("client-a", "secret-a")
	e.install("client-b", "secret-b")

	valid := func(mod func(*connectjwt.Claims)) string {
		c := e.lifecycleClaims("client-a", "installed")
		mod(&c)
		return signRS256(t, c, kid, installKey())
	}
	body := lifecycleBody("client-a", "attacker-secret")

	cases := []struct {
		name   string
		body   []byte
		token  string
		status int
		want   string // part of the message: refused for the intended reason
	}{
		{"AlgNoneEmptySignature", body, unsignedToken(`{"alg":"none","typ":"JWT"}`, e.lifecycleClaims("client-a", "installed"), ""), 401, "malformed"},
		{"AlgNoneWithSignature", body, unsignedToken(`{"alg":"none","typ":"JWT"}`, e.lifecycleClaims("client-a", "installed"), "c2ln"), 401, "RS256"},
		{"HS256OnLifecycle", body, signHS256(t, e.lifecycleClaims("client-a", "installed"), "attacker-secret"), 401, "RS256"},
		{"HS256WithStoredSecret", body, signHS256(t, e.lifecycleClaims("client-a", "installed"), "secret-a"), 401, "RS256"},
		{"UnknownKid", body, signRS256(t, e.lifecycleClaims("client-a", "installed"), "no-such-kid", installKey()), 401, "kid"},
		{"ForgedSignatureKnownKid", body, signRS256(t, e.lifecycleClaims("client-a", "installed"), kid, otherKey()), 401, "signature"},
		{"WrongAudience", body, valid(func(c *connectjwt.Claims) { c.Audience = connectjwt.Audience{"https://evil.example"} }), 401, "aud"},
		{"NoAudience", body, valid(func(c *connectjwt.Claims) { c.Audience = nil }), 401, "aud"},
		{"WrongQSH", body, valid(func(c *connectjwt.Claims) { c.QSH = qsh.Hash("POST", "/app/uninstalled", "", "/app") }), 401, "qsh mismatch"},
		{"ContextQSH", body, valid(func(c *connectjwt.Claims) { c.QSH = qsh.ContextQSH }), 401, "context token"},
		{"MissingQSH", body, valid(func(c *connectjwt.Claims) { c.QSH = "" }), 401, "no query string hash"},
		{"MissingExp", body, tokenWithoutExp(t, e.lifecycleClaims("client-a", "installed"), "", installKey()), 401, "no expiry"},
		{"ExpiredBeyondLeeway", body, valid(func(c *connectjwt.Claims) { c.ExpiresAt = e.clock.Now().Add(-31 * time.Second).Unix() }), 401, "expired"},
		{"IssuedInFuture", body, valid(func(c *connectjwt.Claims) { c.IssuedAt = e.clock.Now().Add(time.Hour).Unix() }), 401, "future"},
		{"IssuerNotBodyClientKey", lifecycleBody("client-a", "attacker-secret"), signRS256(t, e.lifecycleClaims("client-evil", "installed"), kid, installKey()), 401, "different site"},
		// A reinstall for tenant B signed by tenant A's site.
		{"ReinstallOfBSignedForA", lifecycleBody("client-b", "attacker-secret"), e.installToken("client-a", "installed"), 401, "different site"},
		{"HostNotAllowed", lifecycleBody("client-a", "attacker-secret", func(m map[string]any) { m["baseUrl"] = "https://evil.example.com" }), e.installToken("client-a", "installed"), 403, "host is not allowed"},
		{"HostTwoLabelsUnderWildcard", lifecycleBody("client-a", "attacker-secret", func(m map[string]any) { m["baseUrl"] = "https://a.b.atlassian.net" }), e.installToken("client-a", "installed"), 403, "host is not allowed"},
		{"HostSuffixTrick", lifecycleBody("client-a", "attacker-secret", func(m map[string]any) { m["baseUrl"] = "https://acme.atlassian.net.evil.example" }), e.installToken("client-a", "installed"), 403, "host is not allowed"},
		{"HTTPBaseURL", lifecycleBody("client-new", "attacker-secret", func(m map[string]any) { m["baseUrl"] = "http://acme.atlassian.net" }), e.installToken("client-new", "installed"), 403, "https"},
		{"DowngradeToHTTP", lifecycleBody("client-a", "attacker-secret", func(m map[string]any) { m["baseUrl"] = "http://acme.atlassian.net" }), e.installToken("client-a", "installed"), 400, "cannot move it to plain http"},
		{"UserInfoBaseURL", lifecycleBody("client-a", "attacker-secret", func(m map[string]any) { m["baseUrl"] = "https://evil@acme.atlassian.net" }), e.installToken("client-a", "installed"), 400, "absolute URL"},
		{"NoToken", body, "", 401, "no Authorization"},
		{"GarbageToken", body, "not.a.token", 401, "malformed"},
		{"MalformedJSON", []byte(`{"clientKey": "client-a",`), e.installToken("client-a", "installed"), 400, "not a valid JSON"},
		{"BodyNotObject", []byte(`["client-a"]`), e.installToken("client-a", "installed"), 400, "not a valid JSON"},
		{"MissingClientKey", lifecycleBody("", "attacker-secret"), e.installToken("client-a", "installed"), 400, "no clientKey"},
		{"MissingSharedSecret", lifecycleBody("client-a", ""), e.installToken("client-a", "installed"), 400, "no sharedSecret"},
		{"MissingBaseURL", lifecycleBody("client-a", "attacker-secret", func(m map[string]any) { delete(m, "baseUrl") }), e.installToken("client-a", "installed"), 400, "no baseUrl"},
		{"OtherAppKey", lifecycleBody("client-a", "attacker-secret", func(m map[string]any) { m["key"] = "com.other.app" }), e.installToken("client-a", "installed"), 400, "not this app's key"},
		{"OversizedBody", lifecycleBody("client-a", "attacker-secret", func(m map[string]any) { m["pad"] = strings.Repeat("x", 70<<10) }), e.installToken("client-a", "installed"), 413, "larger than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.snapshot()
			r := e.lifecycle("installed", tc.body, tc.token)
			e.expectRefused(r, tc.status, before)
			if !strings.Contains(r.body, `"error"`) || !strings.Contains(r.body, tc.want) {
				t.Fatalf("body %s, want an error document mentioning %q", r.body, tc.want)
			}
		})
	}
	if got := e.installation("client-b").SharedSecret; got != "secret-b" {
		t.Fatalf("client-b secret overwritten")
	}
}

func TestInstalledRejectsTokenOutsideHeader(t *testing.T) {
	e := newEnv(t)
	e.install("client-a", "secret-a")
	body := lifecycleBody("client-a", "new-secret")
	tok := e.installToken("client-a", "installed")

	t.Run("QueryOnly", func(t *testing.T) {
		before := e.snapshot()
		req, _ := http.NewRequest(http.MethodPost, e.url("/installed?jwt="+tok), bytes.NewReader(body))
		e.expectRefused(e.do(req), 401, before)
	})
	t.Run("QueryAndHeader", func(t *testing.T) {
		before := e.snapshot()
		req, _ := http.NewRequest(http.MethodPost, e.url("/installed?jwt="+tok), bytes.NewReader(body))
		req.Header.Set("Authorization", "JWT "+tok)
		e.expectRefused(e.do(req), 401, before)
	})
	t.Run("TwoHeaders", func(t *testing.T) {
		before := e.snapshot()
		req, _ := http.NewRequest(http.MethodPost, e.url("/installed"), bytes.NewReader(body))
		req.Header.Add("Authorization", "JWT "+tok)
		req.Header.Add("Authorization", "JWT "+tok)
		e.expectRefused(e.do(req), 401, before)
	})
	t.Run("BearerScheme", func(t *testing.T) {
		before := e.snapshot()
		req, _ := http.NewRequest(http.MethodPost, e.url("/installed"), bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		e.expectRefused(e.do(req), 401, before)
	})
}

func TestInstalledExpiryLeeway(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.Leeway = 20 * time.Second })
	c := e.lifecycleClaims("client-a", "installed")
	tok := signRS256(t, c, kid, installKey())

	// 30 s past exp: beyond the 20 s leeway.
	e.clock.Advance(3*time.Minute + 30*time.Second)
	before := e.snapshot()
	e.expectRefused(e.lifecycle("installed", lifecycleBody("client-a", "s1"), tok), 401, before)

	// 10 s past exp: within it.
	e.clock.Advance(-20 * time.Second)
	if r := e.lifecycle("installed", lifecycleBody("client-a", "s1"), tok); r.status != http.StatusNoContent {
		t.Fatalf("within leeway: %d %s", r.status, r.body)
	}
}

func TestInstalledKeyServerDown(t *testing.T) {
	// A port nothing listens on: connections are refused at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	e := newEnv(t, func(c *server.Config) { c.InstallKeys = mustKeySource(t, "http://"+addr, time.Second) })

	before := e.snapshot()
	r := e.lifecycle("installed", lifecycleBody("client-a", "s1"), e.installToken("client-a", "installed"))
	e.expectRefused(r, http.StatusServiceUnavailable, before)
}

func TestInstalledKeyServerSlow(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	e := newEnv(t, func(c *server.Config) {
		// The key server's own timeout is long; the server's bound on one
		// install must cut the wait short.
		c.InstallKeys = mustKeySource(t, slow.URL, time.Minute)
		c.KeyFetchTimeout = 200 * time.Millisecond
	})

	before := e.snapshot()
	req, _ := http.NewRequest(http.MethodPost, e.url("/installed"), bytes.NewReader(lifecycleBody("client-a", "s1")))
	req.Header.Set("Authorization", "JWT "+e.installToken("client-a", "installed"))
	// The install must be answered well within this deadline, which is far
	// shorter than the key server's own timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("install did not return in bounded time: %v", err)
	}
	resp.Body.Close()
	e.expectRefused(response{status: resp.StatusCode}, http.StatusServiceUnavailable, before)
}

func TestReinstallReplacesSecret(t *testing.T) {
	e := newEnv(t)
	e.install("client-a", "old-secret")
	oldTok := e.tenantToken("client-a", "old-secret", "GET", "/page")
	if r := e.get("/page", oldTok); r.status != 200 {
		t.Fatalf("before reinstall: %d %s", r.status, r.body)
	}
	e.install("client-a", "new-secret")
	if got := e.installation("client-a").SharedSecret; got != "new-secret" {
		t.Fatalf("secret %q not replaced", got)
	}
	if r := e.get("/page", oldTok); r.status != 401 {
		t.Fatalf("old secret's token after reinstall: %d %s", r.status, r.body)
	}
	if r := e.get("/page", e.tenantToken("client-a", "new-secret", "GET", "/page")); r.status != 200 {
		t.Fatalf("new secret's token: %d %s", r.status, r.body)
	}
}

func TestUninstallRefusesTokens(t *testing.T) {
	e := newEnv(t)
	e.install("client-a", "secret-a")
	tok := e.tenantToken("client-a", "secret-a", "GET", "/page")
	if r := e.get("/page", tok); r.status != 200 { // warms the cache
		t.Fatalf("before uninstall: %d %s", r.status, r.body)
	}
	r := e.lifecycle("uninstalled", lifecycleBody("client-a", "secret-a"), e.installToken("client-a", "uninstalled"))
	if r.status != http.StatusNoContent {
		t.Fatalf("uninstall: %d %s", r.status, r.body)
	}
	if st := e.installation("client-a").State; st != tenon.StateUninstalled {
		t.Fatalf("state %s", st)
	}
	calls := e.calls.count()
	if r := e.get("/page", tok); r.status != 401 {
		t.Fatalf("token after uninstall: %d %s", r.status, r.body)
	}
	if e.calls.count() != calls {
		t.Fatal("handler ran for an uninstalled tenant")
	}
	// A later reinstall brings the tenant back.
	e.install("client-a", "secret-a2")
	if r := e.get("/page", e.tenantToken("client-a", "secret-a2", "GET", "/page")); r.status != 200 {
		t.Fatalf("after reinstall: %d %s", r.status, r.body)
	}
}

func TestUninstalledRejections(t *testing.T) {
	e := newEnv(t)
	e.install("client-a", "secret-a")
	e.install("client-b", "secret-b")
	cases := []struct {
		name   string
		body   []byte
		token  string
		status int
	}{
		{"HS256", lifecycleBody("client-a", ""), signHS256(t, e.lifecycleClaims("client-a", "uninstalled"), "secret-a"), 401},
		{"SignedForInstalled", lifecycleBody("client-a", ""), e.installToken("client-a", "installed"), 401},
		{"OtherTenant", lifecycleBody("client-b", ""), e.installToken("client-a", "uninstalled"), 401},
		{"NoToken", lifecycleBody("client-a", ""), "", 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.snapshot()
			e.expectRefused(e.lifecycle("uninstalled", tc.body, tc.token), tc.status, before)
		})
	}
}

func TestUninstallUnknownTenantIsIdempotent(t *testing.T) {
	e := newEnv(t)
	before := e.snapshot()
	r := e.lifecycle("uninstalled", lifecycleBody("client-x", ""), e.installToken("client-x", "uninstalled"))
	if r.status != http.StatusNoContent {
		t.Fatalf("status %d %s", r.status, r.body)
	}
	if e.snapshot() != before {
		t.Fatal("uninstall of an unknown tenant created a record")
	}
}

// stateToken signs an enabled/disabled callback with the tenant secret.
func (e *env) stateToken(clientKey, secret, event string) string {
	return signHS256(e.t, e.lifecycleClaims(clientKey, event), secret)
}

func TestEnableDisable(t *testing.T) {
	e := newEnv(t)
	e.install("client-a", "secret-a")
	tok := e.tenantToken("client-a", "secret-a", "GET", "/page")

	if r := e.lifecycle("disabled", lifecycleBody("client-a", "secret-a"), e.stateToken("client-a", "secret-a", "disabled")); r.status != 204 {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
	if r := e.get("/page", tok); r.status != 403 || !strings.Contains(r.body, "disabled") {
		t.Fatalf("request while disabled: %d %s", r.status, r.body)
	}
	if r := e.lifecycle("enabled", lifecycleBody("client-a", "secret-a"), e.stateToken("client-a", "secret-a", "enabled")); r.status != 204 {
		t.Fatalf("enable: %d %s", r.status, r.body)
	}
	if r := e.get("/page", tok); r.status != 200 {
		t.Fatalf("request after enable: %d %s", r.status, r.body)
	}
}

func TestEnableDisableRejections(t *testing.T) {
	e := newEnv(t)
	e.install("client-a", "secret-a")
	e.install("client-b", "secret-b")
	claims := func(event string, mod func(*connectjwt.Claims)) connectjwt.Claims {
		c := e.lifecycleClaims("client-a", event)
		if mod != nil {
			mod(&c)
		}
		return c
	}
	cases := []struct {
		name  string
		event string
		body  []byte
		token string
	}{
		{"WrongSecret", "disabled", lifecycleBody("client-a", ""), signHS256(t, claims("disabled", nil), "guess")},
		{"OtherTenantsSecret", "disabled", lifecycleBody("client-a", ""), signHS256(t, claims("disabled", nil), "secret-b")},
		{"IssuerNotBody", "disabled", lifecycleBody("client-a", ""), e.stateToken("client-b", "secret-b", "disabled")},
		{"UnknownTenant", "disabled", lifecycleBody("client-x", ""), e.stateToken("client-x", "secret-x", "disabled")},
		{"ContextQSH", "disabled", lifecycleBody("client-a", ""), signHS256(t, claims("disabled", func(c *connectjwt.Claims) { c.QSH = qsh.ContextQSH }), "secret-a")},
		{"MissingQSH", "disabled", lifecycleBody("client-a", ""), signHS256(t, claims("disabled", func(c *connectjwt.Claims) { c.QSH = "" }), "secret-a")},
		{"QSHOfEnabled", "disabled", lifecycleBody("client-a", ""), e.stateToken("client-a", "secret-a", "enabled")},
		{"Expired", "disabled", lifecycleBody("client-a", ""), signHS256(t, claims("disabled", func(c *connectjwt.Claims) { c.ExpiresAt = e.clock.Now().Add(-time.Minute).Unix() }), "secret-a")},
		{"AlgNone", "disabled", lifecycleBody("client-a", ""), unsignedToken(`{"alg":"none"}`, claims("disabled", nil), "c2ln")},
		{"RS256UnknownKey", "disabled", lifecycleBody("client-a", ""), signRS256(t, claims("disabled", nil), kid, otherKey())},
		{"NoToken", "enabled", lifecycleBody("client-a", ""), ""},
	}
	// Disable client-a first with a wrong token, then try to enable a
	// disabled tenant with bad ones.
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.snapshot()
			e.expectRefused(e.lifecycle(tc.event, tc.body, tc.token), 401, before)
		})
	}
}

// disabled and uninstalled may arrive together and run concurrently;
// whatever the order, the tenant must end uninstalled.
func TestDisabledRacingUninstalled(t *testing.T) {
	e := newEnv(t)
	const rounds = 100
	for i := range rounds {
		e.install("client-race", "secret-race")
		disableTok := e.stateToken("client-race", "secret-race", "disabled")
		uninstallTok := e.installToken("client-race", "uninstalled")

		var wg sync.WaitGroup
		statuses := make([]int, 2)
		wg.Go(func() {
			statuses[0] = e.lifecycle("disabled", lifecycleBody("client-race", "secret-race"), disableTok).status
		})
		wg.Go(func() {
			statuses[1] = e.lifecycle("uninstalled", lifecycleBody("client-race", "secret-race"), uninstallTok).status
		})
		wg.Wait()
		if statuses[0] != 204 || statuses[1] != 204 {
			t.Fatalf("round %d: statuses %v", i, statuses)
		}
		if st := e.installation("client-race").State; st != tenon.StateUninstalled {
			t.Fatalf("round %d: ended %s, want uninstalled", i, st)
		}
		// A late enabled does not resurrect it either.
		if r := e.lifecycle("enabled", lifecycleBody("client-race", "secret-race"), e.stateToken("client-race", "secret-race", "enabled")); r.status != 204 {
			t.Fatalf("round %d: late enabled %d", i, r.status)
		}
		if st := e.installation("client-race").State; st != tenon.StateUninstalled {
			t.Fatalf("round %d: late enabled resurrected the tenant: %s", i, st)
		}
		if r := e.get("/page", e.tenantToken("client-race", "secret-race", "GET", "/page")); r.status != 401 {
			t.Fatalf("round %d: request after uninstall: %d", i, r.status)
		}
	}
}

func TestHooksRunAfterCommit(t *testing.T) {
	type seen struct {
		event  string
		stored *tenon.Installation
		in     *tenon.Installation
	}
	var (
		mu      sync.Mutex
		events  []seen
		release = make(chan struct{})
	)
	var e *env
	record := func(event string) func(ctx context.Context, in *tenon.Installation) {
		return func(ctx context.Context, in *tenon.Installation) {
			stored, err := e.store.Installation(ctx, in.ClientKey)
			if err != nil {
				t.Errorf("hook %s: %v", event, err)
				return
			}
			mu.Lock()
			events = append(events, seen{event, stored, in})
			mu.Unlock()
			if event == "installed" {
				<-release // the product must have its answer already
			}
		}
	}
	e = newEnv(t, func(c *server.Config) {
		c.Hooks = server.Hooks{
			Installed:   record("installed"),
			Uninstalled: record("uninstalled"),
			Enabled:     record("enabled"),
			Disabled: func(ctx context.Context, in *tenon.Installation) {
				record("disabled")(ctx, in)
				panic("hook bug")
			},
		}
	})

	// The response arrives while the installed hook is still blocked.
	done := make(chan response, 1)
	go func() {
		done <- e.lifecycle("installed", lifecycleBody("client-a", "secret-a"), e.installToken("client-a", "installed"))
	}()
	select {
	case r := <-done:
		if r.status != 204 {
			t.Fatalf("install: %d %s", r.status, r.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("install response held back by its hook")
	}
	close(release)

	// A panicking hook neither fails nor undoes the change.
	if r := e.lifecycle("disabled", lifecycleBody("client-a", "secret-a"), e.stateToken("client-a", "secret-a", "disabled")); r.status != 204 {
		t.Fatalf("disable with panicking hook: %d %s", r.status, r.body)
	}
	if st := e.installation("client-a").State; st != tenon.StateDisabled {
		t.Fatalf("state after panicking hook: %s", st)
	}
	// The hook runs after the answer was sent: wait for its log line.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(e.logs.String(), "lifecycle hook panicked"); {
		if time.Now().After(deadline) {
			t.Fatal("hook panic not logged")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if r := e.lifecycle("uninstalled", lifecycleBody("client-a", "secret-a"), e.installToken("client-a", "uninstalled")); r.status != 204 {
		t.Fatalf("uninstall: %d", r.status)
	}

	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		n := len(events)
		mu.Unlock()
		if n >= 3 || time.Now().After(deadline) {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := []struct {
		event string
		state tenon.State
	}{{"installed", tenon.StateEnabled}, {"disabled", tenon.StateDisabled}, {"uninstalled", tenon.StateUninstalled}}
	if len(events) != len(want) {
		t.Fatalf("hooks ran %d times: %+v", len(events), events)
	}
	for i, w := range want {
		if events[i].event != w.event || events[i].stored.State != w.state || events[i].in.State != w.state {
			t.Fatalf("hook %d: %s saw stored state %s (arg %s), want %s %s", i, events[i].event,
				events[i].stored.State, events[i].in.State, w.event, w.state)
		}
	}
	if events[0].stored.SharedSecret != "secret-a" {
		t.Fatal("installed hook ran before the secret was committed")
	}
}

func TestNoHookOnIgnoredStateChange(t *testing.T) {
	var disabled int
	var mu sync.Mutex
	e := newEnv(t, func(c *server.Config) {
		c.Hooks.Disabled = func(context.Context, *tenon.Installation) { mu.Lock(); disabled++; mu.Unlock() }
	})
	e.install("client-a", "secret-a")
	if r := e.lifecycle("uninstalled", lifecycleBody("client-a", ""), e.installToken("client-a", "uninstalled")); r.status != 204 {
		t.Fatal(r.status)
	}
	if r := e.lifecycle("disabled", lifecycleBody("client-a", ""), e.stateToken("client-a", "secret-a", "disabled")); r.status != 204 {
		t.Fatal(r.status)
	}
	mu.Lock()
	defer mu.Unlock()
	if disabled != 0 {
		t.Fatal("disabled hook ran for an uninstalled tenant")
	}
}

// A reinstall that moves a tenant to another baseUrl keeps its data and
// is told to the operator: a warning in the log and an audit row.
func TestReinstallWithAnotherBaseURLIsAudited(t *testing.T) {
	e := newEnv(t)
	e.install("client-a", "secret-a")
	moved := "https://renamed.atlassian.net"
	r := e.lifecycle("installed", lifecycleBody("client-a", "secret-a", func(m map[string]any) { m["baseUrl"] = moved }), e.installToken("client-a", "installed"))
	if r.status != http.StatusNoContent {
		t.Fatalf("reinstall with a new baseUrl: %d %s", r.status, r.body)
	}
	if got := e.installation("client-a").BaseURL; got != moved {
		t.Fatalf("baseUrl %q, want %q", got, moved)
	}
	var as tenon.AuditStore = e.store
	rows, err := as.AuditEntries(context.Background(), tenon.AuditFilter{ClientKey: "client-a", Action: tenon.AuditSiteMoved})
	if err != nil || len(rows) != 1 || !strings.Contains(rows[0].Detail, siteURL+" -> "+moved) {
		t.Fatalf("audit rows %+v, %v", rows, err)
	}
	if !strings.Contains(e.logs.String(), "changed the site's base URL") {
		t.Errorf("no warning in the log:\n%s", e.logs.String())
	}
	// The same baseUrl again is no move.
	e.install("client-a", "secret-a")
	e.install("client-a", "secret-b")
	if rows, _ := as.AuditEntries(context.Background(), tenon.AuditFilter{ClientKey: "client-a", Action: tenon.AuditSiteMoved}); len(rows) != 2 {
		t.Fatalf("%d site-moved rows after moving back and reinstalling, want 2 (one move each way)", len(rows))
	}
}
