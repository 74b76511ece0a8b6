package server_test

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/forge"
	"github.com/tenon-dev/tenon/jobs"
	"github.com/tenon-dev/tenon/server"
)

const (
	forgeAppID     = "ari:cloud:ecosystem::app/8db33809-1f32-48bb-8c52-5877dab48107"
	forgeInst      = "ari:cloud:ecosystem::installation/0a3a7799-53ae-4a5b-9e7e-03338980abb5"
	forgeCloud     = "d0d52620-3203-4cfa-8db5-f2587155f0dd"
	forgeKid       = "forge-prod-1"
	forgeUser      = "655362:312d3308-8954-42b0-aa38-771a10c88656"
	forgeSecretA   = "forge-secret-a-0123456789abcdef0123456789abcdef"
	forgeAPIBase   = "https://api.atlassian.com/ex/jira/" + forgeCloud
	forgeEventPath = "/forge/events/issue"
)

// jwksServer serves installKey() as the Forge JWKS under forgeKid.
func jwksServer(t testing.TB) *httptest.Server {
	pub := &installKey().PublicKey
	doc, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "RSA", "kid": forgeKid, "use": "sig", "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// forgeEnv is an env with Forge configured and routes that show what the
// handlers saw.
type forgeEnv struct {
	*env
	jwks   *httptest.Server
	mu     sync.Mutex
	seen   []*tenon.Principal
	events chan forgeDelivery
}

type forgeDelivery struct {
	p  *tenon.Principal
	ev *server.ForgeEvent
}

func newForgeEnv(t testing.TB, opts ...envOption) *forgeEnv {
	t.Helper()
	fe := &forgeEnv{jwks: jwksServer(t), events: make(chan forgeDelivery, 50)}
	opts = append([]envOption{func(c *server.Config) {
		keys, err := forge.NewJWKS(fe.jwks.URL, forge.JWKSOptions{Now: c.Now})
		if err != nil {
			t.Fatal(err)
		}
		c.ForgeAppID = forgeAppID
		c.ForgeKeys = keys
		c.Jobs = jobs.Options{PollInterval: time.Hour, StatsInterval: time.Hour, Rand: func() float64 { return 0 }}
	}}, opts...)
	fe.env = newEnv(t, opts...)
	// One handler for a Connect API route and a Forge route: it writes
	// and reads the tenant's data.
	shared := func(w http.ResponseWriter, r *http.Request) error {
		p := tenon.PrincipalFrom(r.Context())
		fe.mu.Lock()
		fe.seen = append(fe.seen, p)
		fe.mu.Unlock()
		if r.Method == http.MethodPut {
			var v any
			if err := json.NewDecoder(r.Body).Decode(&v); err != nil {
				return tenon.WrapError(tenon.EINVALID, "bad body", err)
			}
			if err := p.Data().Put(r.Context(), "shared", v); err != nil {
				return err
			}
		}
		raw, err := p.Data().GetRaw(r.Context(), "shared")
		if err != nil {
			return err
		}
		_, err = w.Write(raw)
		return err
	}
	fe.srv.API("/api/shared", shared)
	fe.srv.ForgeRemote("/forge/shared", shared)
	fe.srv.ForgeRemote("GET /forge/licensed", shared, server.RequireLicense())
	handler := func(ctx context.Context, p *tenon.Principal, ev *server.ForgeEvent) error {
		fe.events <- forgeDelivery{p: p, ev: ev}
		return nil
	}
	fe.srv.ForgeEvent(forgeEventPath, handler)
	fe.srv.ForgeTrigger("/forge/triggers/hourly", handler)
	return fe
}

func (fe *forgeEnv) lastPrincipal() *tenon.Principal {
	fe.mu.Lock()
	defer fe.mu.Unlock()
	if len(fe.seen) == 0 {
		return nil
	}
	return fe.seen[len(fe.seen)-1]
}

func (fe *forgeEnv) handled() int {
	fe.mu.Lock()
	defer fe.mu.Unlock()
	return len(fe.seen)
}

// fitClaims are valid claims for a UI invocation at the env's time.
func (fe *forgeEnv) fitClaims() jwt.MapClaims {
	now := fe.clock.Now()
	return jwt.MapClaims{
		"iss": "forge/invocation-token",
		"aud": forgeAppID,
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(25 * time.Second).Unix(),
		"jti": "jti-" + now.Format("150405.000000000"),
		"app": map[string]any{
			"id":             forgeAppID,
			"appVersion":     "2.0.0",
			"installationId": forgeInst,
			"apiBaseUrl":     forgeAPIBase,
			"environment":    map[string]any{"type": "PRODUCTION", "id": "ari:cloud:ecosystem::environment/prod"},
			"module":         map[string]any{"type": "jira:issuePanel", "key": "checklist-panel"},
		},
		"context": map[string]any{
			"cloudId": forgeCloud, "siteUrl": siteURL, "moduleKey": "checklist-panel",
			"extension": map[string]any{"type": "jira:issuePanel", "issue": map[string]any{"key": "DEMO-1"}},
		},
		"principal": forgeUser,
	}
}

func signFIT(t testing.TB, claims jwt.MapClaims, kidValue string, key *rsa.PrivateKey, method jwt.SigningMethod) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["kid"] = kidValue
	var k any = key
	switch method {
	case jwt.SigningMethodHS256:
		k = []byte("guessable")
	case jwt.SigningMethodNone:
		k = jwt.UnsafeAllowNoneSignatureType
	}
	s, err := tok.SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (fe *forgeEnv) fit(mods ...func(jwt.MapClaims)) string {
	c := fe.fitClaims()
	for _, m := range mods {
		m(c)
	}
	return signFIT(fe.t, c, forgeKid, installKey(), jwt.SigningMethodRS256)
}

// oauthToken is a Forge OAuth token (opaque to the app, but a JWT with exp).
func oauthToken(sub string, exp time.Time) string {
	enc := base64.RawURLEncoding
	payload, _ := json.Marshal(map[string]any{"sub": sub, "exp": exp.Unix()})
	return enc.EncodeToString([]byte(`{"alg":"RS256"}`)) + "." + enc.EncodeToString(payload) + ".c2lnbmF0dXJl"
}

// call sends method path with the FIT and extra header pairs.
func (fe *forgeEnv) call(method, path, fit string, body string, header ...string) response {
	fe.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, fe.url(path), rd)
	if err != nil {
		fe.t.Fatal(err)
	}
	if fit != "" {
		req.Header.Set("Authorization", "Bearer "+fit)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	return fe.do(req)
}

func withCloud(cloudID string) func(map[string]any) {
	return func(m map[string]any) { m["cloudId"] = cloudID }
}

func TestForgeAndConnectShareTenantData(t *testing.T) {
	fe := newForgeEnv(t)
	r := fe.lifecycle("installed", lifecycleBody("client-a", forgeSecretA, withCloud(forgeCloud)), fe.installToken("client-a", "installed"))
	if r.status != http.StatusNoContent {
		t.Fatalf("install: %d %s", r.status, r.body)
	}
	// Written through Connect...
	r = fe.request(http.MethodPut, "/api/shared", fe.contextToken("client-a", forgeSecretA, ""), strings.NewReader(`{"from":"connect"}`))
	if r.status != http.StatusOK {
		t.Fatalf("Connect write: %d %s", r.status, r.body)
	}
	// ...read through Forge.
	system := oauthToken("app", fe.clock.Now().Add(2*time.Hour))
	user := oauthToken(forgeUser, fe.clock.Now().Add(time.Hour))
	r = fe.call(http.MethodGet, "/forge/shared", fe.fit(), "", forge.SystemTokenHeader, system, forge.UserTokenHeader, user)
	if r.status != http.StatusOK || r.body != `{"from":"connect"}` {
		t.Fatalf("Forge read: %d %s", r.status, r.body)
	}
	p := fe.lastPrincipal()
	switch {
	case p.ClientKey() != "client-a" || p.Kind != tenon.TokenForge || p.AccountID != forgeUser:
		t.Errorf("principal: tenant %q kind %q account %q", p.ClientKey(), p.Kind, p.AccountID)
	case p.Forge == nil || !p.Forge.Linked || p.Forge.InstallationID != forgeInst || p.Forge.CloudID != forgeCloud:
		t.Errorf("forge context: %+v", p.Forge)
	case p.Forge.SystemToken() != system || p.Forge.UserToken() != user:
		t.Error("the call's tokens are not on the principal")
	case p.Forge.ModuleKey != "checklist-panel" || p.Forge.APIBaseURL != forgeAPIBase || p.Forge.Environment.Type != "PRODUCTION":
		t.Errorf("forge context: %+v", p.Forge)
	case !strings.Contains(string(p.Context), `"issue"`):
		t.Errorf("context %s", p.Context)
	case p.Installation.SharedSecret != forgeSecretA:
		t.Error("a linked site's principal does not carry its Connect installation")
	}
	if strings.Contains(p.Forge.String(), system) || strings.Contains(fe.logs.String(), system) || strings.Contains(fe.logs.String(), user) {
		t.Error("a Forge token reached a log or the context's string form")
	}
	// Written through Forge, read through Connect.
	r = fe.call(http.MethodPut, "/forge/shared", fe.fit(), `{"from":"forge"}`)
	if r.status != http.StatusOK {
		t.Fatalf("Forge write: %d %s", r.status, r.body)
	}
	r = fe.request(http.MethodGet, "/api/shared", fe.contextToken("client-a", forgeSecretA, ""), nil)
	if r.status != http.StatusOK || r.body != `{"from":"forge"}` {
		t.Errorf("Connect read: %d %s", r.status, r.body)
	}
	// The installation is recorded, linked, and its tokens cached by exp.
	rec, err := fe.store.ForgeInstallation(context.Background(), forgeInst)
	if err != nil || rec.ClientKey != "client-a" || !rec.FirstSeen.Equal(fe.clock.Now()) {
		t.Fatalf("recorded installation %+v, %v", rec, err)
	}
	tok, exp, err := fe.store.Token(context.Background(), tenon.ForgeSystemTokenKey(forgeInst), fe.clock.Now())
	if err != nil || tok != system || !exp.Equal(fe.clock.Now().Add(2*time.Hour).Truncate(time.Second)) {
		t.Errorf("cached system token: %v %v", exp, err)
	}
	if tok, _, err := fe.store.Token(context.Background(), tenon.ForgeUserTokenKey(forgeInst, forgeUser), fe.clock.Now()); err != nil || tok != user {
		t.Errorf("cached user token: %v", err)
	}
}

func TestForgeOnlySiteLinksWhenConnectInstalls(t *testing.T) {
	fe := newForgeEnv(t)
	r := fe.call(http.MethodPut, "/forge/shared", fe.fit(), `{"from":"forge only"}`)
	if r.status != http.StatusOK {
		t.Fatalf("Forge write: %d %s", r.status, r.body)
	}
	p := fe.lastPrincipal()
	if want := tenon.ForgeTenantKey(forgeCloud, forgeInst); p.ClientKey() != want || p.Forge.Linked {
		t.Fatalf("Forge-only tenant key %q, want %q", p.ClientKey(), want)
	}
	if p.Installation.SharedSecret != "" || p.Installation.BaseURL != siteURL {
		t.Errorf("Forge-only installation %+v", p.Installation.Redacted())
	}
	// A Forge-only tenant key is no Connect tenant: Connect tokens naming
	// it are refused.
	r = fe.request(http.MethodGet, "/api/shared", fe.contextToken(p.ClientKey(), "any-secret-at-all", ""), nil)
	if r.status != http.StatusUnauthorized {
		t.Errorf("Connect token for a Forge tenant key: %d", r.status)
	}
	// The Connect app installs on the same site: the data follows.
	r = fe.lifecycle("installed", lifecycleBody("client-a", forgeSecretA, withCloud(forgeCloud)), fe.installToken("client-a", "installed"))
	if r.status != http.StatusNoContent {
		t.Fatalf("install: %d %s", r.status, r.body)
	}
	r = fe.request(http.MethodGet, "/api/shared", fe.contextToken("client-a", forgeSecretA, ""), nil)
	if r.status != http.StatusOK || r.body != `{"from":"forge only"}` {
		t.Errorf("Connect read after linking: %d %s", r.status, r.body)
	}
	r = fe.call(http.MethodGet, "/forge/shared", fe.fit(), "")
	if r.status != http.StatusOK || fe.lastPrincipal().ClientKey() != "client-a" {
		t.Errorf("Forge after linking: %d, tenant %q", r.status, fe.lastPrincipal().ClientKey())
	}
}

func TestForgeRefusals(t *testing.T) {
	fe := newForgeEnv(t)
	fe.install("client-a", forgeSecretA)
	tests := []struct {
		name   string
		send   func() response
		status int
	}{
		{"no token", func() response { return fe.call(http.MethodGet, "/forge/shared", "", "") }, 401},
		{"Connect JWT scheme", func() response {
			return fe.request(http.MethodGet, "/forge/shared", fe.tenantToken("client-a", forgeSecretA, "GET", "/forge/shared"), nil)
		}, 401},
		{"two bearer tokens", func() response {
			return fe.call(http.MethodGet, "/forge/shared", fe.fit(), "", "Authorization", "Bearer "+fe.fit())
		}, 401},
		{"jwt query parameter besides", func() response {
			return fe.call(http.MethodGet, "/forge/shared?jwt=x", fe.fit(), "")
		}, 401},
		{"wrong iss", func() response {
			return fe.call(http.MethodGet, "/forge/shared", fe.fit(func(c jwt.MapClaims) { c["iss"] = "someone" }), "")
		}, 401},
		{"another app's aud", func() response {
			return fe.call(http.MethodGet, "/forge/shared", fe.fit(func(c jwt.MapClaims) {
				c["aud"] = "ari:cloud:ecosystem::app/00000000-0000-0000-0000-000000000000"
			}), "")
		}, 401},
		{"expired", func() response {
			return fe.call(http.MethodGet, "/forge/shared", fe.fit(func(c jwt.MapClaims) {
				c["exp"] = fe.clock.Now().Add(-time.Second).Unix()
			}), "")
		}, 401},
		{"nbf in the future", func() response {
			return fe.call(http.MethodGet, "/forge/shared", fe.fit(func(c jwt.MapClaims) {
				c["nbf"] = fe.clock.Now().Add(20 * time.Second).Unix()
			}), "")
		}, 401},
		{"no jti", func() response {
			return fe.call(http.MethodGet, "/forge/shared", fe.fit(func(c jwt.MapClaims) { delete(c, "jti") }), "")
		}, 401},
		{"unknown kid", func() response {
			return fe.call(http.MethodGet, "/forge/shared", signFIT(t, fe.fitClaims(), "not-a-forge-kid", installKey(), jwt.SigningMethodRS256), "")
		}, 401},
		{"staging key under a production kid", func() response {
			return fe.call(http.MethodGet, "/forge/shared", signFIT(t, fe.fitClaims(), forgeKid, otherKey(), jwt.SigningMethodRS256), "")
		}, 401},
		{"alg HS256", func() response {
			return fe.call(http.MethodGet, "/forge/shared", signFIT(t, fe.fitClaims(), forgeKid, nil, jwt.SigningMethodHS256), "")
		}, 401},
		{"alg none", func() response {
			return fe.call(http.MethodGet, "/forge/shared", signFIT(t, fe.fitClaims(), forgeKid, nil, jwt.SigningMethodNone), "")
		}, 401},
		{"event route with a bad token", func() response {
			return fe.call(http.MethodPost, forgeEventPath, fe.fit(func(c jwt.MapClaims) { c["iss"] = "x" }), `{}`)
		}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := fe.handled()
			r := tt.send()
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if fe.handled() != before {
				t.Error("the handler ran")
			}
			if strings.Contains(r.body, "forge:") || !strings.Contains(r.body, `"error"`) {
				t.Errorf("body %s", r.body)
			}
		})
	}
	if _, err := fe.store.ForgeInstallation(context.Background(), forgeInst); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("a refused call recorded the installation: %v", err)
	}
	if list, _ := fe.store.Jobs(context.Background(), tenon.JobFilter{}); len(list) != 0 {
		t.Errorf("a refused event was queued: %+v", list)
	}
}

func TestForgeJWKSUnreachableIs503(t *testing.T) {
	fe := newForgeEnv(t)
	fe.jwks.Close()
	r := fe.call(http.MethodGet, "/forge/shared", fe.fit(), "")
	if r.status != http.StatusServiceUnavailable || fe.handled() != 0 {
		t.Fatalf("status %d, handled %d: %s", r.status, fe.handled(), r.body)
	}
}

func TestForgeRequireLicense(t *testing.T) {
	fe := newForgeEnv(t)
	if r := fe.call(http.MethodGet, "/forge/licensed", fe.fit(), ""); r.status != http.StatusForbidden {
		t.Errorf("no license: %d", r.status)
	}
	inactive := fe.fit(func(c jwt.MapClaims) {
		c["app"].(map[string]any)["license"] = map[string]any{"isActive": false}
	})
	if r := fe.call(http.MethodGet, "/forge/licensed", inactive, ""); r.status != http.StatusForbidden {
		t.Errorf("inactive license: %d", r.status)
	}
	active := fe.fit(func(c jwt.MapClaims) {
		c["app"].(map[string]any)["license"] = map[string]any{"isActive": true}
	})
	// The route reads a value nobody wrote: 404 shows the handler ran.
	if r := fe.call(http.MethodGet, "/forge/licensed", active, ""); r.status != http.StatusNotFound || fe.handled() != 1 {
		t.Errorf("active license: %d, handled %d", r.status, fe.handled())
	}
}

func TestForgeTokensCachedByExp(t *testing.T) {
	fe := newForgeEnv(t)
	ctx := context.Background()
	now := fe.clock.Now()
	first := oauthToken("app", now.Add(time.Hour))
	if r := fe.call(http.MethodGet, "/forge/shared", fe.fit(), "", forge.SystemTokenHeader, first); r.status != http.StatusNotFound {
		t.Fatalf("status %d", r.status)
	}
	// A fresher token while the cached one has plenty of time left is
	// not written: the cache is not rewritten on every call.
	second := oauthToken("app", now.Add(2*time.Hour))
	fe.call(http.MethodGet, "/forge/shared", fe.fit(), "", forge.SystemTokenHeader, second)
	if tok, _, _ := fe.store.Token(ctx, tenon.ForgeSystemTokenKey(forgeInst), now); tok != first {
		t.Error("the cached token was rewritten long before it expired")
	}
	// Close to expiry, the next call's token replaces it.
	fe.clock.Advance(50 * time.Minute)
	third := oauthToken("app", fe.clock.Now().Add(2*time.Hour))
	fe.call(http.MethodGet, "/forge/shared", fe.fit(), "", forge.SystemTokenHeader, third)
	if tok, _, _ := fe.store.Token(ctx, tenon.ForgeSystemTokenKey(forgeInst), fe.clock.Now()); tok != third {
		t.Error("the token was not replaced close to its expiry")
	}
	// Values that are not tokens are neither cached nor passed on.
	fe.clock.Advance(time.Hour)
	fe.call(http.MethodGet, "/forge/shared", fe.fit(), "", forge.SystemTokenHeader, "not a token; evil=1")
	if p := fe.lastPrincipal(); p.Forge.SystemToken() != "" {
		t.Error("a malformed token header reached the principal")
	}
	expired := oauthToken("app", fe.clock.Now().Add(-time.Minute))
	fe.call(http.MethodGet, "/forge/shared", fe.fit(), "", forge.UserTokenHeader, expired)
	if _, _, err := fe.store.Token(ctx, tenon.ForgeUserTokenKey(forgeInst, forgeUser), fe.clock.Now().Add(-time.Hour)); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("an expired token was cached: %v", err)
	}
}

func (fe *forgeEnv) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fe.srv.Run(ctx) }()
	fe.t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			fe.t.Errorf("Run did not return")
		}
	})
}

func (fe *forgeEnv) nextEvent() forgeDelivery {
	fe.t.Helper()
	select {
	case d := <-fe.events:
		return d
	case <-time.After(15 * time.Second):
		fe.t.Fatal("no Forge event reached the handler")
		return forgeDelivery{}
	}
}

// eventFIT is the token of an event delivery: no context, no principal.
func (fe *forgeEnv) eventFIT(jti string) string {
	return fe.fit(func(c jwt.MapClaims) {
		delete(c, "context")
		delete(c, "principal")
		c["jti"] = jti
		c["app"].(map[string]any)["module"] = map[string]any{"type": "core:endpoint", "key": "issue-events"}
	})
}

// installWithCloud installs the Connect tenant client-a on the Forge site.
func (fe *forgeEnv) installWithCloud() {
	fe.t.Helper()
	r := fe.lifecycle("installed", lifecycleBody("client-a", forgeSecretA, withCloud(forgeCloud)), fe.installToken("client-a", "installed"))
	if r.status != http.StatusNoContent {
		fe.t.Fatalf("install: %d %s", r.status, r.body)
	}
}

func TestForgeEventQueuedDeduplicatedAndProcessed(t *testing.T) {
	fe := newForgeEnv(t)
	fe.installWithCloud()
	ctx := context.Background()
	system := oauthToken("app", fe.clock.Now().Add(2*time.Hour))
	body := `{"eventType":"avi:jira:deleted:issue","issue":{"key":"DEMO-1","id":"10000"},"atlassianId":"` + forgeUser + `"}`
	r := fe.call(http.MethodPost, forgeEventPath, fe.eventFIT("jti-1"), body, forge.SystemTokenHeader, system)
	if r.status != http.StatusAccepted || !strings.Contains(r.body, "queued") {
		t.Fatalf("event: %d %s", r.status, r.body)
	}
	// Forge delivers it again with a new token and a retryContext, keys in
	// another order: acknowledged, not stored twice.
	again := `{"issue":{"id":"10000","key":"DEMO-1"},"atlassianId":"` + forgeUser + `","eventType":"avi:jira:deleted:issue","retryContext":{"retryCount":1,"retryReason":"TIMEOUT_ERROR"}}`
	r = fe.call(http.MethodPost, forgeEventPath, fe.eventFIT("jti-2"), again)
	if r.status != http.StatusAccepted || !strings.Contains(r.body, "duplicate") {
		t.Fatalf("redelivery: %d %s", r.status, r.body)
	}
	other := `{"eventType":"avi:jira:deleted:issue","issue":{"key":"DEMO-2","id":"10001"}}`
	fe.call(http.MethodPost, forgeEventPath, fe.eventFIT("jti-3"), other)
	list, err := fe.store.Jobs(ctx, tenon.JobFilter{Queue: server.ForgeQueue(forgeEventPath)})
	if err != nil || len(list) != 2 || list[0].ClientKey != "client-a" {
		t.Fatalf("stored %d jobs (%v), first of %q; want 2 of client-a", len(list), err, list[0].ClientKey)
	}
	if strings.Contains(string(list[0].Payload), system) {
		t.Error("a token was stored in the job")
	}
	// Not a JSON object: refused, nothing stored.
	if r := fe.call(http.MethodPost, forgeEventPath, fe.eventFIT("jti-4"), `[1,2]`); r.status != http.StatusBadRequest {
		t.Errorf("array body: %d", r.status)
	}
	if r := fe.call(http.MethodGet, forgeEventPath, fe.eventFIT("jti-5"), ""); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET on an event route: %d", r.status)
	}

	fe.run()
	got := map[string]forgeDelivery{}
	for range 2 {
		d := fe.nextEvent()
		var b struct {
			Issue struct{ Key string } `json:"issue"`
		}
		_ = json.Unmarshal(d.ev.Body, &b)
		got[b.Issue.Key] = d
	}
	d, ok := got["DEMO-1"]
	if !ok {
		t.Fatalf("events handled: %v", got)
	}
	if d.ev.Kind != "event" || d.ev.Type != "avi:jira:deleted:issue" || d.ev.Attempt != 1 || d.ev.ModuleKey != "issue-events" {
		t.Errorf("event %+v", d.ev)
	}
	p := d.p
	if p.ClientKey() != "client-a" || p.Kind != tenon.TokenForge || p.Forge == nil || p.Forge.SystemToken() != system {
		t.Errorf("job principal: tenant %q kind %q forge %+v", p.ClientKey(), p.Kind, p.Forge)
	}
}

func TestForgeTriggerDeduplicatesByTokenID(t *testing.T) {
	fe := newForgeEnv(t)
	for _, jti := range []string{"t-1", "t-1", "t-2"} {
		r := fe.call(http.MethodPost, "/forge/triggers/hourly", fe.eventFIT(jti), `{"context":{"cloudId":"`+forgeCloud+`"}}`)
		if r.status != http.StatusAccepted {
			t.Fatalf("trigger: %d %s", r.status, r.body)
		}
	}
	list, err := fe.store.Jobs(context.Background(), tenon.JobFilter{Queue: server.ForgeQueue("/forge/triggers/hourly")})
	if err != nil || len(list) != 2 {
		t.Fatalf("stored triggers: %d, %v; want 2", len(list), err)
	}
	fe.run()
	d := fe.nextEvent()
	if d.ev.Kind != "trigger" || d.ev.Type != "" || !strings.HasPrefix(d.ev.ID, "jti:") {
		t.Errorf("trigger %+v", d.ev)
	}
	// A Forge-only site: the trigger's principal has the Forge tenant key.
	if d.p.ClientKey() != tenon.ForgeTenantKey(forgeCloud, forgeInst) {
		t.Errorf("tenant %q", d.p.ClientKey())
	}
}

func TestForgePrincipalForBackgroundWork(t *testing.T) {
	fe := newForgeEnv(t)
	ctx := context.Background()
	if _, err := fe.srv.ForgePrincipal(ctx, forgeInst, ""); tenon.ErrorCode(err) != tenon.ENOTFOUND {
		t.Errorf("unknown installation: %v", err)
	}
	user := oauthToken(forgeUser, fe.clock.Now().Add(time.Hour))
	fe.call(http.MethodGet, "/forge/shared", fe.fit(), "", forge.UserTokenHeader, user)
	p, err := fe.srv.ForgePrincipal(ctx, forgeInst, forgeUser)
	if err != nil {
		t.Fatal(err)
	}
	if p.Forge.UserToken() != user || p.Forge.SystemToken() != "" || p.AccountID != forgeUser {
		t.Errorf("background principal: %+v", p.Forge)
	}
	// Once the token expired, background work has none.
	fe.clock.Advance(2 * time.Hour)
	p, _ = fe.srv.ForgePrincipal(ctx, forgeInst, forgeUser)
	if p.Forge.UserToken() != "" {
		t.Error("an expired token was handed out")
	}
}

func TestForgeConfig(t *testing.T) {
	keys, err := forge.NewJWKS(forge.ProductionJWKSURL, forge.JWKSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]envOption{
		"malformed app id": func(c *server.Config) { c.ForgeAppID, c.ForgeKeys = "my-app", keys },
		"no keys":          func(c *server.Config) { c.ForgeAppID = forgeAppID },
		"keys without id":  func(c *server.Config) { c.ForgeKeys = keys },
	}
	for name, mod := range bad {
		cfg := server.Config{
			Descriptor: []byte(testDescriptor), BaseURL: appBaseURL, AllowedHosts: []string{"*.atlassian.net"},
			InstallKeys: mustKeySource(t, "https://keys.example.test", time.Second),
		}
		cfg.Store = newEnv(t).store
		mod(&cfg)
		if _, err := server.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Without an app id, Forge routes are not mounted.
	e := newEnv(t)
	e.srv.ForgeRemote("/forge/x", func(w http.ResponseWriter, r *http.Request) error { return nil })
	if e.srv.ForgeEnabled() {
		t.Error("ForgeEnabled without an app id")
	}
	if r := e.request(http.MethodGet, "/forge/x", "", nil); r.status != http.StatusNotFound {
		t.Errorf("unmounted Forge route: %d", r.status)
	}
	if d := server.Production.Defaults(); d.ForgeJWKSURL != forge.ProductionJWKSURL {
		t.Errorf("production JWKS %q", d.ForgeJWKSURL)
	}
	if d := server.Staging.Defaults(); d.ForgeJWKSURL != forge.StagingJWKSURL {
		t.Errorf("staging JWKS %q", d.ForgeJWKSURL)
	}
	if d := server.Development.Defaults(); d.ForgeJWKSURL != "" {
		t.Errorf("development JWKS %q", d.ForgeJWKSURL)
	}
}
