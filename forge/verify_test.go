package forge_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/forge"
)

// env is a verifier for appID on a key server holding prod, with a manual clock.
type env struct {
	keys  *keyServer
	jwks  *forge.JWKS
	v     *forge.Verifier
	clock *clock
	prod  keyPair
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{clock: newClock(), prod: testKey(t, 0, "prod-key-1")}
	e.keys = newKeyServer(t, e.prod)
	var err error
	e.jwks, err = forge.NewJWKS(e.keys.url(), forge.JWKSOptions{Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.v, err = forge.NewVerifier(forge.VerifierOptions{AppID: appID, Keys: e.jwks, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestVerifyValidToken(t *testing.T) {
	e := newEnv(t)
	c, err := e.v.Verify(context.Background(), sign(t, e.prod, fitClaims()))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	checks := []struct{ name, got, want string }{
		{"jti", c.ID, "d8a496253ec8c18a54631e4c82cbedd5d0ae8570"},
		{"installationId", c.App.InstallationID, installationID},
		{"apiBaseUrl", c.App.APIBaseURL, apiBaseURL},
		{"environment", c.App.Environment.Type, "PRODUCTION"},
		{"module key", c.App.Module.Key, "checklist-panel"},
		{"principal", c.Principal, "655362:312d3308-8954-42b0-aa38-771a10c88656"},
		{"cloudId", c.CloudID(), cloudID},
		{"siteUrl", c.SiteURL(), "https://acme.atlassian.net"},
		{"product", c.Product(), "jira"},
		{"license", c.LicenseActive(), ""},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %q, want %q", ch.name, ch.got, ch.want)
		}
	}
	if !c.ExpiresAt.Equal(testNow.Add(25*time.Second)) || !c.IssuedAt.Equal(testNow) || !c.NotBefore.Equal(testNow) {
		t.Errorf("times: iat %v nbf %v exp %v", c.IssuedAt, c.NotBefore, c.ExpiresAt)
	}
	in := c.Installation()
	if in.InstallationID != installationID || in.CloudID != cloudID || in.Product != "jira" || in.SiteURL != "https://acme.atlassian.net" {
		t.Errorf("Installation() = %+v", in)
	}
}

func TestVerifyClaimsWithoutContext(t *testing.T) {
	// Events and scheduled triggers carry no context: the site comes from
	// app.apiBaseUrl.
	e := newEnv(t)
	claims := fitClaims()
	delete(claims, "context")
	delete(claims, "principal")
	claims["app"].(map[string]any)["license"] = map[string]any{"isActive": true, "type": "commercial"}
	c, err := e.v.Verify(context.Background(), sign(t, e.prod, claims))
	if err != nil {
		t.Fatal(err)
	}
	if c.CloudID() != cloudID || c.SiteURL() != "" || c.Principal != "" || c.LicenseActive() != tenon.LicenseActive {
		t.Errorf("cloudId %q siteUrl %q principal %q license %q", c.CloudID(), c.SiteURL(), c.Principal, c.LicenseActive())
	}
}

// TestVerifyRefuses is the list of attacks and mistakes a FIT check must
// refuse, each with the error it must give.
func TestVerifyRefuses(t *testing.T) {
	e := newEnv(t)
	stranger := testKey(t, 1, "prod-key-1") // same kid, another key
	tests := []struct {
		name  string
		token func() string
		want  error
	}{
		{"wrong iss", func() string {
			c := fitClaims()
			c["iss"] = "forge/something-else"
			return sign(t, e.prod, c)
		}, forge.ErrIssuer},
		{"another app's aud", func() string {
			c := fitClaims()
			c["aud"] = otherAppID
			return sign(t, e.prod, c)
		}, forge.ErrAudience},
		{"no aud", func() string {
			c := fitClaims()
			delete(c, "aud")
			return sign(t, e.prod, c)
		}, forge.ErrMissingClaim},
		{"app.id of another app", func() string {
			c := fitClaims()
			c["app"].(map[string]any)["id"] = otherAppID
			return sign(t, e.prod, c)
		}, forge.ErrAudience},
		{"expired", func() string {
			c := fitClaims()
			c["iat"] = testNow.Add(-time.Minute).Unix()
			c["nbf"] = testNow.Add(-time.Minute).Unix()
			c["exp"] = testNow.Add(-time.Second).Unix()
			return sign(t, e.prod, c)
		}, forge.ErrExpired},
		{"nbf in the future", func() string {
			c := fitClaims()
			c["nbf"] = testNow.Add(10 * time.Second).Unix()
			return sign(t, e.prod, c)
		}, forge.ErrNotYetValid},
		{"iat in the future", func() string {
			c := fitClaims()
			c["iat"] = testNow.Add(10 * time.Second).Unix()
			return sign(t, e.prod, c)
		}, forge.ErrIssuedInFuture},
		{"no exp", func() string {
			c := fitClaims()
			delete(c, "exp")
			return sign(t, e.prod, c)
		}, forge.ErrMissingClaim},
		{"no iat", func() string {
			c := fitClaims()
			delete(c, "iat")
			return sign(t, e.prod, c)
		}, forge.ErrMissingClaim},
		{"no jti", func() string {
			c := fitClaims()
			delete(c, "jti")
			return sign(t, e.prod, c)
		}, forge.ErrMissingClaim},
		{"no installationId", func() string {
			c := fitClaims()
			delete(c["app"].(map[string]any), "installationId")
			return sign(t, e.prod, c)
		}, forge.ErrMissingClaim},
		{"http apiBaseUrl", func() string {
			c := fitClaims()
			c["app"].(map[string]any)["apiBaseUrl"] = "http://api.atlassian.com/ex/jira/" + cloudID
			return sign(t, e.prod, c)
		}, forge.ErrMalformed},
		{"context not an object", func() string {
			c := fitClaims()
			c["context"] = "cloudId"
			return sign(t, e.prod, c)
		}, forge.ErrMalformed},
		{"no kid", func() string {
			return sign(t, keyPair{key: e.prod.key}, fitClaims())
		}, forge.ErrKeyNotFound},
		{"signed by another key under a known kid", func() string {
			return sign(t, stranger, fitClaims())
		}, forge.ErrSignature},
		{"payload changed after signing", func() string {
			tok := sign(t, e.prod, fitClaims())
			parts := strings.Split(tok, ".")
			c := fitClaims()
			c["principal"] = "someone-else"
			other := strings.Split(sign(t, e.prod, c), ".")
			return parts[0] + "." + other[1] + "." + parts[2]
		}, forge.ErrSignature},
		{"alg HS256 keyed with the public key", func() string {
			der, err := x509.MarshalPKIXPublicKey(&e.prod.key.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, fitClaims())
			tok.Header["kid"] = e.prod.kid
			s, err := tok.SignedString(der)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, forge.ErrAlgorithm},
		{"alg none", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodNone, fitClaims())
			tok.Header["kid"] = e.prod.kid
			s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, forge.ErrAlgorithm},
		{"alg RS512", func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS512, fitClaims())
			tok.Header["kid"] = e.prod.kid
			s, err := tok.SignedString(e.prod.key)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, forge.ErrAlgorithm},
		{"not a JWT", func() string { return "Bearer-ish" }, forge.ErrMalformed},
		{"garbage segments", func() string { return "a.b.c" }, forge.ErrMalformed},
		{"huge", func() string { return strings.Repeat("a", 70<<10) + ".b.c" }, forge.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := e.v.Verify(context.Background(), tt.token())
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			if c != nil {
				t.Errorf("claims returned with an error")
			}
		})
	}
}

func TestVerifyLeeway(t *testing.T) {
	e := newEnv(t)
	v, err := forge.NewVerifier(forge.VerifierOptions{AppID: appID, Keys: e.jwks, Now: e.clock.Now, Leeway: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, e.prod, fitClaims())
	e.clock.Advance(30 * time.Second) // 5 s past exp, within the leeway
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Errorf("within leeway: %v", err)
	}
	e.clock.Advance(5 * time.Second) // exactly 10 s past exp: the window is closed
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Errorf("expired exactly the leeway ago: %v", err)
	}
	e.clock.Advance(time.Second)
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, forge.ErrExpired) {
		t.Errorf("past leeway: %v", err)
	}
}

// iat and nbf may be ahead of the clock by the leeway, not a second more.
func TestVerifyLeewayAhead(t *testing.T) {
	e := newEnv(t)
	v, err := forge.NewVerifier(forge.VerifierOptions{AppID: appID, Keys: e.jwks, Now: e.clock.Now, Leeway: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		claim string
		ahead time.Duration
		want  error
	}{
		{"iat", 10 * time.Second, nil},
		{"iat", 11 * time.Second, forge.ErrIssuedInFuture},
		{"nbf", 10 * time.Second, nil},
		{"nbf", 11 * time.Second, forge.ErrNotYetValid},
	} {
		c := fitClaims()
		c[tc.claim] = testNow.Add(tc.ahead).Unix()
		c["exp"] = testNow.Add(tc.ahead + 25*time.Second).Unix()
		_, err := v.Verify(context.Background(), sign(t, e.prod, c))
		if (tc.want == nil && err != nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s %v ahead: %v, want %v", tc.claim, tc.ahead, err, tc.want)
		}
	}
}

// AllowHTTP opens plain http to a product on this machine only.
func TestVerifyHTTPAPIBaseURLOnLoopbackOnly(t *testing.T) {
	e := newEnv(t)
	v, err := forge.NewVerifier(forge.VerifierOptions{AppID: appID, Keys: e.jwks, Now: e.clock.Now, AllowHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	for base, ok := range map[string]bool{
		"http://127.0.0.1:8081/ex/jira/" + cloudID:        true,
		"http://localhost:8081/ex/jira/" + cloudID:        true,
		"http://[::1]:8081/ex/jira/" + cloudID:            true,
		"https://api.atlassian.com/ex/jira/" + cloudID:    true,
		"http://api.atlassian.com/ex/jira/" + cloudID:     false,
		"http://10.0.0.7:8081/ex/jira/" + cloudID:         false,
		"http://app.localhost:8081/ex/jira/" + cloudID:    false,
		"http://127.0.0.1.nip.io:8081/ex/jira/" + cloudID: false,
	} {
		c := fitClaims()
		c["app"].(map[string]any)["apiBaseUrl"] = base
		_, err := v.Verify(context.Background(), sign(t, e.prod, c))
		switch {
		case ok && err != nil:
			t.Errorf("%s refused: %v", base, err)
		case !ok && !errors.Is(err, forge.ErrMalformed):
			t.Errorf("%s: %v, want ErrMalformed", base, err)
		case !ok && !strings.Contains(err.Error(), "loopback"):
			t.Errorf("%s: %q does not say http is for loopback only", base, err)
		}
	}
}

func TestUnknownKidEvenAfterRefresh(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.v.Verify(ctx, sign(t, e.prod, fitClaims())); err != nil {
		t.Fatal(err)
	}
	unknown := testKey(t, 2, "made-up-kid")
	// Right after a fetch an unknown kid is refused without asking again.
	before := e.keys.fetches.Load()
	if _, err := e.v.Verify(ctx, sign(t, unknown, fitClaims())); !errors.Is(err, forge.ErrKeyNotFound) {
		t.Fatalf("unknown kid: %v", err)
	}
	if got := e.keys.fetches.Load() - before; got != 0 {
		t.Fatalf("an unknown kid right after a fetch caused %d fetches, want 0", got)
	}
	// Later, an unknown kid causes one refetch, and is refused if the
	// fresh set does not have it either.
	e.clock.Advance(forge.DefaultMinRefetchInterval)
	if _, err := e.v.Verify(ctx, sign(t, unknown, claimsAt(e.clock.Now()))); !errors.Is(err, forge.ErrKeyNotFound) {
		t.Fatalf("unknown kid after the interval: %v", err)
	}
	if got := e.keys.fetches.Load() - before; got != 1 {
		t.Fatalf("an unknown kid caused %d fetches, want 1 (one refetch)", got)
	}
	// A flood of made-up kids within MinRefetchInterval fetches nothing more.
	for range 20 {
		if _, err := e.v.Verify(ctx, sign(t, unknown, claimsAt(e.clock.Now()))); !errors.Is(err, forge.ErrKeyNotFound) {
			t.Fatalf("unknown kid again: %v", err)
		}
	}
	if got := e.keys.fetches.Load() - before; got != 1 {
		t.Fatalf("repeated unknown kids caused %d fetches, want 1 (rate-limited)", got)
	}
	// Known keys keep working meanwhile.
	if _, err := e.v.Verify(ctx, sign(t, e.prod, claimsAt(e.clock.Now()))); err != nil {
		t.Fatalf("known kid during the rate limit: %v", err)
	}
	// Once the interval passed, a rotated-in key is picked up.
	e.keys.set(e.prod, unknown)
	e.clock.Advance(forge.DefaultMinRefetchInterval)
	if _, err := e.v.Verify(ctx, sign(t, unknown, claimsAt(e.clock.Now()))); err != nil {
		t.Fatalf("rotated-in key after the interval: %v", err)
	}
}

// claimsAt returns valid claims issued at now.
func claimsAt(now time.Time) jwt.MapClaims {
	c := fitClaims()
	c["iat"], c["nbf"], c["exp"] = now.Unix(), now.Unix(), now.Add(25*time.Second).Unix()
	return c
}

func TestJWKSUnreachableFailsClosed(t *testing.T) {
	e := newEnv(t)
	e.keys.srv.Close()
	_, err := e.v.Verify(context.Background(), sign(t, e.prod, fitClaims()))
	if !errors.Is(err, forge.ErrKeyUnavailable) {
		t.Fatalf("Verify with the JWKS unreachable = %v, want ErrKeyUnavailable", err)
	}
}

func TestStagingTokenInProduction(t *testing.T) {
	// Two environments, two pinned key sets. A verifier on production's
	// refuses what staging's keys signed, whether the kid is new to it or
	// happens to be one of its own.
	prod := testKey(t, 0, "prod-key-1")
	stg := testKey(t, 1, "stg-key-1")
	stgSameKid := testKey(t, 1, "prod-key-1")
	prodKeys := newKeyServer(t, prod)
	stgKeys := newKeyServer(t, stg, stgSameKid)
	clock := newClock()
	newV := func(url string) *forge.Verifier {
		j, err := forge.NewJWKS(url, forge.JWKSOptions{Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		v, err := forge.NewVerifier(forge.VerifierOptions{AppID: appID, Keys: j, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	production, staging := newV(prodKeys.url()), newV(stgKeys.url())
	ctx := context.Background()
	stgToken := sign(t, stg, fitClaims())
	if _, err := staging.Verify(ctx, stgToken); err != nil {
		t.Fatalf("staging token in staging: %v", err)
	}
	if _, err := production.Verify(ctx, stgToken); !errors.Is(err, forge.ErrKeyNotFound) {
		t.Errorf("staging token in production = %v, want ErrKeyNotFound", err)
	}
	if _, err := production.Verify(ctx, sign(t, stgSameKid, fitClaims())); !errors.Is(err, forge.ErrSignature) {
		t.Errorf("staging token reusing a production kid = %v, want ErrSignature", err)
	}
	if _, err := production.Verify(ctx, sign(t, prod, fitClaims())); err != nil {
		t.Errorf("production token in production: %v", err)
	}
}

func TestNewVerifierOptions(t *testing.T) {
	e := newEnv(t)
	bad := []forge.VerifierOptions{
		{AppID: "", Keys: e.jwks},
		{AppID: "8db33809-1f32-48bb-8c52-5877dab48107", Keys: e.jwks},
		{AppID: "ari:cloud:ecosystem::installation/8db33809", Keys: e.jwks},
		{AppID: appID},
		{AppID: appID, Keys: e.jwks, Leeway: time.Minute},
		{AppID: appID, Keys: e.jwks, Leeway: -time.Second},
	}
	for i, o := range bad {
		if _, err := forge.NewVerifier(o); err == nil {
			t.Errorf("options %d accepted", i)
		}
	}
	if !forge.ValidAppID(appID) || forge.ValidAppID(otherAppID+"/x") {
		t.Error("ValidAppID")
	}
}

func TestTokenExpiry(t *testing.T) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		token string
		want  int64
		ok    bool
	}{
		{enc(`{"alg":"RS256"}`) + "." + enc(`{"exp":1700000000,"sub":"x"}`) + ".sig", 1700000000, true},
		{enc(`{}`) + "." + enc(`{"sub":"x"}`) + ".sig", 0, false},
		{enc(`{}`) + "." + enc(`{"exp":"soon"}`) + ".sig", 0, false},
		{enc(`{}`) + "." + enc(`{"exp":-5}`) + ".sig", 0, false},
		{"opaque-token", 0, false},
		{"a.!!!.c", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		exp, ok := forge.TokenExpiry(tt.token)
		if ok != tt.ok || (ok && exp.Unix() != tt.want) {
			t.Errorf("TokenExpiry(%q) = %v, %v; want %d, %v", tt.token, exp, ok, tt.want, tt.ok)
		}
	}
}

func TestValidOAuthToken(t *testing.T) {
	tests := map[string]bool{
		"eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjF9.c2ln": true,
		"opaque_token-1~2+3/4=":                  true,
		"":                                       false,
		"has space":                              false,
		"line\nbreak":                            false,
		strings.Repeat("a", forge.MaxOAuthTokenBytes+1): false,
	}
	for tok, want := range tests {
		if got := forge.ValidOAuthToken(tok); got != want {
			t.Errorf("ValidOAuthToken(%.20q) = %v, want %v", tok, got, want)
		}
	}
}
