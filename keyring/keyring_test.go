package keyring_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tenon-dev/tenon/keyring"
)

// testKey returns a deterministic 32-byte key filled with b.
func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, keyring.KeySize) }

func line(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

// MustNew returns a keyring of keys or fails tb.
func MustNew(tb testing.TB, keys ...[]byte) *keyring.Keyring {
	tb.Helper()
	kr, err := keyring.New(keys...)
	if err != nil {
		tb.Fatal(err)
	}
	return kr
}

func TestSealOpenRoundTrip(t *testing.T) {
	kr := MustNew(t, testKey(1))
	for _, plain := range [][]byte{nil, []byte("s3cret"), bytes.Repeat([]byte{0, 0xff}, 5000)} {
		sealed, err := kr.Seal(plain)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(sealed, "v1."+keyring.KeyID(testKey(1))+".") {
			t.Errorf("sealed = %q, want prefix v1.<key id>.", sealed)
		}
		if len(plain) > 0 && strings.Contains(sealed, string(plain)) {
			t.Errorf("sealed value contains the plaintext")
		}
		got, err := kr.Open(sealed)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, plain) {
			t.Errorf("Open = %q, want %q", got, plain)
		}
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	kr := MustNew(t, testKey(1))
	a, _ := kr.Seal([]byte("x"))
	b, _ := kr.Seal([]byte("x"))
	if a == b {
		t.Fatal("two seals of the same plaintext are identical")
	}
}

func TestSealUsesInjectedRand(t *testing.T) {
	kr := MustNew(t, testKey(1))
	kr.Rand = bytes.NewReader(make([]byte, 24))
	a, err := kr.Seal([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := kr.Seal([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Error("the same nonce source gave different output")
	}
	if _, err := kr.Seal([]byte("x")); err == nil {
		t.Error("Seal with an exhausted nonce source succeeded")
	}
}

func TestRotation(t *testing.T) {
	oldKR := MustNew(t, testKey(1))
	oldSealed, err := oldKR.Seal([]byte("old"))
	if err != nil {
		t.Fatal(err)
	}

	// The operator prepends a new key and restarts.
	rotated, err := keyring.Parse([]byte("# rotated\n" + line(testKey(2)) + "\n\n" + line(testKey(1)) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := rotated.Open(oldSealed)
	if err != nil || string(got) != "old" {
		t.Fatalf("Open(old) = %q, %v", got, err)
	}
	newSealed, err := rotated.Seal([]byte("new"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1." + keyring.KeyID(testKey(2)) + "."; !strings.HasPrefix(newSealed, want) {
		t.Errorf("new value %q not sealed with the new key (%s)", newSealed, want)
	}
	if ids := rotated.KeyIDs(); len(ids) != 2 || ids[0] != keyring.KeyID(testKey(2)) {
		t.Errorf("KeyIDs = %v", ids)
	}

	// A process still on the old key file cannot read the new value, and
	// says why.
	if _, err := oldKR.Open(newSealed); !errors.Is(err, keyring.ErrUnknownKey) {
		t.Errorf("old keyring opening new value: err = %v, want ErrUnknownKey", err)
	}
}

func TestOpenRefuses(t *testing.T) {
	kr := MustNew(t, testKey(1))
	sealed, err := kr.Seal([]byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	prefix := sealed[:strings.LastIndex(sealed, ".")+1]
	body := sealed[len(prefix):]
	raw, _ := base64.RawURLEncoding.DecodeString(body)
	flipped := append([]byte(nil), raw...)
	flipped[len(flipped)-1] ^= 1
	otherID := keyring.KeyID(testKey(9))

	tests := []struct {
		name   string
		sealed string
		want   error
	}{
		{"empty", "", keyring.ErrMalformed},
		{"no dots", "garbage", keyring.ErrMalformed},
		{"unknown version", "v2" + sealed[2:], keyring.ErrMalformed},
		{"unknown key", "v1." + otherID + "." + body, keyring.ErrUnknownKey},
		{"bad base64", prefix + "!!!", keyring.ErrMalformed},
		{"too short", prefix + "AAAA", keyring.ErrMalformed},
		{"tampered ciphertext", prefix + base64.RawURLEncoding.EncodeToString(flipped), keyring.ErrAuth},
		{"truncated", prefix + base64.RawURLEncoding.EncodeToString(raw[:len(raw)-1]), keyring.ErrAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := kr.Open(tt.sealed)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open = %q, %v; want %v", got, err, tt.want)
			}
			if got != nil {
				t.Errorf("Open returned plaintext %q with an error", got)
			}
		})
	}
}

func TestOpenRefusesWrongKeyWithSameID(t *testing.T) {
	// A value whose key id is relabelled to another key of the ring must
	// not open: the id is authenticated and the key differs.
	kr := MustNew(t, testKey(1), testKey(2))
	other := MustNew(t, testKey(2))
	sealed, err := other.Seal([]byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	relabelled := "v1." + keyring.KeyID(testKey(1)) + sealed[strings.LastIndex(sealed, "."):]
	if _, err := kr.Open(relabelled); !errors.Is(err, keyring.ErrAuth) {
		t.Errorf("err = %v, want ErrAuth", err)
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := keyring.New(); err == nil {
		t.Error("New() with no keys succeeded")
	}
	if _, err := keyring.New(make([]byte, 16)); err == nil || !strings.Contains(err.Error(), "16 bytes") {
		t.Errorf("short key: err = %v", err)
	}
	if _, err := keyring.New(testKey(1), testKey(1)); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("duplicate key: err = %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	secretish := line(testKey(7))[:20] // looks like key material
	tests := []struct {
		name, file, want string
	}{
		{"empty", "", "no keys"},
		{"only comments", "# a\n\n   \n#b\n", "no keys"},
		{"not base64", "# header\n" + secretish + "!\n", "line 2: not a base64 key"},
		{"short key", line(testKey(1)) + "\n" + line(make([]byte, 31)) + "\n", "line 2: key is 31 bytes, want 32"},
		{"url encoding", strings.NewReplacer("+", "-", "/", "_").Replace(line([]byte{0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff, 0xfe, 0xfb, 0xff})), "line 1: not a base64 key"},
		{"duplicate", line(testKey(1)) + "\n" + line(testKey(1)), "line 2: key id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := keyring.Parse([]byte(tt.file))
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secretish) {
				t.Errorf("error message echoes the line: %q", err)
			}
		})
	}
}

func TestParseAcceptsCRLFAndSpaces(t *testing.T) {
	kr, err := keyring.Parse([]byte("  " + line(testKey(1)) + "  \r\n# old\r\n" + line(testKey(2)) + "\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := kr.KeyIDs(); len(got) != 2 || got[0] != keyring.KeyID(testKey(1)) {
		t.Errorf("KeyIDs = %v", got)
	}
}

func TestGenerate(t *testing.T) {
	l, err := keyring.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.Parse([]byte(l + "\n"))
	if err != nil {
		t.Fatalf("a generated line does not parse: %v", err)
	}
	if len(kr.KeyIDs()) != 1 {
		t.Error("want one key")
	}
	l2, _ := keyring.Generate(nil)
	if l == l2 {
		t.Error("two generated keys are equal")
	}

	fixed, err := keyring.Generate(bytes.NewReader(testKey(3)))
	if err != nil || fixed != line(testKey(3)) {
		t.Errorf("Generate(fixed) = %q, %v", fixed, err)
	}
	if _, err := keyring.Generate(bytes.NewReader(make([]byte, 5))); err == nil {
		t.Error("Generate with too little randomness succeeded")
	}
}

func writeKeyFile(t *testing.T, content string, perm os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode is filtered by the umask; set it exactly.
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoad(t *testing.T) {
	path := writeKeyFile(t, line(testKey(1))+"\n", 0o600)
	kr, err := keyring.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := kr.KeyIDs(); len(got) != 1 || got[0] != keyring.KeyID(testKey(1)) {
		t.Errorf("KeyIDs = %v", got)
	}
	// Group access is allowed: root-owned files shared with the service group.
	if _, err := keyring.Load(writeKeyFile(t, line(testKey(1)), 0o640)); err != nil {
		t.Errorf("mode 0640: %v", err)
	}
}

func TestLoadRefusesFileOthersCanRead(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions")
	}
	path := writeKeyFile(t, line(testKey(1))+"\n", 0o644)
	_, err := keyring.Load(path)
	if err == nil {
		t.Fatal("Load of a world-readable key file succeeded")
	}
	if want := "chmod 600 " + path; !strings.Contains(err.Error(), want) {
		t.Errorf("err = %q, want it to say %q", err, want)
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := keyring.Load(filepath.Join(t.TempDir(), "missing")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
	if _, err := keyring.Load(t.TempDir()); err == nil {
		t.Error("Load of a directory succeeded")
	}
	path := writeKeyFile(t, "# nothing yet\n", 0o600)
	if _, err := keyring.Load(path); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "no keys") {
		t.Errorf("empty file: err = %v, want path and reason", err)
	}
}

func TestZeroKeyringDoesNotPanic(t *testing.T) {
	var kr keyring.Keyring
	if _, err := kr.Seal([]byte("x")); err == nil {
		t.Error("Seal on a zero Keyring succeeded")
	}
	if _, err := kr.Open("v1.00000000.AAAA"); !errors.Is(err, keyring.ErrUnknownKey) {
		t.Errorf("Open on a zero Keyring: %v", err)
	}
}
