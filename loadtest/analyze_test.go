package loadtest_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/loadtest"
)

func windows(offered, thr, p99 []float64) []loadtest.Window {
	var ws []loadtest.Window
	for i := range offered {
		ws = append(ws, loadtest.Window{Start: float64(i), Offered: offered[i], Sent: int(offered[i]), OK: int(thr[i]), Throughput: thr[i], P50: p99[i] / 3, P99: p99[i], Max: p99[i]})
	}
	return ws
}

func TestAnalyzeKnee(t *testing.T) {
	sched, _ := loadtest.NewSchedule(loadtest.ProfileStress, loadtest.ProfileOptions{Rate: 100, Peak: 1000, Duration: 10 * time.Second})
	rep := &loadtest.Report{Profile: loadtest.ProfileStress, Model: loadtest.ModelOpen, Schedule: sched, Elapsed: 10,
		Windows: windows(
			[]float64{100, 200, 300, 400, 500, 600, 700, 800, 900, 1000},
			[]float64{100, 200, 300, 400, 500, 510, 505, 500, 498, 490},
			[]float64{2, 2, 2, 2, 3, 40, 90, 200, 400, 800})}
	a := loadtest.Analyze(rep, nil, time.Second)
	if a.Saturation == nil || a.Saturation.T != 5 || a.Knee == nil || a.Knee.Offered != 500 {
		t.Fatalf("saturation %+v, knee %+v; want saturation at 5 s, knee at 500 req/s", a.Saturation, a.Knee)
	}
	if a.MaxThroughput != 510 {
		t.Errorf("max throughput %g", a.MaxThroughput)
	}
	// An SLO breaks earlier than throughput does.
	slo, _ := loadtest.ParseSLO("p99<2.5ms")
	a = loadtest.Analyze(rep, slo, time.Second)
	if a.Knee == nil || a.Knee.Offered != 400 || !strings.Contains(a.Saturation.Reason, "p99<2.5ms") {
		t.Fatalf("with SLO: knee %+v, saturation %+v", a.Knee, a.Saturation)
	}
	// A target that keeps up has no knee.
	rep.Windows = windows([]float64{100, 200, 300, 400}, []float64{100, 200, 300, 400}, []float64{2, 2, 2, 2})
	rep.Elapsed = 4
	if a := loadtest.Analyze(rep, nil, time.Second); a.Knee != nil || a.Saturation != nil {
		t.Fatalf("keeping up: knee %+v saturation %+v", a.Knee, a.Saturation)
	}
}

func TestAnalyzeRecovery(t *testing.T) {
	sched, _ := loadtest.NewSchedule(loadtest.ProfileSpike, loadtest.ProfileOptions{Rate: 100, Peak: 1000, Duration: 20 * time.Second})
	off := []float64{100, 100, 100, 100, 100, 100, 100, 100, 1000, 1000, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100}
	thr := append([]float64(nil), off...)
	thr[8], thr[9] = 600, 600
	p99 := []float64{3, 2, 2, 2, 2, 2, 2, 2, 300, 500, 400, 200, 20, 2.5, 2, 2, 2, 2, 2, 2}
	rep := &loadtest.Report{Profile: loadtest.ProfileSpike, Model: loadtest.ModelOpen, Schedule: sched, Elapsed: 20, Windows: windows(off, thr, p99)}
	a := loadtest.Analyze(rep, nil, time.Second)
	if !a.Recovered || a.Recovery == nil || *a.Recovery != 3 || a.BaselineP99 != 2 || a.BurstP99 != 500 {
		t.Fatalf("recovery %v (%v), baseline %g, burst %g; want 3 s after the burst", a.Recovery, a.Recovered, a.BaselineP99, a.BurstP99)
	}
	for i := 10; i < 20; i++ {
		rep.Windows[i].P99 = 100
	}
	if a := loadtest.Analyze(rep, nil, time.Second); a.Recovered || !strings.Contains(strings.Join(a.Notes, " "), "Not recovered") {
		t.Fatalf("never back: %+v", a)
	}
}

func TestAnalyzeSoakTrends(t *testing.T) {
	rep := &loadtest.Report{Profile: loadtest.ProfileSoak, Model: loadtest.ModelOpen, Elapsed: 100}
	for i := range 100 {
		rep.Windows = append(rep.Windows, loadtest.Window{Start: float64(i), Sent: 10, OK: 10, P99: 2})
		rep.Samples = append(rep.Samples, loadtest.Sample{T: float64(i), RSS: int64(40+i) << 20, FDs: 30, Threads: 10})
	}
	a := loadtest.Analyze(rep, nil, time.Second)
	flagged := map[string]bool{}
	for _, tr := range a.Trends {
		flagged[tr.Series] = tr.Flagged
	}
	if !flagged["RSS"] || flagged["open files"] || flagged["p99 latency"] {
		t.Fatalf("trends %+v: want RSS rising, files and latency flat", a.Trends)
	}
	// Flat memory with noise is not flagged.
	for i := range rep.Samples {
		rep.Samples[i].RSS = int64(50+i%3) << 20
	}
	for _, tr := range loadtest.Analyze(rep, nil, time.Second).Trends {
		if tr.Flagged {
			t.Errorf("flat series flagged: %+v", tr)
		}
	}
}

func TestProcReader(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "42")
	os.MkdirAll(filepath.Join(dir, "fd"), 0o755)
	for _, n := range []string{"0", "1", "2"} {
		os.WriteFile(filepath.Join(dir, "fd", n), nil, 0o644)
	}
	write := func(utime, stime int) {
		stat := "42 (ten on) (x) S 1 42 42 0 -1 4194560 100 0 0 0 " + itoa(utime) + " " + itoa(stime) + " 0 0 20 0 9 0 1 1 1\n"
		os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "status"), []byte("Name:\ttenon\nVmRSS:\t  51200 kB\nThreads:\t9\n"), 0o644)
	p := &loadtest.ProcReader{Root: root, PID: 42, TicksPerSecond: 100}
	write(100, 50)
	var s loadtest.Sample
	if err := p.Read(1, &s); err != nil {
		t.Fatal(err)
	}
	if s.CPU != -1 || s.RSS != 50<<20 || s.Threads != 9 || s.FDs != 3 {
		t.Fatalf("first sample %+v", s)
	}
	write(150, 100) // 100 ticks = 1 s of CPU in 2 s
	if err := p.Read(3, &s); err != nil || s.CPU != 50 {
		t.Fatalf("second sample %+v, %v; want 50 %% CPU", s, err)
	}
	if err := (&loadtest.ProcReader{Root: root, PID: 7, TicksPerSecond: 100}).Read(1, &s); err == nil {
		t.Fatal("a missing process read without error")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestParseMetrics(t *testing.T) {
	text := `# TYPE go_goroutines gauge
go_goroutines 27
# TYPE tenon_queue_jobs gauge
tenon_queue_jobs{queue="webhooks",state="pending"} 3
tenon_queue_jobs{queue="webhooks",state="dead"} 1
# TYPE tenon_outbound_request_duration_seconds histogram
tenon_outbound_request_duration_seconds_bucket{product="jira",le="+Inf"} 12
tenon_outbound_request_duration_seconds_sum{product="jira"} 0.5
tenon_outbound_request_duration_seconds_count{product="jira"} 12
# TYPE other_total counter
other_total 5
`
	m, err := loadtest.ParseMetrics(strings.NewReader(text), loadtest.DefaultMetrics)
	if err != nil {
		t.Fatal(err)
	}
	if m["go_goroutines"] != 27 || m["tenon_queue_jobs"] != 4 || m["tenon_outbound_request_duration_seconds_count"] != 12 {
		t.Fatalf("metrics %v", m)
	}
	if _, ok := m["other_total"]; ok {
		t.Errorf("unwanted series kept")
	}
	if _, err := loadtest.ParseMetrics(strings.NewReader("this is {not metrics"), nil); err == nil {
		t.Error("garbage parsed")
	}
}

func TestCompare(t *testing.T) {
	a := &loadtest.Report{Total: loadtest.RouteStats{Count: 1000, OK: 1000, Throughput: 100, Latency: loadtest.Latency{P50: 1, P95: 2, P99: 4, Max: 10}}}
	b := &loadtest.Report{Total: loadtest.RouteStats{Count: 1000, OK: 990, Throughput: 80, Latency: loadtest.Latency{P50: 1, P95: 2, P99: 8, Max: 10}}}
	worse := map[string]bool{}
	for _, d := range loadtest.Compare(a, b) {
		worse[d.Figure] = d.Worse
	}
	if !worse["throughput"] || !worse["p99"] || !worse["errors"] || worse["p50"] {
		t.Fatalf("worse: %v", worse)
	}
	var buf bytes.Buffer
	if err := loadtest.WriteComparison(&buf, a, b, "a.json", "b.json"); err != nil || !strings.Contains(buf.String(), "+100.0 %") {
		t.Fatalf("comparison:\n%s %v", buf.String(), err)
	}
}
