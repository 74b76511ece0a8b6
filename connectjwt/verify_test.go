package connectjwt_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/connectjwt"
)

// payload returns claims JSON valid at now, with fields replaced or
// removed (a nil value removes the claim).
func payload(t testing.TB, changes map[string]any) string {
	t.Helper()
	m := map[string]any{
		"iss": "jira:1", "sub": "acc", "qsh": "abc",
		"iat": now.Unix() - 10, "exp": now.Unix() + 170,
	}
	for k, v := range changes {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestVerifyHS256(t *testing.T) {
	sec := func(d time.Duration) int64 { return now.Add(d).Unix() }
	hs := func(changes map[string]any) string { return hsToken(hsHeader, payload(t, changes), secret) }
	withAlg := func(alg string) string {
		return hsToken(`{"alg":"`+alg+`","typ":"JWT"}`, payload(t, nil), secret)
	}
	valid := hs(nil)
	validParts := strings.Split(valid, ".")
	other := strings.Split(hs(map[string]any{"sub": "someone-else"}), ".")

	tests := []struct {
		name    string
		token   string
		secret  []byte
		verify  *connectjwt.Verifier // nil: now, no leeway
		wantErr error
	}{
		{name: "valid", token: valid},
		{name: "alg none", token: withAlg("none"), wantErr: connectjwt.ErrAlgorithm},
		{name: "alg None", token: withAlg("None"), wantErr: connectjwt.ErrAlgorithm},
		{name: "alg NONE", token: withAlg("NONE"), wantErr: connectjwt.ErrAlgorithm},
		{name: "alg hs256", token: withAlg("hs256"), wantErr: connectjwt.ErrAlgorithm},
		{name: "alg HS256 with space", token: withAlg("HS256 "), wantErr: connectjwt.ErrAlgorithm},
		{name: "alg HS384", token: withAlg("HS384"), wantErr: connectjwt.ErrAlgorithm},
		{name: "alg HS512", token: withAlg("HS512"), wantErr: connectjwt.ErrAlgorithm},
		{name: "alg RS256", token: withAlg("RS256"), wantErr: connectjwt.ErrAlgorithm},
		{name: "alg empty", token: withAlg(""), wantErr: connectjwt.ErrMalformed},
		{name: "wrong secret", token: valid, secret: []byte("another secret"), wantErr: connectjwt.ErrSignature},
		{name: "empty secret", token: hsToken(hsHeader, payload(t, nil), nil), secret: []byte{}, wantErr: connectjwt.ErrSignature},
		{name: "payload swapped", token: validParts[0] + "." + other[1] + "." + validParts[2], wantErr: connectjwt.ErrSignature},
		{name: "signature of another token", token: validParts[0] + "." + validParts[1] + "." + other[2], wantErr: connectjwt.ErrSignature},
		{name: "signature truncated to 31 bytes", token: validParts[0] + "." + validParts[1] + "." + truncSig(t, validParts[2]), wantErr: connectjwt.ErrSignature},
		{name: "bad signature and expired: signature first", token: validParts[0] + "." + b64(payload(t, map[string]any{"exp": 1})) + "." + validParts[2], wantErr: connectjwt.ErrSignature},
		{name: "missing exp", token: hs(map[string]any{"exp": nil}), wantErr: connectjwt.ErrMissingExpiry},
		{name: "exp null", token: hsToken(hsHeader, `{"iss":"a","exp":null}`, secret), wantErr: connectjwt.ErrMissingExpiry},
		{name: "exp 0 is present and long past", token: hs(map[string]any{"exp": 0}), wantErr: connectjwt.ErrExpired},
		{name: "exp now, no leeway", token: hs(map[string]any{"exp": now.Unix()}), wantErr: connectjwt.ErrExpired},
		{name: "exp now+1s, no leeway", token: hs(map[string]any{"exp": sec(time.Second)})},
		{
			name: "exp half a second ago, no leeway", token: hs(map[string]any{"exp": now.Unix()}),
			verify: &connectjwt.Verifier{Now: fixedClock(now.Add(500 * time.Millisecond))}, wantErr: connectjwt.ErrExpired,
		},
		{
			name: "expired 29s ago, leeway 30s: accepted", token: hs(map[string]any{"exp": sec(-29 * time.Second)}),
			verify: &connectjwt.Verifier{Now: fixedClock(now), Leeway: 30 * time.Second},
		},
		{
			name: "expired 30s ago, leeway 30s: accepted", token: hs(map[string]any{"exp": sec(-30 * time.Second)}),
			verify: &connectjwt.Verifier{Now: fixedClock(now), Leeway: 30 * time.Second},
		},
		{
			name: "expired 31s ago, leeway 30s", token: hs(map[string]any{"exp": sec(-31 * time.Second)}),
			verify: &connectjwt.Verifier{Now: fixedClock(now), Leeway: 30 * time.Second}, wantErr: connectjwt.ErrExpired,
		},
		{
			name: "expired 31s ago, leeway 1h clamped to 30s", token: hs(map[string]any{"exp": sec(-31 * time.Second)}),
			verify: &connectjwt.Verifier{Now: fixedClock(now), Leeway: time.Hour}, wantErr: connectjwt.ErrExpired,
		},
		{
			name: "expired 29s ago, leeway 1h clamped to 30s: accepted", token: hs(map[string]any{"exp": sec(-29 * time.Second)}),
			verify: &connectjwt.Verifier{Now: fixedClock(now), Leeway: time.Hour},
		},
		{
			name: "negative leeway counts as none", token: hs(map[string]any{"exp": sec(time.Second)}),
			verify: &connectjwt.Verifier{Now: fixedClock(now), Leeway: -time.Hour},
		},
		{
			name: "exp max int64 does not wrap", token: hs(map[string]any{"exp": int64(math.MaxInt64)}),
		},
		{
			name: "exp min int64", token: hs(map[string]any{"exp": int64(math.MinInt64)}), wantErr: connectjwt.ErrExpired,
		},
		{
			name: "iat 1s in the future, no leeway", token: hs(map[string]any{"iat": sec(time.Second)}),
			wantErr: connectjwt.ErrIssuedInFuture,
		},
		{
			name: "iat 30s in the future, leeway 30s: accepted", token: hs(map[string]any{"iat": sec(30 * time.Second)}),
			verify: &connectjwt.Verifier{Now: fixedClock(now), Leeway: 30 * time.Second},
		},
		{
			name: "iat 31s in the future, leeway 30s", token: hs(map[string]any{"iat": sec(31 * time.Second)}),
			verify: &connectjwt.Verifier{Now: fixedClock(now), Leeway: 30 * time.Second}, wantErr: connectjwt.ErrIssuedInFuture,
		},
		{
			name: "iat 31s in the future, leeway 1h clamped", token: hs(map[string]any{"iat": sec(31 * time.Second)}),
			verify: &connectjwt.Verifier{Now: fixedClock(now), Leeway: time.Hour}, wantErr: connectjwt.ErrIssuedInFuture,
		},
		{
			name: "iat max int64 does not wrap", token: hs(map[string]any{"iat": int64(math.MaxInt64)}),
			wantErr: connectjwt.ErrIssuedInFuture,
		},
		{
			name: "iat absent", token: hs(map[string]any{"iat": nil}),
		},
		{
			name: "nbf 31s ahead, leeway 30s", token: hs(map[string]any{"nbf": sec(31 * time.Second)}),
			verify: &connectjwt.Verifier{Now: fixedClock(now), Leeway: 30 * time.Second}, wantErr: connectjwt.ErrNotYetValid,
		},
		{
			name: "nbf 30s ahead, leeway 30s: accepted", token: hs(map[string]any{"nbf": sec(30 * time.Second)}),
			verify: &connectjwt.Verifier{Now: fixedClock(now), Leeway: 30 * time.Second},
		},
		{
			name: "RS256 token given to VerifyHS256", token: mustSignRS(t, validClaims(), "kid-1", rsaKey2048()),
			wantErr: connectjwt.ErrAlgorithm,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.verify
			if v == nil {
				v = &connectjwt.Verifier{Now: fixedClock(now)}
			}
			key := secret
			if tt.secret != nil {
				key = tt.secret
			}
			tok, err := connectjwt.Parse(tt.token)
			errKey := err
			if err == nil {
				err = v.VerifyHS256(tok, key)
				// The prepared key gives the same answer, used twice
				// (its states must come out of a call unchanged).
				k := connectjwt.NewHS256Key(key)
				for range 2 {
					errKey = v.VerifyHS256Key(tok, k)
				}
			}
			if tt.wantErr == nil && err != nil {
				t.Fatalf("err = %v, want nil", err)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if (errKey == nil) != (err == nil) || !errors.Is(errKey, tt.wantErr) {
				t.Fatalf("VerifyHS256Key: err = %v, want %v", errKey, tt.wantErr)
			}
		})
	}
}

// A prepared key is shared state: a failed verification never changes
// the next one's answer, and concurrent use agrees with one-off
// verification.
func TestHS256KeyReuse(t *testing.T) {
	v := &connectjwt.Verifier{Now: fixedClock(now)}
	good := mustParse(t, hsToken(hsHeader, payload(t, nil), secret))
	bad := mustParse(t, hsToken(hsHeader, payload(t, nil), []byte("another secret")))
	k := connectjwt.NewHS256Key(secret)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				tok, want := good, error(nil)
				if i%2 == 1 {
					tok, want = bad, connectjwt.ErrSignature
				}
				if err := v.VerifyHS256Key(tok, k); !errors.Is(err, want) || (want == nil && err != nil) {
					errs <- fmt.Errorf("goroutine %d: err = %v, want %v", i, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := v.VerifyHS256Key(good, nil); !errors.Is(err, connectjwt.ErrSignature) {
		t.Errorf("nil key: err = %v, want ErrSignature", err)
	}
	if err := v.VerifyHS256Key(nil, k); !errors.Is(err, connectjwt.ErrMalformed) {
		t.Errorf("nil token: err = %v, want ErrMalformed", err)
	}
}

func TestVerifyEdgeCases(t *testing.T) {
	var v *connectjwt.Verifier // nil: time.Now, no leeway
	c := validClaims()
	c.IssuedAt, c.ExpiresAt = time.Now().Unix(), time.Now().Unix()+60
	if err := v.VerifyHS256(mustParse(t, mustSignHS(t, c, secret)), secret); err != nil {
		t.Errorf("nil Verifier: %v", err)
	}
	for _, tok := range []*connectjwt.Token{nil, {Alg: "HS256", Claims: c}} {
		if err := v.VerifyHS256(tok, secret); !errors.Is(err, connectjwt.ErrMalformed) {
			t.Errorf("VerifyHS256(%v) = %v, want ErrMalformed", tok, err)
		}
		if err := v.VerifyRS256(context.Background(), tok, nil); !errors.Is(err, connectjwt.ErrMalformed) {
			t.Errorf("VerifyRS256(%v) = %v, want ErrMalformed", tok, err)
		}
	}
	// alg none with the empty signature it usually comes with never parses.
	none := b64(`{"alg":"none"}`) + "." + b64(payload(t, nil)) + "."
	if _, err := connectjwt.Parse(none); !errors.Is(err, connectjwt.ErrMalformed) {
		t.Errorf("unsigned token: %v, want ErrMalformed", err)
	}
}

// keyFunc adapts a function to KeySource.
type keyFunc func(ctx context.Context, kid string) (*rsa.PublicKey, error)

func (f keyFunc) PublicKey(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	return f(ctx, kid)
}

func mustSignRS(t testing.TB, c connectjwt.Claims, kid string, key *rsa.PrivateKey) string {
	t.Helper()
	tok, err := connectjwt.SignRS256(c, kid, key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestVerifyRS256(t *testing.T) {
	key := rsaKey2048()
	pemBytes := publicPEM(t, key)
	ks := newKeyServer(t)
	ks.put("install/kid-1", pemBytes)
	keys, err := connectjwt.NewKeyServer(ks.URL, connectjwt.KeyServerOptions{Now: fixedClock(now)})
	if err != nil {
		t.Fatal(err)
	}
	claims := validClaims()
	claims.Audience = connectjwt.Audience{"https://app.example.com"}
	rs := func(c connectjwt.Claims, kid string, k *rsa.PrivateKey) string { return mustSignRS(t, c, kid, k) }
	expired := claims
	expired.ExpiresAt = now.Unix() - 60
	rsHeader := func(kid string) string { return `{"alg":"RS256","typ":"JWT","kid":` + kid + `}` }
	signedP := strings.Split(rs(claims, "install/kid-1", key), ".")
	withHeader := func(h string) string { return b64(h) + "." + signedP[1] + "." + signedP[2] }

	tests := []struct {
		name    string
		token   string
		keys    connectjwt.KeySource // nil: the key server
		wantErr error
	}{
		{name: "valid", token: rs(claims, "install/kid-1", key)},
		{name: "HS256 given to VerifyRS256", token: mustSignHS(t, claims, secret), wantErr: connectjwt.ErrAlgorithm},
		{
			// The classic confusion: HS256 keyed with the public key, which
			// anyone can fetch. Refused by alg before any key is used.
			name:    "HS256 signed with the RSA public key PEM",
			token:   hsToken(`{"alg":"HS256","typ":"JWT","kid":"install/kid-1"}`, payload(t, nil), pemBytes),
			wantErr: connectjwt.ErrAlgorithm,
		},
		{
			name:    "RS256 header over an HMAC made with the public key PEM",
			token:   hsToken(rsHeader(`"install/kid-1"`), payload(t, nil), pemBytes),
			wantErr: connectjwt.ErrSignature,
		},
		{name: "alg rs256", token: withHeader(`{"alg":"rs256","kid":"install/kid-1"}`), wantErr: connectjwt.ErrAlgorithm},
		{name: "alg RS512", token: withHeader(`{"alg":"RS512","kid":"install/kid-1"}`), wantErr: connectjwt.ErrAlgorithm},
		{name: "alg PS256", token: withHeader(`{"alg":"PS256","kid":"install/kid-1"}`), wantErr: connectjwt.ErrAlgorithm},
		{name: "alg none", token: withHeader(`{"alg":"none","kid":"install/kid-1"}`), wantErr: connectjwt.ErrAlgorithm},
		{name: "no kid", token: withHeader(`{"alg":"RS256"}`), wantErr: connectjwt.ErrMalformed},
		{name: "kid ../x", token: withHeader(rsHeader(`"../x"`)), wantErr: connectjwt.ErrMalformed},
		{name: "kid with query", token: withHeader(rsHeader(`"kid-1?x=1"`)), wantErr: connectjwt.ErrMalformed},
		{name: "kid too long", token: withHeader(rsHeader(`"` + strings.Repeat("k", 257) + `"`)), wantErr: connectjwt.ErrMalformed},
		{name: "unknown kid", token: rs(claims, "install/kid-2", key), wantErr: connectjwt.ErrKeyNotFound},
		{name: "signed by another key", token: rs(claims, "install/kid-1", rsaKeyB()), wantErr: connectjwt.ErrSignature},
		{name: "tampered payload", token: signedP[0] + "." + b64(payload(t, map[string]any{"iss": "jira:2"})) + "." + signedP[2], wantErr: connectjwt.ErrSignature},
		{name: "expired", token: rs(expired, "install/kid-1", key), wantErr: connectjwt.ErrExpired},
		{
			name: "key source down", token: rs(claims, "install/kid-1", key),
			keys: keyFunc(func(context.Context, string) (*rsa.PublicKey, error) {
				return nil, fmt.Errorf("%w: test", connectjwt.ErrKeyUnavailable)
			}),
			wantErr: connectjwt.ErrKeyUnavailable,
		},
		{
			name: "key source gives a 1024-bit key", token: rs(claims, "install/kid-1", key),
			keys: keyFunc(func(context.Context, string) (*rsa.PublicKey, error) {
				return &rsaKey1024().PublicKey, nil
			}),
			wantErr: connectjwt.ErrKeyUnavailable,
		},
		{
			name: "key source gives nothing", token: rs(claims, "install/kid-1", key),
			keys:    keyFunc(func(context.Context, string) (*rsa.PublicKey, error) { return nil, nil }),
			wantErr: connectjwt.ErrKeyUnavailable,
		},
	}
	v := &connectjwt.Verifier{Now: fixedClock(now), Leeway: 5 * time.Second}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var src connectjwt.KeySource = keys
			if tt.keys != nil {
				src = tt.keys
			}
			tok, err := connectjwt.Parse(tt.token)
			if err == nil {
				err = v.VerifyRS256(context.Background(), tok, src)
			}
			if tt.wantErr == nil && err != nil {
				t.Fatalf("err = %v, want nil", err)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
	// Malformed kids never reach the key server.
	if n := ks.requests.Load(); n != 2 { // kid-1 once (cached), kid-2 once
		t.Errorf("key server got %d requests, want 2", n)
	}
	tok := mustParse(t, rs(claims, "install/kid-1", key))
	if !tok.Claims.HasAudience("https://app.example.com/") || tok.Kid != "install/kid-1" || tok.Typ != "JWT" {
		t.Errorf("parsed %+v", tok)
	}
}

// TestInteropToken verifies the token of Atlassian's published signing
// interoperability example.
func TestInteropToken(t *testing.T) {
	raw, err := os.ReadFile("../testdata/qsh-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Example struct {
			SignedURL     string `json:"signedUrl"`
			Secret        string `json:"secret"`
			DecodedClaims struct {
				QSH string `json:"qsh"`
				Iss string `json:"iss"`
				Exp int64  `json:"exp"`
				Iat int64  `json:"iat"`
			} `json:"decodedClaims"`
		} `json:"interop_signed_url_example"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	ex := f.Example
	_, jwt, ok := strings.Cut(ex.SignedURL, "jwt=")
	if !ok || ex.Secret == "" {
		t.Fatalf("no token in the example: %q", ex.SignedURL)
	}
	tok := mustParse(t, jwt)
	v := &connectjwt.Verifier{Now: fixedClock(time.Unix(1466731100, 0))}
	if err := v.VerifyHS256(tok, []byte(ex.Secret)); err != nil {
		t.Fatalf("VerifyHS256: %v", err)
	}
	c := tok.Claims
	if c.Issuer != "jira:1234-5678-9000" || c.Issuer != ex.DecodedClaims.Iss {
		t.Errorf("iss = %q", c.Issuer)
	}
	if c.QSH != "be16910858a41fd19ea5c1b4e9decca9a784d1024cb00b2158defe2f29dc86dd" || c.QSH != ex.DecodedClaims.QSH {
		t.Errorf("qsh = %q", c.QSH)
	}
	if c.ExpiresAt != 1466731255 || c.IssuedAt != ex.DecodedClaims.Iat || string(c.Context) != "{}" {
		t.Errorf("claims = %+v", c)
	}
	// The same token a second after exp is refused.
	late := &connectjwt.Verifier{Now: fixedClock(time.Unix(1466731256, 0))}
	if err := late.VerifyHS256(tok, []byte(ex.Secret)); !errors.Is(err, connectjwt.ErrExpired) {
		t.Errorf("after exp: %v, want ErrExpired", err)
	}
	if err := v.VerifyHS256(tok, []byte(ex.Secret+"x")); !errors.Is(err, connectjwt.ErrSignature) {
		t.Errorf("other secret: %v, want ErrSignature", err)
	}
}

func TestSign(t *testing.T) {
	c := validClaims()
	c.Audience = connectjwt.Audience{"https://a.example.com", "https://b.example.com"}
	tok := mustSignHS(t, c, secret)
	if h := strings.Split(tok, ".")[0]; h != b64(hsHeader) {
		t.Errorf("HS256 header = %s", h)
	}
	pt := mustParse(t, tok)
	if err := (&connectjwt.Verifier{Now: fixedClock(now)}).VerifyHS256(pt, secret); err != nil {
		t.Fatal(err)
	}
	got := pt.Claims
	if got.Issuer != c.Issuer || got.Subject != c.Subject || got.QSH != c.QSH || got.IssuedAt != c.IssuedAt ||
		got.ExpiresAt != c.ExpiresAt || string(got.Context) != string(c.Context) || len(got.Audience) != 2 {
		t.Errorf("round trip: %+v, want %+v", got, c)
	}

	rs := mustSignRS(t, c, "a/b-1", rsaKey2048())
	pt = mustParse(t, rs)
	if pt.Alg != "RS256" || pt.Kid != "a/b-1" || pt.Typ != "JWT" {
		t.Errorf("RS256 header = %q %q %q", pt.Alg, pt.Kid, pt.Typ)
	}

	bad := c
	bad.Context = json.RawMessage(`{not json`)
	for name, err := range map[string]error{
		"HS256 empty secret":   errOf(connectjwt.SignHS256(c, nil)),
		"HS256 invalid claims": errOf(connectjwt.SignHS256(bad, secret)),
		"RS256 bad kid":        errOf(connectjwt.SignRS256(c, "../x", rsaKey2048())),
		"RS256 no key":         errOf(connectjwt.SignRS256(c, "kid", nil)),
		"RS256 1024-bit key":   errOf(connectjwt.SignRS256(c, "kid", rsaKey1024())),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// truncSig drops the last byte of an encoded signature.
func truncSig(t testing.TB, sig string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(raw[:len(raw)-1])
}

func errOf(_ string, err error) error { return err }

// The prepared key computes exactly crypto/hmac's HMAC-SHA256, for keys
// shorter than, as long as and longer than the hash's block, and for
// messages of any length.
func TestHS256KeyMatchesHMAC(t *testing.T) {
	v := &connectjwt.Verifier{Now: fixedClock(now)}
	for _, n := range []int{1, 16, 63, 64, 65, 100, 200} {
		key := bytes.Repeat([]byte{byte(n)}, n)
		key[0] = 'k'
		tok := mustParse(t, hsToken(hsHeader, payload(t, map[string]any{"sub": strings.Repeat("x", n*7)}), key))
		if err := v.VerifyHS256Key(tok, connectjwt.NewHS256Key(key)); err != nil {
			t.Errorf("key of %d bytes: %v", n, err)
		}
		other := bytes.Clone(key)
		other[n-1] ^= 1
		if err := v.VerifyHS256Key(tok, connectjwt.NewHS256Key(other)); !errors.Is(err, connectjwt.ErrSignature) {
			t.Errorf("key of %d bytes with its last bit changed: err = %v, want ErrSignature", n, err)
		}
	}
	if err := v.VerifyHS256Key(mustParse(t, hsToken(hsHeader, payload(t, nil), secret)), connectjwt.NewHS256Key(nil)); !errors.Is(err, connectjwt.ErrSignature) {
		t.Errorf("empty key: err = %v, want ErrSignature", err)
	}
}
