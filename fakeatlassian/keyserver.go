package fakeatlassian

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
)

// installKey is one RS256 key of the Connect install-keys server. A kid
// never changes its key, so apps may cache keys by kid forever; rotation
// adds a key and keeps the old ones resolvable.
type installKey struct {
	kid string
	key *rsa.PrivateKey
	pem []byte // PKIX public key, as the real key server serves it
}

// RotateInstallKey creates a new RS256 key, makes it the one that signs
// from now on and returns its kid. Earlier kids keep resolving.
func (f *Fake) RotateInstallKey() string {
	k := f.newInstallKey()
	f.mu.Lock()
	f.keys = append(f.keys, k)
	f.mu.Unlock()
	return k.kid
}

// signingKey returns the current install key, creating the first one on
// demand so that New stays cheap.
func (f *Fake) signingKey() *installKey {
	f.mu.Lock()
	if n := len(f.keys); n > 0 {
		k := f.keys[n-1]
		f.mu.Unlock()
		return k
	}
	f.mu.Unlock()
	k := f.newInstallKey()
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.keys); n > 0 { // another goroutine won the race
		return f.keys[n-1]
	}
	f.keys = append(f.keys, k)
	return k
}

func (f *Fake) newInstallKey() *installKey {
	// Go ignores custom random sources for key generation, so keys always
	// come from crypto/rand whatever Options.Rand is.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(fmt.Sprintf("fakeatlassian: generate RSA key: %v", err))
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		panic(fmt.Sprintf("fakeatlassian: encode RSA public key: %v", err))
	}
	return &installKey{
		kid: f.newUUID(),
		key: key,
		pem: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
	}
}

// serveInstallKey answers GET <key server>/<kid> with the PEM public key,
// or 404 for a kid it never issued.
func (f *Fake) serveInstallKey(w http.ResponseWriter, r *http.Request) {
	kid := r.PathValue("kid")
	f.mu.Lock()
	var found *installKey
	for _, k := range f.keys {
		if k.kid == kid {
			found = k
			break
		}
	}
	f.mu.Unlock()
	if found == nil {
		http.Error(w, "no key with this kid", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	w.Write(found.pem)
}
