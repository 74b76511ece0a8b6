package connectjwt

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding"
	"errors"
	"fmt"
	"hash"
	"time"
)

// Verifier checks signatures and the time claims of parsed tokens. The
// zero value (and a nil *Verifier) uses time.Now and no leeway. It is safe
// for concurrent use.
type Verifier struct {
	Now    func() time.Time // nil: time.Now
	Leeway time.Duration    // clock skew allowed on exp/iat/nbf; values above MaxLeeway are treated as MaxLeeway
}

// VerifyHS256 checks a token signed with a tenant's shared secret:
// alg is exactly "HS256" (none, HS384, RS256, ... are refused, whatever
// their spelling), the HMAC-SHA256 of the signing input under secret
// equals the signature (compared in constant time), and the time claims
// hold (see checkTimes). The signature is checked before any claim, so
// nothing is concluded from unauthenticated data.
func (v *Verifier) VerifyHS256(t *Token, secret []byte) error {
	if t == nil || t.signingInput == nil {
		return fmt.Errorf("%w: not a parsed token", ErrMalformed)
	}
	if t.Alg != algHS256 {
		return fmt.Errorf("%w: %s, want %s", ErrAlgorithm, quoteShort(t.Alg), algHS256)
	}
	if len(secret) == 0 {
		// An empty key would let anyone sign: refuse rather than "verify".
		return fmt.Errorf("%w: empty shared secret", ErrSignature)
	}
	return v.verifyHS256(t, hmac.New(sha256.New, secret))
}

// verifyHS256 checks t's signature with mac, keyed with the secret and
// reset, then the time claims.
func (v *Verifier) verifyHS256(t *Token, mac hash.Hash) error {
	mac.Write(t.signingInput)
	var sum [sha256.Size]byte
	return v.checkHS256(t, mac.Sum(sum[:0]))
}

// checkHS256 compares the MAC computed over t's signing input with its
// signature, in constant time, then checks the time claims.
func (v *Verifier) checkHS256(t *Token, mac []byte) error {
	if !hmac.Equal(mac, t.signature) {
		return fmt.Errorf("%w: HS256 signature does not match", ErrSignature)
	}
	return v.checkTimes(t)
}

// HS256Key is a shared secret made ready for verifying many tokens: the
// SHA-256 states of HMAC's inner and outer padded keys are computed once,
// so a verification starts from them instead of hashing the key twice
// again. It holds 2 × 108 bytes of state, nothing per goroutine, and is
// safe for concurrent use. A rotated secret needs a new HS256Key.
type HS256Key struct {
	inner, outer []byte // marshaled sha256 states after the padded key block
}

// NewHS256Key prepares secret for VerifyHS256Key.
func NewHS256Key(secret []byte) *HS256Key {
	if len(secret) == 0 {
		return &HS256Key{}
	}
	// HMAC (RFC 2104): a key longer than the block is hashed first; the
	// key, zero-padded to the block, is XORed with ipad and opad.
	key := secret
	if len(key) > sha256.BlockSize {
		sum := sha256.Sum256(key)
		key = sum[:]
	}
	var ipad, opad [sha256.BlockSize]byte
	copy(ipad[:], key)
	copy(opad[:], key)
	for i := range ipad {
		ipad[i] ^= 0x36
		opad[i] ^= 0x5c
	}
	return &HS256Key{inner: padState(ipad[:]), outer: padState(opad[:])}
}

// padState is the marshaled state of SHA-256 after one block.
func padState(block []byte) []byte {
	h := sha256.New()
	h.Write(block)
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic("connectjwt: sha256 state cannot be marshaled: " + err.Error()) // not reached: crypto/sha256 supports it
	}
	return state
}

// sum computes HMAC-SHA256(key, msg) into out from the prepared states.
func (k *HS256Key) sum(out *[sha256.Size]byte, msg []byte) error {
	h := sha256.New()
	u := h.(encoding.BinaryUnmarshaler)
	if err := u.UnmarshalBinary(k.inner); err != nil {
		return err
	}
	h.Write(msg)
	h.Sum(out[:0])
	if err := u.UnmarshalBinary(k.outer); err != nil {
		return err
	}
	h.Write(out[:])
	h.Sum(out[:0])
	return nil
}

// VerifyHS256Key is VerifyHS256 with a prepared key: the same checks, in
// the same order, with the same errors and the same result.
func (v *Verifier) VerifyHS256Key(t *Token, k *HS256Key) error {
	if t == nil || t.signingInput == nil {
		return fmt.Errorf("%w: not a parsed token", ErrMalformed)
	}
	if t.Alg != algHS256 {
		return fmt.Errorf("%w: %s, want %s", ErrAlgorithm, quoteShort(t.Alg), algHS256)
	}
	if k == nil || k.inner == nil {
		return fmt.Errorf("%w: empty shared secret", ErrSignature)
	}
	var mac [sha256.Size]byte
	if err := k.sum(&mac, t.signingInput); err != nil {
		return fmt.Errorf("%w: %w", ErrSignature, err)
	}
	return v.checkHS256(t, mac[:])
}

// VerifyRS256 checks a signed-install token: alg is exactly "RS256", kid
// is present and well-formed, the RSASSA-PKCS1-v1_5 SHA-256 signature
// verifies under the key keys gives for kid, and the time claims hold.
// Errors of keys are returned wrapped, so ErrKeyNotFound and
// ErrKeyUnavailable stay visible to errors.Is.
func (v *Verifier) VerifyRS256(ctx context.Context, t *Token, keys KeySource) error {
	if t == nil || t.signingInput == nil {
		return fmt.Errorf("%w: not a parsed token", ErrMalformed)
	}
	if t.Alg != algRS256 {
		return fmt.Errorf("%w: %s, want %s", ErrAlgorithm, quoteShort(t.Alg), algRS256)
	}
	if err := checkKid(t.Kid); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if keys == nil {
		return fmt.Errorf("%w: no key source", ErrKeyUnavailable)
	}
	key, err := keys.PublicKey(ctx, t.Kid)
	if err != nil {
		return fmt.Errorf("connectjwt: key for kid %q: %w", t.Kid, err)
	}
	if key == nil {
		return fmt.Errorf("%w: key source returned no key for kid %q", ErrKeyUnavailable, t.Kid)
	}
	if err := checkRSAKey(key); err != nil {
		return fmt.Errorf("%w: kid %q: %w", ErrKeyUnavailable, t.Kid, err)
	}
	digest := sha256.Sum256(t.signingInput)
	if err := rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], t.signature); err != nil {
		return fmt.Errorf("%w: RS256 signature does not verify under kid %q", ErrSignature, t.Kid)
	}
	return v.checkTimes(t)
}

// checkTimes requires exp and checks now <= exp+leeway (now < exp without
// leeway), iat <= now+leeway
// and, when nbf is present, nbf <= now+leeway. The comparisons are done on
// whole seconds derived from now, never on exp+leeway, so absurd values
// such as exp = 2^63-1 cannot overflow into the past or the future.
func (v *Verifier) checkTimes(t *Token) error {
	if !t.hasExp {
		return ErrMissingExpiry
	}
	now, leeway := time.Now, time.Duration(0)
	if v != nil {
		if v.Now != nil {
			now = v.Now
		}
		leeway = min(max(v.Leeway, 0), MaxLeeway)
	}
	n := now()
	// exp is a whole second. Without leeway exp itself is too late (RFC
	// 7519: "on or after"). A leeway is a closed window: a token that
	// expired exactly leeway ago is still inside it, so a 10 s skew
	// accepts a token that expired 10 s ago.
	late := n.Add(-leeway).Unix()
	if late > t.Claims.ExpiresAt || (leeway == 0 && late == t.Claims.ExpiresAt) {
		return fmt.Errorf("%w: exp %d, now %d, leeway %s", ErrExpired, t.Claims.ExpiresAt, n.Unix(), leeway)
	}
	// Likewise iat > now+leeway exactly when iat exceeds its floor.
	early := n.Add(leeway).Unix()
	if t.Claims.IssuedAt > early {
		return fmt.Errorf("%w: iat %d, now %d, leeway %s", ErrIssuedInFuture, t.Claims.IssuedAt, n.Unix(), leeway)
	}
	if t.hasNbf && t.nbf > early {
		return fmt.Errorf("%w: nbf %d, now %d, leeway %s", ErrNotYetValid, t.nbf, n.Unix(), leeway)
	}
	return nil
}

// checkRSAKey refuses keys too weak to trust and keys so large that
// verifying with them is a denial of service.
func checkRSAKey(k *rsa.PublicKey) error {
	if k.N == nil {
		return errors.New("RSA key has no modulus")
	}
	if bits := k.N.BitLen(); bits < minRSABits || bits > maxRSABits {
		return fmt.Errorf("RSA key has %d bits, want %d to %d", bits, minRSABits, maxRSABits)
	}
	return nil
}

const (
	minRSABits = 2048
	maxRSABits = 8192
)

// quoteShort quotes attacker-supplied text for an error message, cut
// short so that a token cannot flood the logs.
func quoteShort(s string) string {
	const limit = 32
	if len(s) > limit {
		return fmt.Sprintf("%q...", s[:limit])
	}
	return fmt.Sprintf("%q", s)
}
