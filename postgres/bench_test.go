package postgres_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/tenon-dev/tenon/storetest"
)

// BenchmarkInstallationGet measures the lookup every authenticated request
// makes (before any cache): one row read and two decryptions.
func BenchmarkInstallationGet(b *testing.B) {
	s := MustOpen(b, nil)
	ctx := context.Background()
	if err := s.SaveInstallation(ctx, storetest.NewInstallation("tenant-a")); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Installation(ctx, "tenant-a"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInstallationGetParallel(b *testing.B) {
	s := MustOpen(b, nil)
	ctx := context.Background()
	if err := s.SaveInstallation(ctx, storetest.NewInstallation("tenant-a")); err != nil {
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

// BenchmarkPutValue measures a durable write: each call commits on its own.
func BenchmarkPutValue(b *testing.B) {
	s := MustOpen(b, nil)
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

func BenchmarkGetValue(b *testing.B) {
	s := MustOpen(b, nil)
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

func BenchmarkGetValueParallel(b *testing.B) {
	s := MustOpen(b, nil)
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
