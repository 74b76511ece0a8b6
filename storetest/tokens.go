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

// testTokens checks tenon.TokenCache, which stores implement as an
// optional capability.
func (s *suite) testTokens(t *testing.T) {
	tests := []struct {
		name string
		fn   func(t *testing.T, st tenon.Store, tc tenon.TokenCache, c *Clock)
	}{
		{"PutGet", testTokenPutGet},
		{"Expiry", testTokenExpiry},
		{"Replace", testTokenReplace},
		{"Delete", testTokenDelete},
		{"Purge", testTokenPurge},
		{"Validation", testTokenValidation},
		{"KeysAreExact", testTokenKeysExact},
		{"Concurrent", testTokenConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st, c := s.store(t)
			tc, ok := st.(tenon.TokenCache)
			if !ok {
				t.Skip("the store does not implement tenon.TokenCache")
			}
			tt.fn(t, st, tc, c)
		})
	}
}

func mustPutToken(t *testing.T, tc tenon.TokenCache, key, token string, exp time.Time) {
	t.Helper()
	if err := tc.PutToken(context.Background(), key, token, exp); err != nil {
		t.Fatalf("PutToken(%q): %v", key, err)
	}
}

// wantToken fails t unless key holds token until exp at now.
func wantToken(t *testing.T, tc tenon.TokenCache, key string, now time.Time, token string, exp time.Time) {
	t.Helper()
	got, gotExp, err := tc.Token(context.Background(), key, now)
	if err != nil {
		t.Fatalf("Token(%q): %v", key, err)
	}
	if got != token {
		// Tokens are secrets: compare, never print.
		t.Errorf("Token(%q) returned another token (len %d, want len %d)", key, len(got), len(token))
	}
	checkTime(t, fmt.Sprintf("Token(%q) expiry", key), gotExp, exp)
}

func wantNoToken(t *testing.T, tc tenon.TokenCache, key string, now time.Time) {
	t.Helper()
	got, _, err := tc.Token(context.Background(), key, now)
	wantCode(t, fmt.Sprintf("Token(%q)", key), err, tenon.ENOTFOUND)
	if got != "" {
		t.Errorf("Token(%q) returned a token with an error", key)
	}
}

func testTokenPutGet(t *testing.T, _ tenon.Store, tc tenon.TokenCache, c *Clock) {
	now := c.Now()
	wantNoToken(t, tc, "oauth:never-stored", now)
	exp := now.Add(15 * time.Minute)
	// A token of realistic size and alphabet (a JWT), and one with
	// bytes a text column must keep as they are.
	jwtLike := "eyJhbGciOiJIUzI1NiJ9." + strings.Repeat("eyJzdWIiOiJ4In0", 100) + ".c2lnbmF0dXJl"
	mustPutToken(t, tc, "oauth:user-1", jwtLike, exp)
	mustPutToken(t, tc, "forge:system/ünïcode key", "tok with spaces, % and '", exp)
	wantToken(t, tc, "oauth:user-1", now, jwtLike, exp)
	wantToken(t, tc, "forge:system/ünïcode key", now, "tok with spaces, % and '", exp)
}

func testTokenExpiry(t *testing.T, _ tenon.Store, tc tenon.TokenCache, c *Clock) {
	now := c.Now()
	exp := now.Add(time.Minute)
	mustPutToken(t, tc, "k", "t", exp)
	wantToken(t, tc, "k", exp.Add(-time.Microsecond), "t", exp)
	wantNoToken(t, tc, "k", exp)
	wantNoToken(t, tc, "k", exp.Add(time.Hour))
	// Expiry is judged by the time given, not the store's clock.
	c.Advance(24 * time.Hour)
	wantToken(t, tc, "k", now, "t", exp)
	// A token stored already expired is never returned.
	mustPutToken(t, tc, "old", "t", now.Add(-time.Second))
	wantNoToken(t, tc, "old", now)
}

func testTokenReplace(t *testing.T, _ tenon.Store, tc tenon.TokenCache, c *Clock) {
	now := c.Now()
	mustPutToken(t, tc, "k", "first", now.Add(time.Minute))
	later := now.Add(time.Hour)
	mustPutToken(t, tc, "k", "second", later)
	wantToken(t, tc, "k", now.Add(30*time.Minute), "second", later)
	// Replacing with an earlier expiry is a replacement too.
	mustPutToken(t, tc, "k", "third", now.Add(time.Second))
	wantToken(t, tc, "k", now, "third", now.Add(time.Second))
	wantNoToken(t, tc, "k", now.Add(time.Minute))
}

func testTokenDelete(t *testing.T, _ tenon.Store, tc tenon.TokenCache, c *Clock) {
	ctx := context.Background()
	now := c.Now()
	mustPutToken(t, tc, "a", "ta", now.Add(time.Hour))
	mustPutToken(t, tc, "b", "tb", now.Add(time.Hour))
	if err := tc.DeleteToken(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	wantNoToken(t, tc, "a", now)
	wantToken(t, tc, "b", now, "tb", now.Add(time.Hour))
	if err := tc.DeleteToken(ctx, "a"); err != nil {
		t.Errorf("deleting a missing token: %v", err)
	}
}

func testTokenPurge(t *testing.T, _ tenon.Store, tc tenon.TokenCache, c *Clock) {
	ctx := context.Background()
	now := c.Now()
	for i := range 5 {
		mustPutToken(t, tc, fmt.Sprintf("k%d", i), "t", now.Add(time.Duration(i)*time.Minute))
	}
	// Expired before now+2m: k0 and k1. k2 expires exactly then and stays.
	n, err := tc.PurgeTokens(ctx, now.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("PurgeTokens removed %d, want 2", n)
	}
	// Purged tokens are gone even for a caller asking about an earlier time.
	wantNoToken(t, tc, "k1", now)
	wantToken(t, tc, "k2", now, "t", now.Add(2*time.Minute))
	if n, err := tc.PurgeTokens(ctx, now.Add(2*time.Minute)); err != nil || n != 0 {
		t.Errorf("a second purge: %d, %v; want 0", n, err)
	}
}

func testTokenValidation(t *testing.T, _ tenon.Store, tc tenon.TokenCache, c *Clock) {
	ctx := context.Background()
	now := c.Now()
	exp := now.Add(time.Hour)
	longest := strings.Repeat("k", 512)
	mustPutToken(t, tc, longest, "t", exp)
	wantToken(t, tc, longest, now, "t", exp)

	for name, key := range map[string]string{
		"empty":    "",
		"too long": longest + "k",
		"not UTF8": "caf\xe9",
		"NUL":      "a\x00b",
	} {
		wantCode(t, "PutToken with "+name+" key", tc.PutToken(ctx, key, "t", exp), tenon.EINVALID)
		_, _, err := tc.Token(ctx, key, now)
		wantCode(t, "Token with "+name+" key", err, tenon.EINVALID)
		wantCode(t, "DeleteToken with "+name+" key", tc.DeleteToken(ctx, key), tenon.EINVALID)
	}
	wantCode(t, "PutToken of an empty token", tc.PutToken(ctx, "k", "", exp), tenon.EINVALID)
	wantCode(t, "PutToken without expiry", tc.PutToken(ctx, "k", "t", time.Time{}), tenon.EINVALID)
	wantCode(t, "PutToken of a huge token", tc.PutToken(ctx, "k", strings.Repeat("t", 64<<10+1), exp), tenon.ETOOLARGE)
	wantNoToken(t, tc, "k", now)
}

// testTokenKeysExact: keys are compared exactly, so one cache entry never
// answers for another (a user's token for a neighbour's key).
func testTokenKeysExact(t *testing.T, _ tenon.Store, tc tenon.TokenCache, c *Clock) {
	now := c.Now()
	exp := now.Add(time.Hour)
	mustPutToken(t, tc, "user:Ab", "token-Ab", exp)
	for _, key := range []string{"user:ab", "user:AB", "user:A", "user:Ab ", "user:A_", "user:A%"} {
		wantNoToken(t, tc, key, now)
	}
	wantToken(t, tc, "user:Ab", now, "token-Ab", exp)
}

func testTokenConcurrent(t *testing.T, _ tenon.Store, tc tenon.TokenCache, c *Clock) {
	ctx := context.Background()
	now := c.Now()
	exp := now.Add(time.Hour)
	const workers, rounds = 8, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				key := fmt.Sprintf("shared-%d", i%3)
				token := fmt.Sprintf("w%d-r%d", w, i)
				if err := tc.PutToken(ctx, key, token, exp); err != nil {
					t.Errorf("PutToken: %v", err)
					return
				}
				got, _, err := tc.Token(ctx, key, now)
				if err != nil {
					t.Errorf("Token: %v", err)
					return
				}
				// Some writer's whole token, never a mix.
				var gw, gr int
				if _, err := fmt.Sscanf(got, "w%d-r%d", &gw, &gr); err != nil || gr%3 != i%3 {
					t.Errorf("Token(%q) = %q, not one that was stored under it", key, got)
				}
			}
		})
	}
	wg.Wait()
}
