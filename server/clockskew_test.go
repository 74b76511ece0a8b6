package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tenon-dev/tenon/connectjwt"
	"github.com/tenon-dev/tenon/server"
)

// The configured clock skew applies to exp, iat and nbf of every kind of
// token: the lifecycle, module, browser-API and webhook JWTs of Connect
// and Forge Invocation Tokens. The window is closed: tokens are accepted
// up to exp + skew and from iat/nbf - skew, so one that expired 10 s ago
// passes a 10 s skew, one that expired 11 s or 40 s ago does not (the
// verifiers allow at most 30 s).
func TestClockSkewAppliesToEveryToken(t *testing.T) {
	const skew = 10 * time.Second
	fe := newForgeEnv(t, func(c *server.Config) { c.Leeway = skew })
	fe.install("client-a", "secret-a")
	now := fe.clock.Now()

	// Each kind sends one request whose token's times are moved by shift:
	// its exp to now+shift (late), or its iat (and a FIT's nbf) to
	// now+shift (early).
	type times struct {
		shift time.Duration
		early bool
	}
	connect := func(c *connectjwt.Claims, tt times) {
		if tt.early {
			c.IssuedAt = now.Add(tt.shift).Unix()
			c.ExpiresAt = now.Add(tt.shift + 3*time.Minute).Unix()
			return
		}
		c.ExpiresAt, c.IssuedAt = now.Add(tt.shift).Unix(), now.Add(tt.shift-3*time.Minute).Unix()
	}
	kinds := []struct {
		name string
		send func(times) response
		ok   int
	}{
		{"lifecycle", func(tt times) response {
			c := fe.lifecycleClaims("client-a", "installed")
			connect(&c, tt)
			return fe.lifecycle("installed", lifecycleBody("client-a", "secret-a"), signRS256(t, c, kid, installKey()))
		}, http.StatusNoContent},
		{"module", func(tt times) response {
			return fe.get("/page", fe.tenantToken("client-a", "secret-a", "GET", "/page", func(c *connectjwt.Claims) { connect(c, tt) }))
		}, http.StatusOK},
		{"API", func(tt times) response {
			c := connectjwt.Claims{Issuer: "client-a", Subject: "557058:user-1", QSH: "context-qsh"}
			connect(&c, tt)
			return fe.request("GET", "/api/items", signHS256(t, c, "secret-a"), nil)
		}, http.StatusOK},
		{"webhook", func(tt times) response {
			tok := fe.tenantToken("client-a", "secret-a", "POST", "/hooks/issue?id=10001", func(c *connectjwt.Claims) { connect(c, tt) })
			return fe.request("POST", "/hooks/issue?id=10001", tok, strings.NewReader(`{"webhookEvent":"jira:issue_created"}`))
		}, http.StatusOK},
		{"FIT", func(tt times) response {
			fit := fe.fit(func(c jwt.MapClaims) {
				if tt.early {
					c["iat"], c["nbf"], c["exp"] = now.Add(tt.shift).Unix(), now.Add(tt.shift).Unix(), now.Add(tt.shift+25*time.Second).Unix()
					return
				}
				c["exp"], c["iat"], c["nbf"] = now.Add(tt.shift).Unix(), now.Add(tt.shift-25*time.Second).Unix(), now.Add(tt.shift-25*time.Second).Unix()
			})
			return fe.call(http.MethodPut, "/forge/shared", fit, `{"from":"forge"}`)
		}, http.StatusOK},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			for _, tt := range []times{{-9 * time.Second, false}, {-skew, false}, {9 * time.Second, true}, {skew, true}} {
				if r := k.send(tt); r.status != k.ok {
					t.Errorf("%+v inside the %v skew: %d %s", tt, skew, r.status, r.body)
				}
			}
			for _, tt := range []times{{-40 * time.Second, false}, {-skew - time.Second, false}, {40 * time.Second, true}, {skew + time.Second, true}} {
				before, handled := fe.snapshot(), fe.calls.count()+fe.handled()
				r := k.send(tt)
				fe.expectRefused(r, http.StatusUnauthorized, before)
				if !strings.Contains(r.body, "expired") && !strings.Contains(r.body, "future") && !strings.Contains(r.body, "not valid yet") {
					t.Errorf("%+v: %s does not say the token is out of its time", tt, r.body)
				}
				if fe.calls.count()+fe.handled() != handled {
					t.Errorf("%+v: the handler ran for a refused token", tt)
				}
			}
		})
	}
}
