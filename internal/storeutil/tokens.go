package storeutil

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/tenon-dev/tenon"
)

// Limits of the token cache. Keys are made by the code that caches (a
// prefix and a hash, or a Forge installation id); tokens are JWTs or
// opaque strings of a few KiB at most.
const (
	MaxTokenKeyLength = 512
	MaxTokenSize      = 64 << 10
)

// ValidateTokenKey checks a token cache key: 1 to MaxTokenKeyLength bytes
// of UTF-8 without NUL.
func ValidateTokenKey(key string) error {
	if key == "" || len(key) > MaxTokenKeyLength || !ValidText(key) {
		return tenon.Errorf(tenon.EINVALID, "A token key must be 1 to %d bytes of UTF-8 without NUL.", MaxTokenKeyLength)
	}
	return nil
}

// ValidatePutToken checks what PutToken is about to store.
func ValidatePutToken(key, token string, expiresAt time.Time) error {
	if err := ValidateTokenKey(key); err != nil {
		return err
	}
	switch {
	case token == "":
		return tenon.Errorf(tenon.EINVALID, "The token is empty.")
	case len(token) > MaxTokenSize:
		return tenon.Errorf(tenon.ETOOLARGE, "The token is larger than %d bytes.", MaxTokenSize)
	case expiresAt.IsZero():
		return tenon.Errorf(tenon.EINVALID, "The token has no expiry.")
	}
	return nil
}

// SealToken encrypts a token together with the key it is stored under.
// Binding the key into the sealed value means that someone able to write
// the table cannot move one user's token under another user's key: Open
// would refuse it.
func SealToken(box tenon.SecretBox, key, token string) (string, error) {
	plain := make([]byte, 0, len(key)+1+len(token))
	plain = append(append(append(plain, key...), 0), token...)
	sealed, err := box.Seal(plain)
	if err != nil {
		return "", fmt.Errorf("seal token: %w", err)
	}
	return sealed, nil
}

// errTokenKeyMismatch is the cause of a sealed token found under a key it
// was not sealed for.
var errTokenKeyMismatch = errors.New("the sealed token belongs to another key")

// OpenToken decrypts a sealed token stored under key. Errors carry nothing
// of the token.
func OpenToken(box tenon.SecretBox, key, sealed string) (string, error) {
	plain, err := box.Open(sealed)
	if err != nil {
		return "", fmt.Errorf("open token: %w", err)
	}
	k, token, ok := bytes.Cut(plain, []byte{0})
	if !ok || string(k) != key {
		return "", fmt.Errorf("open token: %w", errTokenKeyMismatch)
	}
	return string(token), nil
}

// TokenNotFound is the error for a missing or expired token.
func TokenNotFound() error {
	return tenon.Errorf(tenon.ENOTFOUND, "No valid token under this key.")
}
