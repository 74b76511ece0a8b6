package loadtest

import (
	"fmt"
	"html"
	"html/template"
	"io"
	"math"
	"os"
	"sort"
	"strings"
)

// series is one line of a chart.
type series struct {
	name  string
	color string
	ys    []float64 // NaN: no point
}

var palette = []string{"#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7a8a", "#57606a"}

// svgChart draws lines over a shared x axis as an inline SVG.
func svgChart(title, unit string, xs []float64, lines []series) template.HTML {
	const w, h, left, right, top, bottom = 720.0, 220.0, 64.0, 12.0, 28.0, 30.0
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s"><title>%s</title>`, w, h, html.EscapeString(title), html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%.0f" y="16" class="ct">%s</text>`, left, html.EscapeString(title))
	xmax, ymax := 0.0, 0.0
	for _, x := range xs {
		xmax = math.Max(xmax, x)
	}
	for _, l := range lines {
		for _, y := range l.ys {
			if !math.IsNaN(y) {
				ymax = math.Max(ymax, y)
			}
		}
	}
	if len(xs) == 0 || xmax == 0 {
		b.WriteString(`<text x="360" y="110" class="empty" text-anchor="middle">no data</text></svg>`)
		return template.HTML(b.String())
	}
	ymax = niceCeil(ymax)
	px := func(x float64) float64 { return left + (w-left-right)*x/xmax }
	py := func(y float64) float64 { return h - bottom - (h-top-bottom)*y/ymax }
	for i := 0; i <= 4; i++ {
		y := ymax * float64(i) / 4
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" class="grid"/>`, left, w-right, py(y), py(y))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="tick" text-anchor="end">%s</text>`, left-4, py(y)+4, html.EscapeString(fmtNum(y)+" "+unit))
	}
	for i := 0; i <= 5; i++ {
		x := xmax * float64(i) / 5
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" class="tick" text-anchor="middle">%.0f s</text>`, px(x), h-bottom+16, x)
	}
	lx := left + 8
	for i, l := range lines {
		color := l.color
		if color == "" {
			color = palette[i%len(palette)]
		}
		var pts []string
		for j, y := range l.ys {
			if j < len(xs) && !math.IsNaN(y) {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(xs[j]), py(y)))
			}
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.6" points="%s"><title>%s</title></polyline>`, color, strings.Join(pts, " "), html.EscapeString(l.name))
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="10" height="3" fill="%s"/><text x="%.1f" y="%.1f" class="legend">%s</text>`,
			lx, top-2, color, lx+13, top+2, html.EscapeString(l.name))
		lx += 20 + 7*float64(len(l.name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*e {
			return m * e
		}
	}
	return 10 * e
}

func fmtNum(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// Charts draws the report's plots.
func (rep *Report) Charts() []template.HTML {
	var xs, p50, p90, p99, thr, off []float64
	classes := map[string][]float64{}
	var names []string
	for _, w := range rep.Windows {
		for c := range w.Errors {
			if _, ok := classes[c]; !ok {
				classes[c] = nil
				names = append(names, c)
			}
		}
	}
	sort.Strings(names)
	for _, w := range rep.Windows {
		xs = append(xs, w.Start)
		p50, p90, p99 = append(p50, w.P50), append(p90, w.P90), append(p99, w.P99)
		thr, off = append(thr, w.Throughput), append(off, w.Offered)
		for _, c := range names {
			classes[c] = append(classes[c], float64(w.Errors[c]))
		}
	}
	charts := []template.HTML{
		svgChart("Latency percentiles over time (from when each request was due)", "ms", xs,
			[]series{{name: "p50", ys: p50}, {name: "p90", ys: p90}, {name: "p99", ys: p99}}),
	}
	tl := []series{{name: "answered OK/s", ys: thr}}
	if rep.Model == ModelOpen {
		tl = append(tl, series{name: "offered/s", ys: off, color: "#8c959f"})
	}
	charts = append(charts, svgChart("Throughput", "req/s", xs, tl))
	var el []series
	for _, c := range names {
		el = append(el, series{name: c, ys: classes[c]})
	}
	if len(el) == 0 {
		el = []series{{name: "errors", ys: make([]float64, len(xs))}}
	}
	charts = append(charts, svgChart("Errors by class per window", "", xs, el))
	if len(rep.Samples) > 0 {
		var sx, rss, cpu, fds []float64
		metrics := map[string][]float64{}
		var mnames []string
		for _, s := range rep.Samples {
			for k := range s.Metrics {
				if _, ok := metrics[k]; !ok {
					metrics[k] = nil
					mnames = append(mnames, k)
				}
			}
		}
		sort.Strings(mnames)
		for _, s := range rep.Samples {
			sx = append(sx, s.T)
			rss = append(rss, float64(s.RSS)/(1<<20))
			c := s.CPU
			if c < 0 {
				c = math.NaN()
			}
			cpu = append(cpu, c)
			fds = append(fds, float64(s.FDs))
			for _, k := range mnames {
				v, ok := s.Metrics[k]
				if !ok {
					v = math.NaN()
				}
				metrics[k] = append(metrics[k], v)
			}
		}
		charts = append(charts,
			svgChart("Target RSS", "MiB", sx, []series{{name: "RSS", ys: rss}}),
			svgChart("Target CPU (100 % = one core)", "%", sx, []series{{name: "CPU", ys: cpu}}),
			svgChart("Target open files", "", sx, []series{{name: "fds", ys: fds}}))
		for _, k := range mnames {
			charts = append(charts, svgChart(k, "", sx, []series{{name: k, ys: metrics[k]}}))
		}
	}
	return charts
}

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"ms":   func(v float64) string { return fmtNum(v) + " ms" },
	"num":  fmtNum,
	"mulf": func(v float64) float64 { return v * 100 },
	"pct": func(a, b int) string {
		if b == 0 {
			return "–"
		}
		return fmt.Sprintf("%.3f %%", 100*float64(b-a)/float64(b))
	},
	"sec": func(v float64) string { return fmt.Sprintf("%.0f s", v) },
	"objv": func(o Outcome) string {
		if o.Metric == "errors" {
			return fmt.Sprintf("%.3f %%", o.Actual*100)
		}
		if o.Metric == "throughput" {
			return fmtNum(o.Actual) + " req/s"
		}
		return fmtNum(o.Actual*1000) + " ms"
	},
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.R.Title}}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:780px;color:#1f2328;padding:0 12px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
.verdict{display:inline-block;padding:4px 10px;border-radius:6px;font-weight:600;color:#fff}.pass{background:#1a7f37}.fail{background:#d1242f}
table{border-collapse:collapse;width:100%;margin:6px 0}td,th{border-bottom:1px solid #eaeef2;padding:4px 6px;text-align:left;font-variant-numeric:tabular-nums}
th{background:#f6f8fa}.chart{width:100%;height:auto;margin:8px 0 4px;background:#fff}.ct{font-weight:600;font-size:13px}
.tick,.legend{font-size:11px;fill:#57606a}.grid{stroke:#eaeef2}.empty{fill:#8c959f}.muted{color:#57606a}ul{padding-left:20px}
</style></head><body>
<h1>{{.R.Title}}</h1>
<p class="muted">{{.R.Started.Format "2006-01-02 15:04:05 UTC"}} · target {{.R.Target}} · {{.R.Profile}} profile, {{.R.Model}} model{{if .R.Workers}} ({{.R.Workers}} workers){{end}} · ran {{sec .R.Elapsed}}{{if .R.Stopped}} · stopped early: {{.R.Stopped}}{{end}}</p>
<p><span class="verdict {{if .R.Passed}}pass{{else}}fail{{end}}" id="verdict">{{if .R.Passed}}PASS{{else}}FAIL{{end}}</span>
{{with .R.SLO}} SLO: {{range $i, $o := .}}{{if $i}}, {{end}}{{$o.Text}}{{end}}{{else}} no SLO given{{end}}</p>
<h2>Summary</h2>
<table id="summary"><tr><th>Requests</th><th>Failed</th><th>Throughput</th><th>p50</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th></tr>
<tr><td>{{.R.Total.Count}}</td><td>{{pct .R.Total.OK .R.Total.Count}}</td><td>{{num .R.Total.Throughput}} req/s</td><td>{{ms .R.Total.Latency.P50}}</td><td>{{ms .R.Total.Latency.P95}}</td><td>{{ms .R.Total.Latency.P99}}</td><td>{{ms .R.Total.Latency.P999}}</td><td>{{ms .R.Total.Latency.Max}}</td></tr></table>
{{with .R.SLO}}<table id="slo"><tr><th>Objective</th><th>Measured</th><th>Met</th></tr>{{range .}}<tr><td>{{.Text}}</td><td>{{objv .}}</td><td>{{if .Met}}yes{{else}}<b>no</b>{{end}}</td></tr>{{end}}</table>{{end}}
<h2>What it means</h2><ul id="analysis">
{{with .R.Analysis.Saturation}}<li>Saturation began at {{sec .T}} with {{num .Offered}} req/s offered: {{.Reason}}{{if .CPU}} (target CPU {{num .CPU}} %){{end}}.</li>{{else}}<li>No saturation: the target kept up with the offered load.</li>{{end}}
<li>Best window: {{num .R.Analysis.MaxThroughput}} req/s answered.</li>
{{range .R.Analysis.Notes}}<li>{{.}}</li>{{end}}</ul>
{{with .R.Analysis.Trends}}<table id="trends"><tr><th>Series</th><th>First</th><th>Last</th><th>Slope per hour</th><th>Change</th><th>Trend</th></tr>{{range .}}<tr><td>{{.Series}}</td><td>{{num .First}} {{.Unit}}</td><td>{{num .Last}} {{.Unit}}</td><td>{{num .Slope}} {{.Unit}}</td><td>{{printf "%+.1f %%" (mulf .Relative)}}</td><td>{{if .Flagged}}<b>rising</b>{{else}}flat{{end}}</td></tr>{{end}}</table>{{end}}
<h2>Over time</h2>
{{range .Charts}}{{.}}{{end}}
<h2>Routes</h2>
<table id="routes"><tr><th>Route</th><th>Requests</th><th>Failed</th><th>p50</th><th>p99</th><th>p99 (service)</th><th>Errors</th></tr>
{{range .R.Routes}}<tr><td>{{.Name}}</td><td>{{.Count}}</td><td>{{pct .OK .Count}}</td><td>{{ms .Latency.P50}}</td><td>{{ms .Latency.P99}}</td><td>{{ms .Service.P99}}</td><td>{{range $k, $v := .Errors}}{{$k}}: {{$v}} {{end}}</td></tr>{{end}}</table>
<p class="muted">Latency counts from when a request was due by the schedule; "service" from when it was sent. A gap means requests waited for the generator or a connection: the target was behind.</p>
<h2>Mix and machine</h2>
<table id="mix"><tr><th>Tenants</th><td>{{.R.Mix.Tenants}} ({{.R.Mix.Skew}}{{if .R.Mix.ZipfS}}, s = {{.R.Mix.ZipfS}}{{end}}), {{.R.Mix.IssuesPerTenant}} issues each</td></tr>
{{range .R.Mix.Routes}}<tr><th>{{.Label}}</th><td>share {{num .Share}}</td></tr>{{end}}
<tr><th>Product API</th><td>latency {{.R.Mix.Product.LatencyMs}} ms{{if .R.Mix.Product.FailEvery}}, every {{.R.Mix.Product.FailEvery}}th call fails {{.R.Mix.Product.FailStatus}}{{end}}{{if .R.Mix.Product.RateLimitEvery}}, every {{.R.Mix.Product.RateLimitEvery}}th answers 429{{end}}</td></tr>
<tr><th>Schedule</th><td>{{range .R.Schedule.Segments}}{{.Name}} {{.Duration}} {{num .From}}→{{num .To}} req/s; {{end}}</td></tr>
<tr><th>Machine</th><td>{{.R.Machine.Host}}, {{.R.Machine.OS}}, {{.R.Machine.CPUs}} CPUs {{.R.Machine.CPUModel}}, {{.R.Machine.MemoryMB}} MiB, load {{num .R.Machine.Load1}} at start, {{.R.Machine.Go}}</td></tr></table>
</body></html>
`))

// WriteHTML writes the self-contained HTML report (no scripts, no
// external resources).
func (rep *Report) WriteHTML(w io.Writer) error {
	return reportTmpl.Execute(w, struct {
		R      *Report
		Charts []template.HTML
	}{rep, rep.Charts()})
}

// WriteHTMLFile writes the HTML report to path.
func (rep *Report) WriteHTMLFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write the HTML report: %w", err)
	}
	if err := rep.WriteHTML(f); err != nil {
		f.Close()
		return fmt.Errorf("write the HTML report: %w", err)
	}
	return f.Close()
}
