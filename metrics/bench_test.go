package metrics_test

import (
	"testing"
	"time"

	"github.com/tenon-dev/tenon/metrics"
	"github.com/tenon-dev/tenon/server"
)

// BenchmarkObserveRequest is the cost metrics add to every request, from
// concurrent requests.
func BenchmarkObserveRequest(b *testing.B) {
	m := metrics.New(metrics.Options{})
	info := server.RequestInfo{Method: "GET", Route: "GET /issue/{key}", Status: 200, Duration: 42 * time.Millisecond, ClientKey: "tenant"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.ObserveRequest(info)
		}
	})
}
