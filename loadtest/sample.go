package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Sample is the target's state at one moment.
type Sample struct {
	T       float64            `json:"t"`
	CPU     float64            `json:"cpu"` // percent of one core since the last sample; -1 unknown
	RSS     int64              `json:"rss,omitempty"`
	Threads int                `json:"threads,omitempty"`
	FDs     int                `json:"fds,omitempty"`
	DBBytes int64              `json:"dbBytes,omitempty"`
	Metrics map[string]float64 `json:"metrics,omitempty"`
}

// ProcReader reads a process's figures from a /proc file system.
type ProcReader struct {
	// Root is the proc mount, normally "/proc".
	Root string
	PID  int
	// TicksPerSecond is the kernel's USER_HZ (100 on Linux).
	TicksPerSecond float64

	lastTicks float64
	lastT     float64
	primed    bool
}

// Read fills s from /proc/<pid>/stat, status and fd at time t (seconds).
func (p *ProcReader) Read(t float64, s *Sample) error {
	dir := filepath.Join(p.Root, strconv.Itoa(p.PID))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return fmt.Errorf("read the target process: %w", err)
	}
	ticks, err := parseStatTicks(string(stat))
	if err != nil {
		return err
	}
	s.CPU = -1
	if p.primed && t > p.lastT {
		s.CPU = (ticks - p.lastTicks) / p.TicksPerSecond / (t - p.lastT) * 100
	}
	p.lastTicks, p.lastT, p.primed = ticks, t, true
	if status, err := os.ReadFile(filepath.Join(dir, "status")); err == nil {
		for _, line := range strings.Split(string(status), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			f := strings.Fields(v)
			if len(f) == 0 {
				continue
			}
			n, _ := strconv.ParseInt(f[0], 10, 64)
			switch k {
			case "VmRSS":
				s.RSS = n * 1024
			case "Threads":
				s.Threads = int(n)
			}
		}
	}
	if fds, err := os.ReadDir(filepath.Join(dir, "fd")); err == nil {
		s.FDs = len(fds)
	}
	return nil
}

// parseStatTicks returns utime+stime of a /proc/<pid>/stat line. The
// command name may hold spaces and parentheses, so fields are counted
// from the last ')'.
func parseStatTicks(stat string) (float64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc stat line")
	}
	f := strings.Fields(stat[i+1:])
	// After the name: state(3) ... utime(14) stime(15), so f[11], f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc stat line: %d fields", len(f))
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	s, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unexpected /proc stat times %q %q", f[11], f[12])
	}
	return u + s, nil
}

// DefaultMetrics are the Prometheus series a run records when it
// samples a metrics URL: tenon's queue depth, store waits and outbound
// calls, and the Go runtime's.
var DefaultMetrics = []string{
	"go_goroutines", "process_resident_memory_bytes", "process_open_fds",
	"tenon_queue_jobs", "tenon_queue_oldest_pending_seconds",
	"tenon_store_waits_total", "tenon_store_wait_seconds_total", "tenon_store_connections",
	"tenon_outbound_request_duration_seconds_count", "tenon_outbound_retries_total",
	"tenon_http_request_duration_seconds_count",
}

// ParseMetrics reads the Prometheus text format and returns, for each
// wanted name, the sum over its label sets. A histogram or summary
// family answers to name_count and name_sum.
func ParseMetrics(r io.Reader, wanted []string) (map[string]float64, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("metrics are not in the Prometheus text format: %w", err)
	}
	want := map[string]bool{}
	for _, w := range wanted {
		want[w] = true
	}
	out := map[string]float64{}
	for name, fam := range fams {
		for _, m := range fam.GetMetric() {
			add := func(n string, v float64) {
				if want[n] && !math.IsNaN(v) {
					out[n] += v
				}
			}
			switch {
			case m.Counter != nil:
				add(name, m.GetCounter().GetValue())
			case m.Gauge != nil:
				add(name, m.GetGauge().GetValue())
			case m.Untyped != nil:
				add(name, m.GetUntyped().GetValue())
			case m.Histogram != nil:
				add(name+"_count", float64(m.GetHistogram().GetSampleCount()))
				add(name+"_sum", m.GetHistogram().GetSampleSum())
			case m.Summary != nil:
				add(name+"_count", float64(m.GetSummary().GetSampleCount()))
				add(name+"_sum", m.GetSummary().GetSampleSum())
			}
		}
	}
	return out, nil
}

// Sampler samples the target while the load runs.
type Sampler struct {
	Proc       *ProcReader // nil: no process figures
	MetricsURL string      // "": no Prometheus figures
	Metrics    []string
	DBPath     string // the SQLite file (its -wal counted too); "": none
	Client     *http.Client
	Interval   time.Duration

	mu      sync.Mutex
	samples []Sample
	errs    []string
}

// Run samples every Interval until ctx ends; since says the run's time.
func (s *Sampler) Run(ctx context.Context, since func() time.Duration) {
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	s.sample(ctx, since().Seconds())
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sample(ctx, since().Seconds())
		}
	}
}

func (s *Sampler) sample(ctx context.Context, t float64) {
	smp := Sample{T: t, CPU: -1}
	var problem string
	if s.Proc != nil {
		if err := s.Proc.Read(t, &smp); err != nil {
			problem = err.Error()
		}
	}
	if s.MetricsURL != "" {
		m, err := s.scrape(ctx)
		if err != nil {
			problem = err.Error()
		}
		smp.Metrics = m
		if smp.RSS == 0 {
			smp.RSS = int64(m["process_resident_memory_bytes"])
		}
		if smp.FDs == 0 {
			smp.FDs = int(m["process_open_fds"])
		}
	}
	if s.DBPath != "" {
		for _, p := range []string{s.DBPath, s.DBPath + "-wal"} {
			if fi, err := os.Stat(p); err == nil {
				smp.DBBytes += fi.Size()
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples = append(s.samples, smp)
	if problem != "" && ctx.Err() == nil && len(s.errs) < 5 {
		s.errs = append(s.errs, fmt.Sprintf("at %.0f s: %s", t, problem))
	}
}

func (s *Sampler) scrape(ctx context.Context) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.MetricsURL, nil)
	if err != nil {
		return nil, fmt.Errorf("metrics URL: %w", err)
	}
	req.Header.Set("Accept", "text/plain")
	res, err := s.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape metrics: %s answered %d", s.MetricsURL, res.StatusCode)
	}
	names := s.Metrics
	if len(names) == 0 {
		names = DefaultMetrics
	}
	return ParseMetrics(bufio.NewReader(io.LimitReader(res.Body, 16<<20)), names)
}

// Samples returns what was sampled, and the first problems met.
func (s *Sampler) Samples() ([]Sample, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Sample(nil), s.samples...), append([]string(nil), s.errs...)
}
