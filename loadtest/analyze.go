package loadtest

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Analysis is what the figures mean: where the target saturated, the
// knee of a stress run, the recovery of a spike, the trends of a soak.
type Analysis struct {
	// Saturation is the first moment the target fell behind: it answered
	// less than 90 % of the offered rate, broke the SLO's latency or
	// error objectives, or its p99 rose to 3× that of the first windows,
	// for two windows in a row.
	Saturation *Point `json:"saturation,omitempty"`
	// Knee (stress) is the highest offered rate before saturation.
	Knee *Point `json:"knee,omitempty"`
	// MaxThroughput is the best window's successful requests per second.
	MaxThroughput float64 `json:"maxThroughput"`
	// Spike: the p99 of the baseline and of the burst, and how long after
	// the burst the target was back to its baseline (nil: never).
	BaselineP99 float64  `json:"baselineP99,omitempty"`
	BurstP99    float64  `json:"burstP99,omitempty"`
	Recovery    *float64 `json:"recoverySeconds,omitempty"`
	Recovered   bool     `json:"recovered,omitempty"`
	// Trends of the server's figures and of latency over the run (after
	// the first fifth, a warm-up).
	Trends []Trend `json:"trends,omitempty"`
	// Notes are sentences for the reader.
	Notes []string `json:"notes,omitempty"`
}

// Point is a moment of the run and the offered rate then.
type Point struct {
	T       float64 `json:"t"`
	Offered float64 `json:"offered"`
	Reason  string  `json:"reason"`
	CPU     float64 `json:"cpu,omitempty"` // the target's CPU % then, when sampled
}

// Trend is the drift of one series: its least-squares slope and how much
// it changed over the measured span, relative to its mean.
type Trend struct {
	Series   string  `json:"series"`
	Unit     string  `json:"unit"`
	First    float64 `json:"first"`
	Last     float64 `json:"last"`
	Slope    float64 `json:"slopePerHour"`
	Relative float64 `json:"relative"` // change over the span / mean
	Flagged  bool    `json:"flagged"`
}

// Analyze reads the windows and samples of rep.
func Analyze(rep *Report, slo SLO, window time.Duration) Analysis {
	var a Analysis
	ws := rep.Windows
	// Leave out a last window shorter than the others.
	if n := len(ws); n > 0 && rep.Elapsed-ws[n-1].Start < window.Seconds()*0.99 {
		ws = ws[:n-1]
	}
	for _, w := range ws {
		a.MaxThroughput = max(a.MaxThroughput, w.Throughput)
	}
	a.Saturation = saturation(ws, slo, rep.Model == "open")
	if a.Saturation != nil {
		a.Saturation.CPU = cpuAt(rep.Samples, a.Saturation.T)
	}
	if rep.Profile == ProfileStress {
		a.Knee = knee(ws, a.Saturation)
		switch {
		case a.Knee != nil:
			a.Notes = append(a.Notes, fmt.Sprintf("The knee: %.0f req/s offered at %.0f s, the last rate the target kept up with before %s.",
				a.Knee.Offered, a.Knee.T, a.Saturation.Reason))
		case a.Saturation != nil:
			a.Notes = append(a.Notes, "The target fell behind from the first windows: start the ramp lower.")
		default:
			a.Notes = append(a.Notes, "No knee: the target kept up with the whole ramp; raise the peak rate.")
		}
	}
	if rep.Profile == ProfileSpike && rep.Schedule != nil {
		spike(&a, ws, rep.Schedule)
	}
	if rep.Profile == ProfileSoak {
		a.Trends = trends(rep, ws)
	}
	for _, t := range a.Trends {
		if t.Flagged {
			a.Notes = append(a.Notes, fmt.Sprintf("%s trends upward: %.4g → %.4g %s (%+.0f%% over the run).", t.Series, t.First, t.Last, t.Unit, t.Relative*100))
		}
	}
	return a
}

// behind says why a window shows saturation, or "".
func behind(w Window, slo SLO, ref float64, open bool) string {
	if open && w.Offered > 0 && w.Throughput < 0.9*w.Offered {
		return fmt.Sprintf("answering %.0f of %.0f req/s offered", w.Throughput, w.Offered)
	}
	if lat := slo.latencyOnly(); len(lat) > 0 {
		for _, o := range mustCheck(lat, windowStats{w}) {
			if !o.Met {
				return "the SLO objective " + o.Text + " broke"
			}
		}
	}
	if ref > 0 && w.P99 > 3*ref && w.P99 > ref+5 {
		return fmt.Sprintf("p99 rising to %.1f ms (%.1f ms at the start)", w.P99, ref)
	}
	return ""
}

func mustCheck(slo SLO, st Stats) []Outcome {
	out, _ := slo.Check(st)
	return out
}

func saturation(ws []Window, slo SLO, open bool) *Point {
	ref := referenceP99(ws)
	for i := 0; i+1 < len(ws); i++ {
		r1 := behind(ws[i], slo, ref, open)
		if r1 == "" || behind(ws[i+1], slo, ref, open) == "" {
			continue
		}
		return &Point{T: ws[i].Start, Offered: ws[i].Offered, Reason: r1}
	}
	return nil
}

// referenceP99 is the median p99 of the first three windows after the
// first (connections are opened in the first).
func referenceP99(ws []Window) float64 {
	var ps []float64
	for i := 1; i < len(ws) && len(ps) < 3; i++ {
		if ws[i].Sent > 0 {
			ps = append(ps, ws[i].P99)
		}
	}
	if len(ps) == 0 {
		return 0
	}
	sort.Float64s(ps)
	return ps[len(ps)/2]
}

func knee(ws []Window, sat *Point) *Point {
	if sat == nil {
		return nil
	}
	var last *Point
	for _, w := range ws {
		if w.Start >= sat.T {
			break
		}
		last = &Point{T: w.Start, Offered: w.Offered, Reason: "last window kept up"}
	}
	return last
}

func spike(a *Analysis, ws []Window, s *Schedule) {
	if len(s.Segments) < 3 {
		return
	}
	baseEnd := s.Segments[0].Duration.Seconds()
	burstEnd := baseEnd + s.Segments[1].Duration.Seconds()
	var base, burst []float64
	for i, w := range ws {
		switch {
		case i > 0 && w.Start+1e-9 < baseEnd:
			base = append(base, w.P99)
		case w.Start >= baseEnd && w.Start < burstEnd:
			burst = append(burst, w.P99)
		}
	}
	if len(base) == 0 {
		return
	}
	sort.Float64s(base)
	a.BaselineP99 = base[len(base)/2]
	for _, p := range burst {
		a.BurstP99 = max(a.BurstP99, p)
	}
	limit := max(1.5*a.BaselineP99, a.BaselineP99+2)
	back := func(w Window) bool {
		return w.P99 <= limit && w.Failed() == 0 && (w.Offered == 0 || w.Throughput >= 0.9*w.Offered)
	}
	for i, w := range ws {
		if w.Start < burstEnd {
			continue
		}
		if back(w) && (i+1 == len(ws) || back(ws[i+1])) {
			r := w.Start - burstEnd
			a.Recovery, a.Recovered = &r, true
			a.Notes = append(a.Notes, fmt.Sprintf("Recovered %.0f s after the burst: p99 back within %.1f ms (baseline %.1f ms, burst up to %.1f ms).",
				r, limit, a.BaselineP99, a.BurstP99))
			return
		}
	}
	a.Notes = append(a.Notes, fmt.Sprintf("Not recovered by the end of the run: p99 stayed above %.1f ms or requests failed.", limit))
}

// trendSeries are the series a soak watches, with the relative growth
// over the run that flags them.
var trendSeries = []struct {
	name, unit string
	flag       float64
	minDelta   float64 // an absolute change below this is never flagged
	get        func(Sample) (float64, bool)
}{
	{"RSS", "MiB", 0.10, 4, func(s Sample) (float64, bool) { return float64(s.RSS) / (1 << 20), s.RSS > 0 }},
	{"open files", "fds", 0.10, 8, func(s Sample) (float64, bool) { return float64(s.FDs), s.FDs > 0 }},
	{"threads", "threads", 0.25, 4, func(s Sample) (float64, bool) { return float64(s.Threads), s.Threads > 0 }},
	{"goroutines", "goroutines", 0.10, 16, func(s Sample) (float64, bool) { v, ok := s.Metrics["go_goroutines"]; return v, ok }},
	{"DB size", "MiB", 0.50, 4, func(s Sample) (float64, bool) { return float64(s.DBBytes) / (1 << 20), s.DBBytes > 0 }},
}

func trends(rep *Report, ws []Window) []Trend {
	var out []Trend
	for _, ser := range trendSeries {
		var xs, ys []float64
		for _, s := range rep.Samples {
			if v, ok := ser.get(s); ok {
				xs, ys = append(xs, s.T), append(ys, v)
			}
		}
		if t, ok := fitTrend(ser.name, ser.unit, xs, ys, ser.flag, ser.minDelta); ok {
			out = append(out, t)
		}
	}
	var xs, ys []float64
	for _, w := range ws {
		if w.Sent > 0 {
			xs, ys = append(xs, w.Start), append(ys, w.P99)
		}
	}
	if t, ok := fitTrend("p99 latency", "ms", xs, ys, 0.5, 2); ok {
		out = append(out, t)
	}
	return out
}

// fitTrend fits a line to the points after the first fifth.
func fitTrend(name, unit string, xs, ys []float64, flag, minDelta float64) (Trend, bool) {
	skip := len(xs) / 5
	xs, ys = xs[skip:], ys[skip:]
	if len(xs) < 5 {
		return Trend{}, false
	}
	slope, mean := linearFit(xs, ys)
	span := xs[len(xs)-1] - xs[0]
	t := Trend{Series: name, Unit: unit, First: ys[0], Last: ys[len(ys)-1], Slope: slope * 3600}
	if mean != 0 {
		t.Relative = slope * span / math.Abs(mean)
	}
	t.Flagged = t.Relative > flag && slope*span > minDelta
	return t, true
}

func linearFit(xs, ys []float64) (slope, mean float64) {
	n := float64(len(xs))
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0, sy / n
	}
	return (n*sxy - sx*sy) / d, sy / n
}

func cpuAt(samples []Sample, t float64) float64 {
	best, bestD := 0.0, math.Inf(1)
	for _, s := range samples {
		if d := math.Abs(s.T - t); d < bestD && s.CPU >= 0 {
			best, bestD = s.CPU, d
		}
	}
	return best
}
