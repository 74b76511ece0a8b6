package connectjwt

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
)

// The HS256 header is always the same, so it is encoded once, by hand:
// base64url of {"alg":"HS256","typ":"JWT"}.
const hs256Header = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"

// SignHS256 returns a compact JWS of c with header
// {"alg":"HS256","typ":"JWT"}, signed with secret. It does not judge the
// claims (tools and tests sign expired tokens on purpose), but it refuses
// an empty secret, which VerifyHS256 would refuse too.
func SignHS256(c Claims, secret []byte) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("connectjwt: sign HS256: empty secret")
	}
	payload, err := json.Marshal(&c)
	if err != nil {
		return "", fmt.Errorf("connectjwt: sign HS256: encode claims: %w", err)
	}
	buf := appendSigningInput(hs256Header, payload, b64.EncodedLen(sha256.Size))
	mac := hmac.New(sha256.New, secret)
	mac.Write(buf)
	var sum [sha256.Size]byte
	return string(appendSignature(buf, mac.Sum(sum[:0]))), nil
}

// SignRS256 returns a compact JWS of c with header
// {"alg":"RS256","typ":"JWT","kid":kid}, as a signed install carries. It is
// used by tools and tests that play the product's part.
func SignRS256(c Claims, kid string, key *rsa.PrivateKey) (string, error) {
	if err := checkKid(kid); err != nil {
		return "", fmt.Errorf("connectjwt: sign RS256: %w", err)
	}
	if key == nil {
		return "", errors.New("connectjwt: sign RS256: no key")
	}
	if err := checkRSAKey(&key.PublicKey); err != nil {
		return "", fmt.Errorf("connectjwt: sign RS256: %w", err)
	}
	header, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
		Kid string `json:"kid"`
	}{algRS256, "JWT", kid})
	if err != nil {
		return "", fmt.Errorf("connectjwt: sign RS256: encode header: %w", err)
	}
	payload, err := json.Marshal(&c)
	if err != nil {
		return "", fmt.Errorf("connectjwt: sign RS256: encode claims: %w", err)
	}
	buf := appendSigningInput(b64.EncodeToString(header), payload, b64.EncodedLen(key.Size()))
	digest := sha256.Sum256(buf)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("connectjwt: sign RS256: %w", err)
	}
	return string(appendSignature(buf, sig)), nil
}

// appendSigningInput returns header.base64url(payload) in a buffer with
// room for '.' and a signature of sigLen encoded bytes.
func appendSigningInput(header string, payload []byte, sigLen int) []byte {
	buf := make([]byte, 0, len(header)+1+b64.EncodedLen(len(payload))+1+sigLen)
	buf = append(buf, header...)
	buf = append(buf, '.')
	return b64.AppendEncode(buf, payload)
}

func appendSignature(buf, sig []byte) []byte {
	buf = append(buf, '.')
	return b64.AppendEncode(buf, sig)
}
