// Package keyring seals tenant secrets with AES-256-GCM so that a copy of
// the database (a backup, a replica, a stolen disk) does not reveal the
// shared secrets that authenticate every request of a tenant.
//
// Keys live in a key file, one per line, each the standard base64 encoding
// of 32 random bytes. Blank lines and lines starting with # are ignored.
// The first key seals new secrets; the others only open old ones. To rotate,
// put a new key on the first line and restart: everything sealed before
// still opens, and every write from then on uses the new key. An old key can
// be removed once nothing sealed with it is left: re-sealing (a store's
// tenon.Resealer, `tenon keys reseal`) moves every value to the new key.
//
// A sealed secret reads v1.<key id>.<base64url(nonce || ciphertext)>. The key
// id names the key that sealed it, so opening never has to try every key and
// a missing key is reported as such instead of as corrupt data.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/tenon-dev/tenon"
)

var _ tenon.KeyedSecretBox = (*Keyring)(nil)

// KeySize is the length in bytes of every key: AES-256.
const KeySize = 32

// version prefixes every sealed value so the format can change later
// without guessing what an old value is.
const version = "v1"

// Errors returned by Open, for callers that need to tell them apart.
var (
	// ErrUnknownKey means the value was sealed with a key that is not in
	// the keyring, typically because it was removed from the key file too
	// early.
	ErrUnknownKey = errors.New("keyring: sealed with a key that is not in the key file")
	// ErrMalformed means the value is not in the sealed format at all.
	ErrMalformed = errors.New("keyring: not a sealed value")
	// ErrAuth means the value does not authenticate: it was altered, or it
	// was sealed with a different key that happens to share the key id.
	ErrAuth = errors.New("keyring: sealed value fails authentication")
)

// Keyring implements tenon.SecretBox. Make one with New, Parse or Load. It
// is safe for concurrent use; set Rand, if at all, before the first Seal.
type Keyring struct {
	// Rand is the source of nonces. Nil means crypto/rand. Tests set it to
	// make sealed values reproducible; production must leave it nil.
	Rand io.Reader

	current *key
	byID    map[string]*key
	ids     []string // in file order, current first
}

type key struct {
	id   string
	aead cipher.AEAD
	raw  []byte // kept only to derive purpose keys (DerivedKeys)
}

// KeyID returns the id under which a key's sealed values are labelled: the
// first 8 hex digits of the SHA-256 of the key. It reveals nothing usable
// about the key and stays the same across restarts and file reorderings.
func KeyID(k []byte) string {
	sum := sha256.Sum256(k)
	return hex.EncodeToString(sum[:4])
}

// New returns a keyring whose first key seals and whose every key opens.
// Each key must be exactly KeySize bytes.
func New(keys ...[]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("keyring: no keys")
	}
	kr := &Keyring{byID: make(map[string]*key, len(keys))}
	for i, k := range keys {
		if err := kr.add(k); err != nil {
			return nil, fmt.Errorf("keyring: key %d: %w", i+1, err)
		}
	}
	return kr, nil
}

func (kr *Keyring) add(k []byte) error {
	if len(k) != KeySize {
		return fmt.Errorf("key is %d bytes, want %d", len(k), KeySize)
	}
	id := KeyID(k)
	if _, dup := kr.byID[id]; dup {
		// Either the same key twice (a copy-paste slip during rotation)
		// or a collision of ids; both would make Open ambiguous.
		return fmt.Errorf("key id %s appears twice", id)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return err
	}
	kk := &key{id: id, aead: aead, raw: append([]byte(nil), k...)}
	kr.byID[id] = kk
	kr.ids = append(kr.ids, id)
	if kr.current == nil {
		kr.current = kk
	}
	return nil
}

// Parse reads a key file's contents. Error messages name the line but never
// echo its contents, since a line that fails to parse may still be a key.
func Parse(data []byte) (*Keyring, error) {
	kr := &Keyring{byID: make(map[string]*key)}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			return nil, fmt.Errorf("keyring: line %d: not a base64 key (std encoding, with padding)", i+1)
		}
		if err := kr.add(k); err != nil {
			return nil, fmt.Errorf("keyring: line %d: %w", i+1, err)
		}
	}
	if kr.current == nil {
		return nil, errors.New("keyring: no keys (every line is blank or a comment)")
	}
	return kr, nil
}

// Load reads the key file at path. It refuses a file that other users may
// read or write: the keys protect every tenant's secret, and a readable key
// file would undo that protection on a shared machine. Group access is
// allowed so that a root-owned file can be shared with the service's group.
func Load(path string) (*Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("keyring: %s is not a regular file", path)
	}
	// Windows has no such permission bits; its ACLs are the operator's job.
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o007 != 0 {
		return nil, fmt.Errorf("keyring: %s is accessible by other users (mode %04o); run: chmod 600 %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	kr, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return kr, nil
}

// Generate returns one new key line (without a newline) made from 32 bytes
// of r, or of crypto/rand when r is nil.
func Generate(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	k := make([]byte, KeySize)
	if _, err := io.ReadFull(r, k); err != nil {
		return "", fmt.Errorf("keyring: generate key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(k), nil
}

// KeyIDs returns the ids of the keys, the sealing key first. Operators use
// it to check which keys a running process has loaded.
func (kr *Keyring) KeyIDs() []string {
	return append([]string(nil), kr.ids...)
}

// SealingKeyID returns the id of the key Seal uses: the first of the file.
// An empty keyring gives "".
func (kr *Keyring) SealingKeyID() string {
	if kr.current == nil {
		return ""
	}
	return kr.current.id
}

// SealedKeyID returns the id of the key a sealed value names, without
// opening it. It implements tenon.KeyedSecretBox; see the function
// SealedKeyID.
func (kr *Keyring) SealedKeyID(sealed string) (string, error) {
	return SealedKeyID(sealed)
}

// SealedKeyID returns the id of the key a value returned by Seal names,
// without opening it and without any key: what an operator needs to count
// the values still under an old key. The id is bound to the ciphertext
// (Open fails if it was altered), but only Open checks that.
func SealedKeyID(sealed string) (string, error) {
	ver, rest, ok1 := strings.Cut(sealed, ".")
	id, _, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return "", ErrMalformed
	}
	if ver != version {
		return "", fmt.Errorf("%w: unknown version %q", ErrMalformed, truncate(ver))
	}
	if !validKeyID(id) {
		return "", fmt.Errorf("%w: bad key id %q", ErrMalformed, truncate(id))
	}
	return id, nil
}

// validKeyID reports whether id could have been made by KeyID: 8 lower-case
// hex digits.
func validKeyID(id string) bool {
	if len(id) != 8 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// DerivedKey is a key for one purpose other than sealing secrets, derived
// from one key of the key file; ID is that key's id.
type DerivedKey struct {
	ID  string
	Key []byte
}

// DerivedKeys returns one KeySize key per key of the file, the current key
// first, each derived with HKDF-SHA256 for purpose. Other parts (backup
// encryption) use them so that the key file stays the one secret to keep
// safe, without reusing the sealing keys themselves.
func (kr *Keyring) DerivedKeys(purpose string) ([]DerivedKey, error) {
	out := make([]DerivedKey, 0, len(kr.ids))
	for _, id := range kr.ids {
		dk, err := hkdf.Key(sha256.New, kr.byID[id].raw, nil, "tenon "+purpose, KeySize)
		if err != nil {
			return nil, fmt.Errorf("keyring: derive %s key: %w", purpose, err)
		}
		out = append(out, DerivedKey{ID: id, Key: dk})
	}
	return out, nil
}

// Seal encrypts plaintext with the current key.
func (kr *Keyring) Seal(plaintext []byte) (string, error) {
	k := kr.current
	if k == nil {
		return "", errors.New("keyring: seal: empty keyring (use New, Parse or Load)")
	}
	r := kr.Rand
	if r == nil {
		r = rand.Reader
	}
	nonceSize := k.aead.NonceSize()
	buf := make([]byte, nonceSize, nonceSize+len(plaintext)+k.aead.Overhead())
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", fmt.Errorf("keyring: seal: read nonce: %w", err)
	}
	prefix := version + "." + k.id
	buf = k.aead.Seal(buf, buf[:nonceSize], plaintext, []byte(prefix))
	return prefix + "." + base64.RawURLEncoding.EncodeToString(buf), nil
}

// Open decrypts a value returned by Seal with any key of the keyring.
func (kr *Keyring) Open(sealed string) ([]byte, error) {
	ver, rest, ok1 := strings.Cut(sealed, ".")
	id, body, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 {
		return nil, ErrMalformed
	}
	if ver != version {
		return nil, fmt.Errorf("%w: unknown version %q", ErrMalformed, truncate(ver))
	}
	k, ok := kr.byID[id] // a nil map reads as empty
	if !ok {
		return nil, fmt.Errorf("%w (key id %q)", ErrUnknownKey, truncate(id))
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("%w: bad base64", ErrMalformed)
	}
	nonceSize := k.aead.NonceSize()
	if len(raw) < nonceSize+k.aead.Overhead() {
		return nil, fmt.Errorf("%w: too short", ErrMalformed)
	}
	plain, err := k.aead.Open(nil, raw[:nonceSize], raw[nonceSize:], []byte(ver+"."+id))
	if err != nil {
		return nil, fmt.Errorf("%w (key id %s)", ErrAuth, id)
	}
	return plain, nil
}

// truncate keeps error messages short when the input is garbage.
func truncate(s string) string {
	if len(s) > 16 {
		return s[:16] + "..."
	}
	return s
}
