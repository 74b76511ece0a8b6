package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/tenon-dev/tenon"
)

// testUpdate checks tenon.ValueUpdater: a read-modify-write that loses no
// update, run from two stores on one database (two nodes) at once.
func (s *suite) testUpdate(t *testing.T) {
	st, c := s.store(t)
	u, ok := st.(tenon.ValueUpdater)
	if !ok {
		t.Skipf("%T does not implement tenon.ValueUpdater", st)
	}
	ctx := context.Background()

	t.Run("ChangesCreatesAndDeletes", func(t *testing.T) {
		add := func(old json.RawMessage) (json.RawMessage, error) {
			n := 0
			if old != nil {
				if err := json.Unmarshal(old, &n); err != nil {
					return nil, err
				}
			}
			return json.RawMessage(strconv.Itoa(n + 1)), nil
		}
		for range 3 {
			if err := u.UpdateValue(ctx, "tenant-u", "n", add); err != nil {
				t.Fatal(err)
			}
		}
		if got, _ := st.GetValue(ctx, "tenant-u", "n"); string(got) != "3" {
			t.Fatalf("after 3 updates from nothing: %s", got)
		}
		if err := u.UpdateValue(ctx, "tenant-u", "n", func(json.RawMessage) (json.RawMessage, error) { return nil, nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := st.GetValue(ctx, "tenant-u", "n"); tenon.ErrorCode(err) != tenon.ENOTFOUND {
			t.Fatalf("an update returning nil did not delete: %v", err)
		}
	})

	t.Run("RefusalsStoreNothing", func(t *testing.T) {
		if err := st.PutValue(ctx, "tenant-u", "kept", json.RawMessage(`{"v":1}`)); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("the handler gave up")
		for name, tc := range map[string]struct {
			fn   func(json.RawMessage) (json.RawMessage, error)
			want func(error) bool
		}{
			"fn fails":     {func(json.RawMessage) (json.RawMessage, error) { return json.RawMessage(`2`), boom }, func(err error) bool { return errors.Is(err, boom) }},
			"unchanged":    {func(json.RawMessage) (json.RawMessage, error) { return json.RawMessage(`3`), tenon.ErrUnchanged }, func(err error) bool { return err == nil }},
			"invalid JSON": {func(json.RawMessage) (json.RawMessage, error) { return json.RawMessage(`{`), nil }, func(err error) bool { return tenon.ErrorCode(err) == tenon.EINVALID }},
		} {
			err := u.UpdateValue(ctx, "tenant-u", "kept", tc.fn)
			if !tc.want(err) {
				t.Errorf("%s: %v", name, err)
			}
			if got, _ := st.GetValue(ctx, "tenant-u", "kept"); !bytes.Equal(got, []byte(`{"v":1}`)) {
				t.Errorf("%s: the value changed to %s", name, got)
			}
		}
		if err := u.UpdateValue(ctx, "tenant-u", "", func(json.RawMessage) (json.RawMessage, error) { return json.RawMessage(`1`), nil }); tenon.ErrorCode(err) != tenon.EINVALID {
			t.Errorf("an empty key: %v", err)
		}
	})

	t.Run("TwoNodesLoseNothing", func(t *testing.T) {
		nodes := []tenon.ValueUpdater{u}
		if s.opts.Reopen != nil {
			other, ok := s.reopen(t, st, c, resealKeyA).(tenon.ValueUpdater)
			if !ok {
				t.Fatal("the reopened store is no ValueUpdater")
			}
			nodes = append(nodes, other)
		}
		const workers, each = 8, 15
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			node := nodes[w%len(nodes)]
			wg.Go(func() {
				for i := range each {
					err := node.UpdateValue(ctx, "tenant-u", "list", func(old json.RawMessage) (json.RawMessage, error) {
						var items []string
						if old != nil {
							if err := json.Unmarshal(old, &items); err != nil {
								return nil, err
							}
						}
						items = append(items, strconv.Itoa(w)+"/"+strconv.Itoa(i))
						return json.Marshal(items)
					})
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		raw, err := st.GetValue(ctx, "tenant-u", "list")
		if err != nil {
			t.Fatal(err)
		}
		var items []string
		if err := json.Unmarshal(raw, &items); err != nil {
			t.Fatal(err)
		}
		if len(items) != workers*each {
			t.Fatalf("%d of %d updates survived: updates from %d nodes were lost", len(items), workers*each, len(nodes))
		}
	})
}
