package storetest

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	b.Run("GetValueRequestContext", func(b *testing.B) { benchGetValueRequestContext(b, open) })
	b.Run("GetValueTail", func(b *testing.B) { benchGetValueTail(b, open, false) })
	b.Run("GetValueTailWithWriter", func(b *testing.B) { benchGetValueTail(b, open, true) })
	b.Run("SaveInstallation8", func(b *testing.B) { benchSaveInstallations(b, open, 8) })
	b.Run("SaveInstallation64", func(b *testing.B) { benchSaveInstallations(b, open, 64) })
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

// benchValues stores n values under tenant-a, keys issue/00000000 on.
func benchValues(b *testing.B, s tenon.Store, n int) {
	b.Helper()
	value := []byte(`{"issue":"PROJ-123","votes":42,"tags":["a","b","c"]}`)
	for i := range n {
		if err := s.PutValue(context.Background(), "tenant-a", fmt.Sprintf("issue/%08d", i), value); err != nil {
			b.Fatal(err)
		}
	}
}

// benchGetValueRequestContext is GetValue as a request handler makes it:
// under a context that can be cancelled (a request's), which drivers
// watch during the call, unlike context.Background.
func benchGetValueRequestContext(b *testing.B, open func(*testing.B) tenon.Store) {
	s := open(b)
	benchValues(b, s, 1000)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("issue/%08d", i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.GetValue(ctx, "tenant-a", keys[i%len(keys)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// benchGetValueTail reads from many more goroutines than there are
// processors, as a server under load does, each call under its own
// cancellable context, and reports the latency percentiles of a call:
// a store that makes callers queue unfairly shows it in p99, not ns/op.
// withWriter adds a steady stream of durable writes alongside.
func benchGetValueTail(b *testing.B, open func(*testing.B) tenon.Store, withWriter bool) {
	s := open(b)
	benchValues(b, s, 1000)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("issue/%08d", i)
	}
	stop := make(chan struct{})
	var writer sync.WaitGroup
	if withWriter {
		writer.Go(func() {
			value := []byte(`{"issue":"PROJ-123","votes":43}`)
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				if err := s.PutValue(context.Background(), "tenant-a", keys[i%len(keys)], value); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	var mu sync.Mutex
	var all []time.Duration
	var seq atomic.Int64
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		lat := make([]time.Duration, 0, 1024)
		i := int(seq.Add(1)) * 7919
		for pb.Next() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			start := time.Now()
			_, err := s.GetValue(ctx, "tenant-a", keys[i%len(keys)])
			lat = append(lat, time.Since(start))
			cancel()
			if err != nil {
				b.Error(err)
				return
			}
			i++
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	b.StopTimer()
	close(stop)
	writer.Wait()
	reportPercentiles(b, all)
}

// reportPercentiles adds p50, p99 and p99.9 of lat, in µs, to b's result.
func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))]) / float64(time.Microsecond)
	}
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
	b.ReportMetric(at(0.999), "p99.9-µs")
}

// benchSaveInstallations measures installs as a burst of signed
// installed callbacks makes them: workers goroutines saving distinct
// tenants at once, each save durable before it returns. It reports
// installs/s besides ns/op.
func benchSaveInstallations(b *testing.B, open func(*testing.B) tenon.Store, workers int) {
	s := open(b)
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((workers + procs - 1) / procs)
	var seq atomic.Int64
	var mu sync.Mutex
	var all []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		var lat []time.Duration
		for pb.Next() {
			in := NewInstallation(fmt.Sprintf("tenant-%09d", seq.Add(1)))
			t := time.Now()
			if err := s.SaveInstallation(ctx, in); err != nil {
				b.Error(err)
				return
			}
			lat = append(lat, time.Since(t))
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(seq.Load())/elapsed.Seconds(), "installs/s")
	reportPercentiles(b, all)
}
