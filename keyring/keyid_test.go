package keyring_test

import (
	"errors"
	"testing"

	"github.com/tenon-dev/tenon/keyring"
)

func TestSealingKeyID(t *testing.T) {
	kr := MustNew(t, testKey(2), testKey(1))
	if got, want := kr.SealingKeyID(), keyring.KeyID(testKey(2)); got != want {
		t.Errorf("SealingKeyID = %q, want the first key's %q", got, want)
	}
	var empty keyring.Keyring
	if got := empty.SealingKeyID(); got != "" {
		t.Errorf("empty keyring: SealingKeyID = %q, want \"\"", got)
	}
}

func TestSealedKeyID(t *testing.T) {
	old := MustNew(t, testKey(1))
	rotated := MustNew(t, testKey(2), testKey(1))
	sealedOld, _ := old.Seal([]byte("secret"))
	sealedNew, _ := rotated.Seal([]byte("secret"))
	for _, tc := range []struct {
		sealed, want string
	}{
		{sealedOld, keyring.KeyID(testKey(1))},
		{sealedNew, keyring.KeyID(testKey(2))},
	} {
		got, err := keyring.SealedKeyID(tc.sealed)
		if err != nil || got != tc.want {
			t.Errorf("SealedKeyID = %q, %v; want %q", got, err, tc.want)
		}
		// No key is needed: a keyring without it reads the id all the same.
		if got, err := MustNew(t, testKey(9)).SealedKeyID(tc.sealed); err != nil || got != tc.want {
			t.Errorf("method SealedKeyID = %q, %v; want %q", got, err, tc.want)
		}
	}
}

func TestSealedKeyIDMalformed(t *testing.T) {
	for _, in := range []string{
		"", "plain text", "v1.", "v1.0123abcd", "v2.0123abcd.AAAA",
		"v1.0123ABCD.AAAA", "v1.0123abc.AAAA", "v1.0123abcde.AAAA", "v1.0123abcg.AAAA",
	} {
		if id, err := keyring.SealedKeyID(in); !errors.Is(err, keyring.ErrMalformed) {
			t.Errorf("SealedKeyID(%q) = %q, %v; want ErrMalformed", in, id, err)
		}
	}
}

// TestSealedKeyIDNotAuthenticated shows why SealedKeyID is only a label:
// a value whose id was rewritten still reports the new id, and Open, which
// authenticates the id, refuses it.
func TestSealedKeyIDNotAuthenticated(t *testing.T) {
	kr := MustNew(t, testKey(2), testKey(1))
	old := MustNew(t, testKey(1))
	sealed, _ := old.Seal([]byte("secret"))
	idOld, idNew := keyring.KeyID(testKey(1)), keyring.KeyID(testKey(2))
	forged := "v1." + idNew + sealed[len("v1.")+len(idOld):]
	if got, _ := keyring.SealedKeyID(forged); got != idNew {
		t.Fatalf("SealedKeyID(forged) = %q, want %q", got, idNew)
	}
	if _, err := kr.Open(forged); !errors.Is(err, keyring.ErrAuth) {
		t.Errorf("Open(forged) err = %v, want ErrAuth", err)
	}
}
