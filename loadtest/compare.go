package loadtest

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// Delta is one figure of two reports.
type Delta struct {
	Figure string
	A, B   float64
	Unit   string
	// Worse says the change is in the bad direction by more than 10 %.
	Worse bool
}

// Compare lines up the figures of two reports, a the before and b the
// after.
func Compare(a, b *Report) []Delta {
	peak := func(r *Report) float64 {
		var m int64
		for _, s := range r.Samples {
			m = max(m, s.RSS)
		}
		return float64(m) / (1 << 20)
	}
	errRate := func(r *Report) float64 {
		if r.Total.Count == 0 {
			return 0
		}
		return 100 * float64(r.Total.Count-r.Total.OK) / float64(r.Total.Count)
	}
	knee := func(r *Report) float64 {
		if r.Analysis.Knee != nil {
			return r.Analysis.Knee.Offered
		}
		return 0
	}
	recov := func(r *Report) float64 {
		if r.Analysis.Recovery != nil {
			return *r.Analysis.Recovery
		}
		return 0
	}
	rows := []struct {
		name, unit    string
		get           func(*Report) float64
		higherIsWorse bool
	}{
		{"throughput", "req/s", func(r *Report) float64 { return r.Total.Throughput }, false},
		{"p50", "ms", func(r *Report) float64 { return r.Total.Latency.P50 }, true},
		{"p95", "ms", func(r *Report) float64 { return r.Total.Latency.P95 }, true},
		{"p99", "ms", func(r *Report) float64 { return r.Total.Latency.P99 }, true},
		{"max", "ms", func(r *Report) float64 { return r.Total.Latency.Max }, true},
		{"errors", "%", errRate, true},
		{"best window", "req/s", func(r *Report) float64 { return r.Analysis.MaxThroughput }, false},
		{"knee", "req/s", knee, false},
		{"recovery", "s", recov, true},
		{"peak RSS", "MiB", peak, true},
	}
	var out []Delta
	for _, row := range rows {
		va, vb := row.get(a), row.get(b)
		d := Delta{Figure: row.name, A: va, B: vb, Unit: row.unit}
		if va > 0 {
			ch := (vb - va) / va
			d.Worse = (row.higherIsWorse && ch > 0.10) || (!row.higherIsWorse && ch < -0.10)
		} else if row.higherIsWorse && vb > 0 && row.name == "errors" {
			d.Worse = true
		}
		out = append(out, d)
	}
	return out
}

// WriteComparison prints Compare's figures as a table.
func WriteComparison(w io.Writer, a, b *Report, an, bn string) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "figure\t%s\t%s\tchange\t\n", an, bn)
	for _, d := range Compare(a, b) {
		change := "–"
		if d.A != 0 {
			change = fmt.Sprintf("%+.1f %%", 100*(d.B-d.A)/d.A)
		}
		flag := ""
		if d.Worse {
			flag = "worse"
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%s %s\t%s\t%s\n", d.Figure, fmtNum(d.A), d.Unit, fmtNum(d.B), d.Unit, change, flag)
	}
	return tw.Flush()
}
