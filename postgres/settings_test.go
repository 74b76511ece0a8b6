package postgres_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/tenon-dev/tenon"
)

// A setting changed on one node is reported to the others' watches, and a
// change in another deployment's schema is not.
func TestWatchSettings(t *testing.T) {
	dsn := MustSchema(t)
	a := MustOpenDSN(t, dsn, nil)
	b := MustOpenDSN(t, dsn, nil)
	other := MustOpen(t, nil)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 100)
	done := make(chan error, 1)
	go func() { done <- b.WatchSettings(ctx, func(name string) { got <- name }) }()

	put := func(st interface {
		PutSetting(context.Context, string, json.RawMessage) error
	}, name string) {
		t.Helper()
		if err := st.PutSetting(context.Background(), name, json.RawMessage(`{"message":"x"}`)); err != nil {
			t.Fatal(err)
		}
	}
	// Once listening, the watch says every setting is stale ("").
	select {
	case name := <-got:
		if name != "" {
			t.Fatalf("first report %q, want \"\" once listening", name)
		}
	case err := <-done:
		t.Fatalf("watch ended early: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("the watch did not report that it listens")
	}
	deadline := time.After(15 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	put(a, tenon.SettingMaintenance)
wait:
	for {
		select {
		case name := <-got:
			if name != tenon.SettingMaintenance {
				t.Fatalf("reported %q", name)
			}
			break wait
		case <-tick.C:
			put(a, tenon.SettingMaintenance)
		case err := <-done:
			t.Fatalf("watch ended early: %v", err)
		case <-deadline:
			t.Fatal("no notification for the maintenance setting")
		}
	}
	for len(got) > 0 {
		<-got
	}
	put(other, "notice")
	if err := a.DeleteSetting(context.Background(), tenon.SettingMaintenance); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case name := <-got:
			if name == "notice" {
				t.Fatal("a change in another schema was reported")
			}
			if name == tenon.SettingMaintenance {
				cancel()
				if err := <-done; err != nil {
					t.Fatalf("watch ended with %v", err)
				}
				return
			}
		case <-time.After(15 * time.Second):
			t.Fatal("the delete was not reported")
		}
	}
}
