package edge

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/tenon-dev/tenon"
)

// StorageOptions configure a Storage.
type StorageOptions struct {
	// Prefix namespaces the keys and locks in the store. Default
	// "certmagic/".
	Prefix string
	// Node names this process in lock owners, for people reading the
	// lock table. Default: random.
	Node string
	// LockTTL is the lease of a lock; a holder renews it at a third of
	// that while it works, so a node that dies blocks the others for at
	// most LockTTL. Default 2 minutes.
	LockTTL time.Duration
	// LockPoll is how often a waiting Lock tries again. Default 1s.
	LockPoll time.Duration
}

// Storage keeps certmagic's certificates, private keys, ACME accounts and
// locks in the tenon Store (through tenon.KVStore and tenon.Locker), so
// every node sharing the store shares them: a certificate is obtained
// once, by whichever node takes the lock first, and the others load it.
// Values are sealed by the store's SecretBox, private keys included.
type Storage struct {
	kv     tenon.KVStore
	locker tenon.Locker
	opts   StorageOptions

	mu   sync.Mutex
	held map[string]*heldLock // lock name → this process's holder
}

type heldLock struct {
	owner string
	stop  chan struct{}
	done  chan struct{}
}

var (
	_ certmagic.Storage          = (*Storage)(nil)
	_ certmagic.TryLocker        = (*Storage)(nil)
	_ certmagic.LockLeaseRenewer = (*Storage)(nil)
)

// NewStorage returns a Storage on store, which must implement
// tenon.KVStore and tenon.Locker (sqlite.Store and postgres.Store do).
func NewStorage(store tenon.Store, opts StorageOptions) (*Storage, error) {
	kv, ok := store.(tenon.KVStore)
	if !ok {
		return nil, fmt.Errorf("edge: the store (%T) cannot keep certificates: it does not implement tenon.KVStore", store)
	}
	locker, ok := store.(tenon.Locker)
	if !ok {
		return nil, fmt.Errorf("edge: the store (%T) cannot share locks: it does not implement tenon.Locker", store)
	}
	if opts.Prefix == "" {
		opts.Prefix = "certmagic/"
	}
	if opts.Node == "" {
		opts.Node = rand.Text()[:8]
	}
	if opts.LockTTL <= 0 {
		opts.LockTTL = 2 * time.Minute
	}
	if opts.LockPoll <= 0 {
		opts.LockPoll = time.Second
	}
	return &Storage{kv: kv, locker: locker, opts: opts, held: map[string]*heldLock{}}, nil
}

func (s *Storage) key(k string) string { return s.opts.Prefix + strings.Trim(k, "/") }

// notExist turns the store's ENOTFOUND into the error certmagic expects.
func notExist(err error) error {
	if tenon.ErrorCode(err) == tenon.ENOTFOUND {
		return fs.ErrNotExist
	}
	return err
}

// Store implements certmagic.Storage.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	return s.kv.PutKV(ctx, s.key(key), value)
}

// Load implements certmagic.Storage.
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	v, _, err := s.kv.GetKV(ctx, s.key(key))
	return v, notExist(err)
}

// Delete implements certmagic.Storage: the key and, as a directory,
// everything under it.
func (s *Storage) Delete(ctx context.Context, key string) error {
	if strings.Trim(key, "/") == "" {
		return errors.New("edge: refusing to delete the whole certificate storage")
	}
	if err := s.kv.DeleteKV(ctx, s.key(key)); err != nil {
		return err
	}
	_, err := s.kv.DeleteKVPrefix(ctx, s.key(key)+"/")
	return err
}

// Exists implements certmagic.Storage.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

// Stat implements certmagic.Storage.
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	info, err := s.kv.StatKV(ctx, s.key(key))
	if err == nil {
		return certmagic.KeyInfo{Key: key, Modified: info.Modified, Size: info.Size, IsTerminal: true}, nil
	}
	if tenon.ErrorCode(err) != tenon.ENOTFOUND {
		return certmagic.KeyInfo{}, err
	}
	under, err := s.kv.ListKV(ctx, s.key(key)+"/", "", 1)
	if err != nil {
		return certmagic.KeyInfo{}, err
	}
	if len(under) == 0 {
		return certmagic.KeyInfo{}, fs.ErrNotExist
	}
	return certmagic.KeyInfo{Key: key, Modified: under[0].Modified, IsTerminal: false}, nil
}

// List implements certmagic.Storage. Like a file system walk it returns
// directories as well as files: only the direct children of dir, or
// every key below it when recursive. An empty or missing dir is
// fs.ErrNotExist.
func (s *Storage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	dir = strings.Trim(dir, "/")
	prefix := s.opts.Prefix
	if dir != "" {
		prefix = s.key(dir) + "/"
	}
	seen := map[string]bool{}
	var out []string
	add := func(k string) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	after := ""
	for {
		page, err := s.kv.ListKV(ctx, prefix, after, tenon.MaxListLimit)
		if err != nil {
			return nil, err
		}
		for _, in := range page {
			rel := strings.TrimPrefix(in.Key, prefix)
			parts := strings.Split(rel, "/")
			if !recursive {
				parts = parts[:1]
			}
			// Every directory on the way down, then the key itself.
			for i := range parts {
				add(joinKey(dir, strings.Join(parts[:i+1], "/")))
			}
		}
		if len(page) < tenon.MaxListLimit {
			break
		}
		after = page[len(page)-1].Key
	}
	if len(out) == 0 {
		return nil, fs.ErrNotExist
	}
	slices.Sort(out)
	return out, nil
}

func joinKey(dir, rel string) string {
	if dir == "" {
		return rel
	}
	return dir + "/" + rel
}

// Lock implements certmagic.Locker: it waits until it holds name or ctx
// ends, then renews the lease in the background until Unlock.
func (s *Storage) Lock(ctx context.Context, name string) error {
	for {
		ok, err := s.TryLock(ctx, name)
		if err != nil || ok {
			return err
		}
		t := time.NewTimer(s.opts.LockPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// TryLock implements certmagic.TryLocker.
func (s *Storage) TryLock(ctx context.Context, name string) (bool, error) {
	// An owner per acquisition, not per node: two goroutines of one
	// process must exclude each other as two nodes do.
	owner := s.opts.Node + "/" + rand.Text()[:12]
	ok, err := s.locker.TryLock(ctx, s.key(name), owner, s.opts.LockTTL)
	if err != nil || !ok {
		return false, err
	}
	h := &heldLock{owner: owner, stop: make(chan struct{}), done: make(chan struct{})}
	s.mu.Lock()
	s.held[name] = h
	s.mu.Unlock()
	go s.renew(name, h)
	return true, nil
}

// renew extends the lease of a held lock until it is released.
func (s *Storage) renew(name string, h *heldLock) {
	defer close(h.done)
	t := time.NewTicker(s.opts.LockTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), s.opts.LockTTL/3)
			_, _ = s.locker.TryLock(ctx, s.key(name), h.owner, s.opts.LockTTL)
			cancel()
		}
	}
}

// RenewLockLease implements certmagic.LockLeaseRenewer: certmagic asks
// for a longer lease before a slow retry.
func (s *Storage) RenewLockLease(ctx context.Context, name string, lease time.Duration) error {
	s.mu.Lock()
	h := s.held[name]
	s.mu.Unlock()
	if h == nil {
		return fmt.Errorf("edge: lock %q is not held by this process", name)
	}
	ok, err := s.locker.TryLock(ctx, s.key(name), h.owner, max(lease, s.opts.LockTTL))
	if err == nil && !ok {
		err = fmt.Errorf("edge: lock %q was lost", name)
	}
	return err
}

// Unlock implements certmagic.Locker. Unlocking a lock this process does
// not hold (any more) does nothing.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	h := s.held[name]
	delete(s.held, name)
	s.mu.Unlock()
	if h == nil {
		// Already released, by Close during shutdown: nothing to do.
		return nil
	}
	close(h.stop)
	<-h.done
	return s.locker.Unlock(ctx, s.key(name), h.owner)
}

// Close releases every lock this process still holds, so other nodes need
// not wait for their leases to run out.
func (s *Storage) Close(ctx context.Context) error {
	s.mu.Lock()
	names := make([]string, 0, len(s.held))
	for n := range s.held {
		names = append(names, n)
	}
	s.mu.Unlock()
	var errs []error
	for _, n := range names {
		if err := s.Unlock(ctx, n); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// String describes the storage in certmagic's logs.
func (s *Storage) String() string { return "tenon store (" + s.opts.Prefix + ")" }
