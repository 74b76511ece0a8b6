package server_test

import (
	"context"
	"testing"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/server"
	"github.com/tenon-dev/tenon/sqlite"
)

// watchingStore adds change notifications to the SQLite store, as a store
// shared by several nodes reports them.
type watchingStore struct {
	*sqlite.Store
	events chan string
	acked  chan struct{}
}

func (w *watchingStore) WatchInstallations(ctx context.Context, fn func(clientKey string)) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case k := <-w.events:
			fn(k)
			w.acked <- struct{}{}
		}
	}
}

var _ tenon.InstallationWatcher = (*watchingStore)(nil)

func TestWatchInvalidatesChangedTenants(t *testing.T) {
	ws := &watchingStore{events: make(chan string), acked: make(chan struct{})}
	e := newEnv(t, func(c *server.Config) {
		ws.Store = c.Store.(*sqlite.Store)
		c.Store = ws
	})
	e.install("client-a", "secret-a")
	tok := e.tenantToken("client-a", "secret-a", "GET", "/page")
	if r := e.get("/page", tok); r.status != 200 {
		t.Fatal(r.status)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Watch(ctx) }()

	// Another node disables the tenant and the store reports it.
	if _, err := e.store.SetState(context.Background(), "client-a", tenon.StateDisabled); err != nil {
		t.Fatal(err)
	}
	ws.events <- "client-a"
	<-ws.acked
	if r := e.get("/page", tok); r.status != 403 {
		t.Fatalf("after watch event: %d", r.status)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch: %v", err)
	}
}
