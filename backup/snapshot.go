package backup

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/tenon-dev/tenon/keyring"
)

// Manager takes, lists, prunes and restores snapshots of one store at one
// target. A snapshot is a consistent copy of the database, gzip-compressed
// and encrypted with age to a key derived from the key file (so the key
// file is the one secret to escrow), stored as NAME.db.gz.age beside a
// manifest NAME.json that records its SHA-256, size, engine, the key that
// encrypted it and the row counts it holds. The manifest is written last:
// a listed snapshot is a complete one.
type Manager struct {
	Engine Engine
	Target *Target
	Keys   *keyring.Keyring
	// Retention is applied by Prune; the zero value keeps only the newest.
	Retention Retention
	// TempDir holds the plain copy while it is compressed and encrypted,
	// and restores before they are moved in place; default os.TempDir().
	TempDir string
	Now     func() time.Time
	Logger  *slog.Logger
	// Progress, when set, is given the length of each transfer and
	// returns a writer that is told the bytes as they pass.
	Progress func(label string, total int64) io.Writer
}

// Manifest describes one snapshot.
type Manifest struct {
	Name      string    `json:"name"`
	Kind      string    `json:"kind"`
	CreatedAt time.Time `json:"created_at"`
	Object    string    `json:"object"`
	Size      int64     `json:"size"`
	SHA256    string    `json:"sha256"`
	KeyID     string    `json:"key_id"`
	// PlainSize is the size of the database copy before compression.
	PlainSize   int64            `json:"plain_size"`
	Tables      map[string]int64 `json:"tables"`
	NewestWrite time.Time        `json:"newest_write"`
	// VerifiedAt is when the stored object was read back and matched
	// SHA256; zero when that never happened.
	VerifiedAt time.Time `json:"verified_at,omitzero"`
}

const (
	manifestSuffix = ".json"
	objectSuffix   = ".db.gz.age"
	nameLayout     = "20060102T150405Z"
	keyPurpose     = "backup encryption"
)

func (m *Manager) now() time.Time {
	if m.Now == nil {
		return time.Now()
	}
	return m.Now()
}

func (m *Manager) logger() *slog.Logger {
	if m.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Logger
}

func (m *Manager) progress(label string, total int64) io.Writer {
	if m.Progress == nil {
		return io.Discard
	}
	return m.Progress(label, total)
}

func (m *Manager) tempDir() string {
	if m.TempDir == "" {
		return os.TempDir()
	}
	return m.TempDir
}

// passphrase turns a derived key into an age scrypt passphrase. The key
// is already 256 random bits, so scrypt's work factor is kept low.
func passphrase(k keyring.DerivedKey) string { return base64.StdEncoding.EncodeToString(k.Key) }

// Snapshot takes a snapshot now, stores it and reads it back.
func (m *Manager) Snapshot(ctx context.Context) (*Manifest, error) {
	keys, err := m.Keys.DerivedKeys(keyPurpose)
	if err != nil {
		return nil, err
	}
	bucket, err := m.Target.objects(ctx, "snapshots")
	if err != nil {
		return nil, err
	}
	created := m.now().UTC().Truncate(time.Second)
	man := &Manifest{Name: created.Format(nameLayout), Kind: m.Engine.Kind(), CreatedAt: created, KeyID: keys[0].ID}
	man.Object = man.Name + objectSuffix

	work, err := os.MkdirTemp(m.tempDir(), "tenon-snapshot-")
	if err != nil {
		return nil, fmt.Errorf("scratch directory for the snapshot: %w (set a writable temporary directory)", err)
	}
	defer os.RemoveAll(work)
	plain := filepath.Join(work, "copy.db")
	if err := m.Engine.SnapshotTo(ctx, plain); err != nil {
		return nil, fmt.Errorf("consistent copy: %w", err)
	}
	insp, err := m.Engine.Inspect(ctx, plain, false)
	if err != nil {
		return nil, fmt.Errorf("the copy fails its own check, so it is not stored: %w", err)
	}
	man.Tables, man.NewestWrite = insp.Tables, insp.NewestWrite

	enc := filepath.Join(work, man.Object)
	if man.PlainSize, man.Size, man.SHA256, err = m.seal(plain, enc, keys[0]); err != nil {
		return nil, err
	}
	f, err := os.Open(enc)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := bucket.Put(ctx, man.Object, readSeeker{f, m.progress("upload "+man.Object, man.Size)}); err != nil {
		return nil, fmt.Errorf("store snapshot: %w (check the target is reachable and writable)", err)
	}
	if err := m.verifyObject(ctx, bucket, man); err != nil {
		return nil, fmt.Errorf("read back %s: %w", man.Object, err)
	}
	man.VerifiedAt = m.now().UTC()
	raw, _ := json.MarshalIndent(man, "", "  ")
	if err := bucket.Put(ctx, man.Name+manifestSuffix, bytes.NewReader(raw)); err != nil {
		return nil, fmt.Errorf("store manifest: %w", err)
	}
	m.logger().Info("snapshot stored", "name", man.Name, "size", man.Size, "target", m.Target.String())
	return man, nil
}

// seal compresses and encrypts plain into enc, returning the plain size,
// the encrypted size and its SHA-256.
func (m *Manager) seal(plain, enc string, key keyring.DerivedKey) (int64, int64, string, error) {
	in, err := os.Open(plain)
	if err != nil {
		return 0, 0, "", err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return 0, 0, "", err
	}
	out, err := os.OpenFile(enc, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, 0, "", err
	}
	defer out.Close()
	rcpt, err := age.NewScryptRecipient(passphrase(key))
	if err != nil {
		return 0, 0, "", err
	}
	rcpt.SetWorkFactor(10)
	sum := sha256.New()
	counted := &countWriter{w: io.MultiWriter(out, sum)}
	aw, err := age.Encrypt(counted, rcpt)
	if err != nil {
		return 0, 0, "", fmt.Errorf("encrypt: %w", err)
	}
	zw := gzip.NewWriter(aw)
	if _, err := io.Copy(zw, io.TeeReader(in, m.progress("compress and encrypt", st.Size()))); err != nil {
		return 0, 0, "", fmt.Errorf("encrypt: %w", err)
	}
	if err := zw.Close(); err != nil {
		return 0, 0, "", err
	}
	if err := aw.Close(); err != nil {
		return 0, 0, "", err
	}
	if err := out.Sync(); err != nil {
		return 0, 0, "", err
	}
	return st.Size(), counted.n, hex.EncodeToString(sum.Sum(nil)), nil
}

func (m *Manager) verifyObject(ctx context.Context, bucket Bucket, man *Manifest) error {
	rc, err := bucket.Get(ctx, man.Object)
	if err != nil {
		return err
	}
	defer rc.Close()
	sum := sha256.New()
	n, err := io.Copy(sum, rc)
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != man.SHA256 || n != man.Size {
		return fmt.Errorf("%w: %s has SHA-256 %s (%d bytes), its manifest says %s (%d bytes); take a new snapshot and check the target's storage", ErrBroken, man.Object, got, n, man.SHA256, man.Size)
	}
	return nil
}

// List returns the snapshots at the target, newest first.
func (m *Manager) List(ctx context.Context) ([]*Manifest, error) {
	bucket, err := m.Target.objects(ctx, "snapshots")
	if err != nil {
		return nil, err
	}
	objs, err := bucket.List(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Manifest
	for _, o := range objs {
		if !strings.HasSuffix(o.Name, manifestSuffix) {
			continue
		}
		man, err := m.manifest(ctx, bucket, strings.TrimSuffix(o.Name, manifestSuffix))
		if err != nil {
			return nil, err
		}
		out = append(out, man)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out, nil
}

func (m *Manager) manifest(ctx context.Context, bucket Bucket, name string) (*Manifest, error) {
	if strings.ContainsAny(name, `/\`) || name == "" {
		return nil, fmt.Errorf("%q is not a snapshot name; see tenon backup list", name)
	}
	rc, err := bucket.Get(ctx, name+manifestSuffix)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: no snapshot %q at %s; see tenon backup list", ErrNoBackup, name, m.Target)
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var man Manifest
	if err := json.NewDecoder(io.LimitReader(rc, 1<<20)).Decode(&man); err != nil {
		return nil, fmt.Errorf("%w: manifest of %s is unreadable: %v", ErrBroken, name, err)
	}
	return &man, nil
}

// Prune deletes the snapshots that Retention does not keep and returns
// their names. A snapshot is deleted manifest first, so a half-done prune
// leaves an unlisted object, never a listed snapshot without data.
func (m *Manager) Prune(ctx context.Context) ([]string, error) {
	list, err := m.List(ctx)
	if err != nil {
		return nil, err
	}
	byTime := map[time.Time][]*Manifest{}
	var times []time.Time
	for _, man := range list {
		if len(byTime[man.CreatedAt]) == 0 {
			times = append(times, man.CreatedAt)
		}
		byTime[man.CreatedAt] = append(byTime[man.CreatedAt], man)
	}
	_, drop := Prune(times, m.now(), m.Retention)
	bucket, err := m.Target.objects(ctx, "snapshots")
	if err != nil {
		return nil, err
	}
	var deleted []string
	for _, t := range drop {
		for _, man := range byTime[t] {
			if err := bucket.Delete(ctx, man.Name+manifestSuffix); err != nil {
				return deleted, err
			}
			if err := bucket.Delete(ctx, man.Object); err != nil {
				return deleted, err
			}
			deleted = append(deleted, man.Name)
		}
	}
	return deleted, nil
}

// Verify downloads a snapshot and checks it against its manifest.
func (m *Manager) Verify(ctx context.Context, name string) error {
	bucket, err := m.Target.objects(ctx, "snapshots")
	if err != nil {
		return err
	}
	man, err := m.manifest(ctx, bucket, name)
	if err != nil {
		return err
	}
	return m.verifyObject(ctx, bucket, man)
}

// RestoreSnapshot writes the database of snapshot name (the newest when
// empty) to to, which must not exist. The download is checked against
// the manifest's SHA-256 and the copy against the engine's integrity
// check before it is moved into place.
func (m *Manager) RestoreSnapshot(ctx context.Context, name, to string) (*Manifest, error) {
	if _, err := os.Stat(to); err == nil {
		return nil, fmt.Errorf("%s exists; restore to a new path, or move it away first", to)
	}
	bucket, err := m.Target.objects(ctx, "snapshots")
	if err != nil {
		return nil, err
	}
	if name == "" {
		list, err := m.List(ctx)
		if err != nil {
			return nil, err
		}
		if len(list) == 0 {
			return nil, fmt.Errorf("%w: no snapshots at %s; take one with tenon backup", ErrNoBackup, m.Target)
		}
		name = list[0].Name
	}
	man, err := m.manifest(ctx, bucket, name)
	if err != nil {
		return nil, err
	}
	if man.Kind != m.Engine.Kind() {
		return nil, fmt.Errorf("snapshot %s is a %s snapshot; this store is %s", name, man.Kind, m.Engine.Kind())
	}
	ids, err := m.identities(man)
	if err != nil {
		return nil, err
	}
	rc, err := bucket.Get(ctx, man.Object)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: the data of snapshot %s is missing at %s; restore an older snapshot", ErrBroken, name, m.Target)
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tmp := to + ".restoring"
	os.Remove(tmp)
	defer os.Remove(tmp)
	sum := sha256.New()
	src := io.TeeReader(io.TeeReader(rc, sum), m.progress("download "+man.Object, man.Size))
	plain, err := age.Decrypt(src, ids...)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			return nil, fmt.Errorf("%w: snapshot %s was encrypted with the key %s of a key file; restore that key file from escrow and pass it with --secret-key-file", ErrWrongKey, name, man.KeyID)
		}
		return nil, fmt.Errorf("%w: snapshot %s: %v", ErrBroken, name, err)
	}
	if err := writeGunzip(tmp, plain); err != nil {
		return nil, fmt.Errorf("%w: snapshot %s does not decrypt or decompress (%v); check its checksum with tenon backup list --verify, or restore an older one", ErrBroken, name, err)
	}
	if _, err := io.Copy(sum, rc); err != nil { // trailing bytes, if any, count too
		return nil, err
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != man.SHA256 {
		return nil, fmt.Errorf("%w: checksum mismatch: snapshot %s has SHA-256 %s, its manifest says %s; restore an older snapshot and check the target's storage", ErrBroken, name, got, man.SHA256)
	}
	if _, err := m.Engine.Inspect(ctx, tmp, false); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, to); err != nil {
		return nil, fmt.Errorf("move restored database into place: %w", err)
	}
	return man, nil
}

// identities are the age identities of every key in the key file, so a
// snapshot taken before a key rotation still opens. A manifest naming a
// key that is not in the file fails early with the reason.
func (m *Manager) identities(man *Manifest) ([]age.Identity, error) {
	keys, err := m.Keys.DerivedKeys(keyPurpose)
	if err != nil {
		return nil, err
	}
	var ids []age.Identity
	found := false
	var have []string
	for _, k := range keys {
		have = append(have, k.ID)
		found = found || k.ID == man.KeyID
		id, err := age.NewScryptIdentity(passphrase(k))
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	if !found {
		return nil, fmt.Errorf("%w: snapshot %s was encrypted with key %s, and the key file holds %s; restore the key file in use at %s from escrow and pass it with --secret-key-file", ErrWrongKey, man.Name, man.KeyID, strings.Join(have, ", "), man.CreatedAt.Format(time.RFC3339))
	}
	return ids, nil
}

func writeGunzip(path string, r io.Reader) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, zr); err != nil {
		f.Close()
		return err
	}
	if err := zr.Close(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// readSeeker reports reads of an upload to a progress writer.
type readSeeker struct {
	f        *os.File
	progress io.Writer
}

func (r readSeeker) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	r.progress.Write(p[:n])
	return n, err
}

func (r readSeeker) Seek(off int64, whence int) (int64, error) { return r.f.Seek(off, whence) }
