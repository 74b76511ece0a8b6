package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/tenon-dev/tenon"
)

// RunBenchmarks runs the same benchmarks against any Store, so the figures
// of the two implementations compare like for like. open returns a fresh,
// empty store that the benchmark may fill.
func RunBenchmarks(b *testing.B, open func(*testing.B) tenon.Store) {
	b.Run("InstallationGet", func(b *testing.B) { benchInstallationGet(b, open) })
	b.Run("InstallationGetParallel", func(b *testing.B) { benchInstallationGetParallel(b, open) })
	b.Run("PutValue", func(b *testing.B) { benchPutValue(b, open) })
	b.Run("GetValue", func(b *testing.B) { benchGetValue(b, open) })
	b.Run("GetValueParallel", func(b *testing.B) { benchGetValueParallel(b, open) })
	b.Run("Enqueue", func(b *testing.B) { benchEnqueue(b, open, false) })
	b.Run("EnqueueParallel", func(b *testing.B) { benchEnqueue(b, open, true) })
	b.Run("ClaimComplete", func(b *testing.B) { benchClaimComplete(b, open) })
}

// benchInstallationGet measures the lookup every authenticated request
// makes (before any cache): one row read and two decryptions.
func benchInstallationGet(b *testing.B, open func(*testing.B) tenon.Store) {
	s := open(b)
	ctx := context.Background()
	if err := s.SaveInstallation(ctx, NewInstallation("tenant-a")); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Installation(ctx, "tenant-a"); err != nil {
			b.Fatal(err)
		}
	}
}

func benchInstallationGetParallel(b *testing.B, open func(*testing.B) tenon.Store) {
	s := open(b)
	ctx := context.Background()
	if err := s.SaveInstallation(ctx, NewInstallation("tenant-a")); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Installation(ctx, "tenant-a"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// benchPutValue measures a durable write: each call commits on its own.
func benchPutValue(b *testing.B, open func(*testing.B) tenon.Store) {
	s := open(b)
	ctx := context.Background()
	value := []byte(`{"issue":"PROJ-123","votes":42,"tags":["a","b","c"]}`)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := s.PutValue(ctx, "tenant-a", fmt.Sprintf("issue/%08d", i%1000), value); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func benchGetValue(b *testing.B, open func(*testing.B) tenon.Store) {
	s := open(b)
	ctx := context.Background()
	value := []byte(`{"issue":"PROJ-123","votes":42,"tags":["a","b","c"]}`)
	for i := range 1000 {
		if err := s.PutValue(ctx, "tenant-a", fmt.Sprintf("issue/%08d", i), value); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.GetValue(ctx, "tenant-a", fmt.Sprintf("issue/%08d", i%1000)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func benchGetValueParallel(b *testing.B, open func(*testing.B) tenon.Store) {
	s := open(b)
	ctx := context.Background()
	if err := s.PutValue(ctx, "tenant-a", "settings", []byte(`{"theme":"dark"}`)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.GetValue(ctx, "tenant-a", "settings"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
