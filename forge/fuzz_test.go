package forge_test

import (
	"context"
	"crypto/rsa"
	"errors"
	"testing"

	"github.com/tenon-dev/tenon/forge"
)

// staticKeys is a KeySource with one key.
type staticKeys struct {
	kid string
	key *rsa.PublicKey
}

func (s staticKeys) PublicKey(_ context.Context, kid string) (*rsa.PublicKey, error) {
	if kid == s.kid {
		return s.key, nil
	}
	return nil, forge.ErrKeyNotFound
}

// FuzzVerify feeds arbitrary tokens to the verifier: it must never panic,
// every refusal must be one of the package's errors, and nothing but the
// one validly signed token may verify.
func FuzzVerify(f *testing.F) {
	k := testKey(f, 0, "fuzz-key")
	c := newClock()
	v, err := forge.NewVerifier(forge.VerifierOptions{AppID: appID, Keys: staticKeys{k.kid, &k.key.PublicKey}, Now: c.Now})
	if err != nil {
		f.Fatal(err)
	}
	valid := sign(f, k, fitClaims())
	f.Add(valid)
	f.Add("")
	f.Add("a.b.c")
	f.Add(valid[:len(valid)-3])
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJmb3JnZS9pbnZvY2F0aW9uLXRva2VuIn0.")
	own := []error{forge.ErrMalformed, forge.ErrAlgorithm, forge.ErrSignature, forge.ErrIssuer, forge.ErrAudience,
		forge.ErrExpired, forge.ErrNotYetValid, forge.ErrIssuedInFuture, forge.ErrMissingClaim, forge.ErrKeyNotFound}
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := v.Verify(context.Background(), token)
		if err == nil {
			if claims == nil || claims.ID != "d8a496253ec8c18a54631e4c82cbedd5d0ae8570" || claims.App.InstallationID != installationID {
				t.Fatalf("a token other than the signed one verified: %q", token)
			}
			return
		}
		for _, e := range own {
			if errors.Is(err, e) {
				return
			}
		}
		t.Fatalf("Verify(%q) = %v, not one of the package's errors", token, err)
	})
}

// FuzzParseJWKS: any document either parses into usable keys or fails;
// it never panics.
func FuzzParseJWKS(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		keys, err := forge.ParseJWKS(doc)
		if err == nil && len(keys) == 0 {
			t.Fatal("no error and no keys")
		}
		for kid, k := range keys {
			if kid == "" || k.N.BitLen() < 2048 || k.E < 3 {
				t.Fatalf("unusable key %q accepted", kid)
			}
		}
	})
}
