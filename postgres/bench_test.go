package postgres_test

import (
	"testing"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/storetest"
)

// BenchmarkStore runs the shared store benchmarks.
func BenchmarkStore(b *testing.B) {
	storetest.RunBenchmarks(b, func(b *testing.B) tenon.Store { return MustOpen(b, nil) })
}
