package loadtest

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// ReportVersion is the version of the JSON report's shape.
const ReportVersion = 1

// Report is everything a run found, as written to JSON and drawn in HTML.
// Latencies are in milliseconds, times in seconds from the start.
type Report struct {
	Version  int       `json:"version"`
	Title    string    `json:"title"`
	Started  time.Time `json:"started"`
	Target   string    `json:"target"`
	Profile  string    `json:"profile"`
	Model    string    `json:"model"` // "open" or "closed"
	Workers  int       `json:"workers,omitempty"`
	Schedule *Schedule `json:"schedule"`
	Mix      *Mix      `json:"mix"`
	Machine  Machine   `json:"machine"`
	// InstallsPerSecond is how fast the run's tenants were installed
	// (signed installs, InstallWorkers at a time).
	InstallsPerSecond float64 `json:"installsPerSecond,omitempty"`
	// Presigned says whether page URLs were signed before the run.
	Presigned bool `json:"presigned,omitempty"`
	// Elapsed is how long the load ran; Stopped says why it ended early
	// ("" when it ran its course).
	Elapsed float64 `json:"elapsed"`
	Stopped string  `json:"stopped,omitempty"`

	Total   RouteStats   `json:"total"`
	Routes  []RouteStats `json:"routes"`
	Windows []Window     `json:"windows"`
	Samples []Sample     `json:"samples,omitempty"`

	Analysis Analysis  `json:"analysis"`
	SLO      []Outcome `json:"slo,omitempty"`
	// Passed is the SLO verdict (true when there is no SLO).
	Passed bool `json:"passed"`
}

// Machine describes where the run was made.
type Machine struct {
	Host     string  `json:"host"`
	OS       string  `json:"os"`
	CPUs     int     `json:"cpus"`
	CPUModel string  `json:"cpuModel,omitempty"`
	MemoryMB int     `json:"memoryMB,omitempty"`
	Load1    float64 `json:"load1"` // load average when the run started
	Go       string  `json:"go"`
}

// Latency is a latency distribution in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`

	hist *hdrhistogram.Histogram
}

// RouteStats are the figures of one route, or of all.
type RouteStats struct {
	Name       string         `json:"name"`
	Count      int            `json:"count"`
	OK         int            `json:"ok"`
	Errors     map[string]int `json:"errors,omitempty"`
	Throughput float64        `json:"throughput"`
	// Latency is measured from when each request was due (open model),
	// Service from when it was actually sent; a gap between them is time
	// requests waited for the load generator or a connection.
	Latency Latency `json:"latency"`
	Service Latency `json:"service"`
}

// Window is one time window of the run.
type Window struct {
	Start      float64        `json:"t"`
	Segment    string         `json:"segment,omitempty"`
	Offered    float64        `json:"offered"` // requests per second due
	Sent       int            `json:"sent"`
	OK         int            `json:"ok"`
	Errors     map[string]int `json:"errors,omitempty"`
	Throughput float64        `json:"throughput"`
	P50        float64        `json:"p50"`
	P90        float64        `json:"p90"`
	P95        float64        `json:"p95"`
	P99        float64        `json:"p99"`
	Max        float64        `json:"max"`
}

// Failed is the number of failed requests of the window.
func (w Window) Failed() int { return w.Sent - w.OK }

// totalStats adapts RouteStats to the SLO's Stats.
type totalStats struct {
	rs      RouteStats
	seconds float64
}

func (t totalStats) Quantile(q float64) float64 {
	if t.rs.Latency.hist != nil {
		return float64(t.rs.Latency.hist.ValueAtQuantile(q)) / 1e6
	}
	l := t.rs.Latency
	return pickQuantile(q, l.Max, [2]float64{50, l.P50}, [2]float64{90, l.P90}, [2]float64{95, l.P95},
		[2]float64{99, l.P99}, [2]float64{99.9, l.P999})
}

// pickQuantile answers quantile q from the few a summary keeps: the
// first of points (quantile, milliseconds; in rising order) at or above
// q, else max; in seconds.
func pickQuantile(q, max float64, points ...[2]float64) float64 {
	for _, p := range points {
		if q <= p[0] {
			return p[1] / 1000
		}
	}
	return max / 1000
}
func (t totalStats) MaxLatency() float64 { return t.rs.Latency.Max / 1000 }
func (t totalStats) ErrorRate() float64 {
	if t.rs.Count == 0 {
		return 1 // nothing answered is not a pass
	}
	return float64(t.rs.Count-t.rs.OK) / float64(t.rs.Count)
}
func (t totalStats) Throughput() float64 { return t.rs.Throughput }

// windowStats adapts a Window to the SLO's Stats (latency and errors).
type windowStats struct{ w Window }

func (ws windowStats) Quantile(q float64) float64 {
	w := ws.w
	return pickQuantile(q, w.Max, [2]float64{50, w.P50}, [2]float64{90, w.P90}, [2]float64{95, w.P95}, [2]float64{99, w.P99})
}
func (ws windowStats) MaxLatency() float64 { return ws.w.Max / 1000 }
func (ws windowStats) ErrorRate() float64 {
	w := ws.w
	if w.Sent == 0 {
		return 0
	}
	return float64(w.Sent-w.OK) / float64(w.Sent)
}
func (ws windowStats) Throughput() float64 { return ws.w.Throughput }

// Finish builds the report's figures from the recorder: totals, routes,
// windows with their offered rate, the analysis and the SLO verdict.
func (rep *Report) Finish(rec *Recorder, slo SLO, elapsed time.Duration) {
	rec.mu.Lock()
	secs := elapsed.Seconds()
	rep.Elapsed = secs
	rep.Total = rec.all.summary("all", secs)
	rep.Routes = nil
	for _, name := range rec.order {
		rep.Routes = append(rep.Routes, rec.routes[name].summary(name, secs))
	}
	rep.Windows = nil
	for i, w := range rec.windows {
		win := w.summary(i, rec.window)
		start := time.Duration(i) * rec.window
		if start > elapsed {
			break
		}
		if rep.Schedule != nil && rep.Model == "open" {
			end := min(start+rec.window, elapsed)
			win.Offered = (rep.Schedule.Due(end) - rep.Schedule.Due(start)) / (end - start).Seconds()
			win.Segment, _ = rep.Schedule.segmentAt(start)
		}
		// A last, partial window's throughput is over its own length.
		if end := start + rec.window; end > elapsed && elapsed > start {
			win.Throughput = float64(win.OK) / (elapsed - start).Seconds()
		}
		rep.Windows = append(rep.Windows, win)
	}
	rec.mu.Unlock()
	rep.Analysis = Analyze(rep, slo, rec.window)
	outcomes, met := slo.Check(totalStats{rs: rep.Total, seconds: secs})
	rep.SLO, rep.Passed = outcomes, met
}

// WriteJSON writes the report to path.
func (rep *Report) WriteJSON(path string) error {
	raw, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the report: %w", err)
	}
	if err := os.WriteFile(path, append(raw, '\n'), 0o644); err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	return nil
}

// ReadReport reads a JSON report.
func ReadReport(path string) (*Report, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	var rep Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		return nil, fmt.Errorf("report %s is not a loadtest JSON report: %w", path, err)
	}
	if rep.Version != ReportVersion {
		return nil, fmt.Errorf("report %s has version %d; this tenon reads version %d", path, rep.Version, ReportVersion)
	}
	return &rep, nil
}
