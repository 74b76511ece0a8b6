package loadtest

import (
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to 5 minutes.
const (
	hdrMin = 1
	hdrMax = int64(5 * time.Minute / time.Microsecond)
)

// Error classes of the report.
const (
	ClassRateLimited = "429"
	Class4xx         = "4xx"
	Class5xx         = "5xx"
	ClassTimeout     = "timeout"
	ClassConnection  = "connection"
	ClassOther       = "other"
)

// Classify names the class of a failed request from its status and
// transport error; "" means it succeeded.
func Classify(code int, err error) string {
	switch {
	case err != nil:
		var ne net.Error
		if errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			return ClassTimeout
		}
		msg := err.Error()
		switch {
		case strings.Contains(msg, "Client.Timeout"), strings.Contains(msg, "deadline exceeded"):
			return ClassTimeout
		case strings.Contains(msg, "connection refused"), strings.Contains(msg, "connection reset"),
			strings.Contains(msg, "EOF"), strings.Contains(msg, "broken pipe"):
			return ClassConnection
		}
		return ClassOther
	case code == 429:
		return ClassRateLimited
	case code >= 500:
		return Class5xx
	case code >= 400 || code < 200:
		return Class4xx
	}
	return ""
}

// Recorder keeps what a run measured: per time window and per route, a
// histogram of latencies and counts of errors by class. It is safe for
// concurrent use.
type Recorder struct {
	mu      sync.Mutex
	window  time.Duration
	windows []*windowRec
	routes  map[string]*routeRec
	order   []string
	all     *routeRec
}

type windowRec struct {
	hist   *hdrhistogram.Histogram
	sent   int
	ok     int
	errors map[string]int
}

type routeRec struct {
	hist    *hdrhistogram.Histogram // from when the request was due
	service *hdrhistogram.Histogram // from when it was sent
	count   int
	ok      int
	errors  map[string]int
}

func newRouteRec() *routeRec {
	return &routeRec{hist: hdrhistogram.New(hdrMin, hdrMax, 3), service: hdrhistogram.New(hdrMin, hdrMax, 3), errors: map[string]int{}}
}

// NewRecorder returns a recorder with windows of the given width.
func NewRecorder(window time.Duration) *Recorder {
	return &Recorder{window: window, routes: map[string]*routeRec{}, all: newRouteRec()}
}

// Result is one request as measured.
type Result struct {
	Route string
	// Due is when the request was due, from the start of the run (open
	// model: the schedule's moment; closed model: when it was sent).
	Due time.Duration
	// Latency is from Due to the end of the answer; Service from sending
	// to the end of the answer.
	Latency, Service time.Duration
	// Class is "" for success, else an error class.
	Class string
}

// Record adds one result.
func (r *Recorder) Record(res Result) {
	us := clampUS(res.Latency)
	r.mu.Lock()
	defer r.mu.Unlock()
	i := int(max(res.Due, 0) / r.window)
	for len(r.windows) <= i {
		r.windows = append(r.windows, &windowRec{hist: hdrhistogram.New(hdrMin, hdrMax, 2), errors: map[string]int{}})
	}
	w := r.windows[i]
	w.sent++
	rr := r.routes[res.Route]
	if rr == nil {
		rr = newRouteRec()
		r.routes[res.Route] = rr
		r.order = append(r.order, res.Route)
	}
	for _, x := range []*routeRec{rr, r.all} {
		x.count++
		if res.Class == "" {
			x.ok++
		} else {
			x.errors[res.Class]++
		}
		_ = x.hist.RecordValue(us)
		_ = x.service.RecordValue(clampUS(res.Service))
	}
	if res.Class == "" {
		w.ok++
	} else {
		w.errors[res.Class]++
	}
	_ = w.hist.RecordValue(us)
}

// Count returns requests recorded and how many failed.
func (r *Recorder) Count() (total, failed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.all.count, r.all.count - r.all.ok
}

// Recent returns the figures of the last complete window before elapsed,
// for live progress and early stops.
func (r *Recorder) Recent(elapsed time.Duration) (Window, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := int(elapsed/r.window) - 1
	if i < 0 || i >= len(r.windows) {
		return Window{}, false
	}
	return r.windows[i].summary(i, r.window), true
}

func clampUS(d time.Duration) int64 {
	return min(max(int64(d/time.Microsecond), hdrMin), hdrMax)
}

func (w *windowRec) summary(i int, width time.Duration) Window {
	out := Window{
		Start: (time.Duration(i) * width).Seconds(), Sent: w.sent, OK: w.ok,
		Throughput: float64(w.ok) / width.Seconds(),
		P50:        ms(w.hist.ValueAtQuantile(50)), P90: ms(w.hist.ValueAtQuantile(90)),
		P95: ms(w.hist.ValueAtQuantile(95)), P99: ms(w.hist.ValueAtQuantile(99)), Max: ms(w.hist.Max()),
	}
	if len(w.errors) > 0 {
		out.Errors = map[string]int{}
		for k, v := range w.errors {
			out.Errors[k] = v
		}
	}
	return out
}

func ms(us int64) float64 { return float64(us) / 1000 }

func (rr *routeRec) summary(name string, seconds float64) RouteStats {
	st := RouteStats{Name: name, Count: rr.count, OK: rr.ok, Latency: latencyOf(rr.hist), Service: latencyOf(rr.service)}
	if seconds > 0 {
		st.Throughput = float64(rr.ok) / seconds
	}
	if len(rr.errors) > 0 {
		st.Errors = map[string]int{}
		for k, v := range rr.errors {
			st.Errors[k] = v
		}
	}
	return st
}

func latencyOf(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P95: ms(h.ValueAtQuantile(95)),
		P99: ms(h.ValueAtQuantile(99)), P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()), Mean: h.Mean() / 1000,
		hist: h,
	}
}
