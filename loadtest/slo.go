package loadtest

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SLO is a list of objectives such as "p95<200ms,errors<0.1%"; a run
// passes when every one holds over the whole run.
type SLO []Objective

// Objective is one term of an SLO.
type Objective struct {
	// Metric is a latency percentile ("p50", "p99.9"), "max", "errors"
	// (a fraction of the requests) or "throughput" (successful requests
	// per second).
	Metric string  `json:"metric"`
	Op     string  `json:"op"`
	Value  float64 `json:"value"` // seconds for latencies, a fraction for errors
	Text   string  `json:"text"`
}

// ParseSLO reads a comma-separated list of objectives:
//
//	p95<200ms, p99<=1s, max<5s, errors<0.1%, throughput>=100
//
// Latencies take a unit (µs, us, ms, s); errors a percentage or a
// fraction; throughput requests per second. Latency and error
// objectives must be upper bounds, throughput a lower bound.
func ParseSLO(s string) (SLO, error) {
	var slo SLO
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for _, term := range strings.Split(s, ",") {
		term = strings.TrimSpace(term)
		if term == "" {
			return nil, fmt.Errorf("SLO %q: an empty term (two commas in a row?)", s)
		}
		o, err := parseObjective(term)
		if err != nil {
			return nil, fmt.Errorf("SLO term %q: %w", term, err)
		}
		slo = append(slo, o)
	}
	return slo, nil
}

func parseObjective(term string) (Objective, error) {
	i := strings.IndexAny(term, "<>")
	if i <= 0 {
		return Objective{}, fmt.Errorf("want metric, then < <= > or >=, then a value (e.g. p95<200ms)")
	}
	o := Objective{Metric: strings.TrimSpace(term[:i]), Op: term[i : i+1], Text: term}
	rest := term[i+1:]
	if strings.HasPrefix(rest, "=") {
		o.Op += "="
		rest = rest[1:]
	}
	rest = strings.TrimSpace(rest)
	upper := o.Op == "<" || o.Op == "<="
	switch {
	case o.Metric == "max" || isPercentile(o.Metric):
		if !upper {
			return o, fmt.Errorf("a latency objective is an upper bound: use < or <=")
		}
		d, err := time.ParseDuration(strings.Replace(rest, "µs", "us", 1))
		if err != nil || d <= 0 {
			return o, fmt.Errorf("%q is not a positive duration such as 200ms", rest)
		}
		o.Value = d.Seconds()
	case o.Metric == "errors":
		if !upper {
			return o, fmt.Errorf("an error objective is an upper bound: use < or <=")
		}
		v, pct := strings.CutSuffix(rest, "%")
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || f < 0 {
			return o, fmt.Errorf("%q is not a share such as 0.1%% or 0.001", rest)
		}
		if pct {
			f /= 100
		}
		if f > 1 {
			return o, fmt.Errorf("%q is more than all requests", rest)
		}
		o.Value = f
	case o.Metric == "throughput":
		if upper {
			return o, fmt.Errorf("a throughput objective is a lower bound: use > or >=")
		}
		f, err := strconv.ParseFloat(strings.TrimSuffix(rest, "/s"), 64)
		if err != nil || f < 0 {
			return o, fmt.Errorf("%q is not a rate in requests per second", rest)
		}
		o.Value = f
	default:
		return o, fmt.Errorf("unknown metric %q: pNN (e.g. p95, p99.9), max, errors or throughput", o.Metric)
	}
	return o, nil
}

func isPercentile(m string) bool {
	q, ok := percentileOf(m)
	return ok && q > 0 && q < 100
}

func percentileOf(m string) (float64, bool) {
	if !strings.HasPrefix(m, "p") {
		return 0, false
	}
	q, err := strconv.ParseFloat(m[1:], 64)
	return q, err == nil
}

// Stats are the figures an objective is checked against.
type Stats interface {
	// Quantile returns the latency at q (0–100), in seconds.
	Quantile(q float64) float64
	MaxLatency() float64
	ErrorRate() float64
	Throughput() float64
}

// Outcome is one objective checked.
type Outcome struct {
	Objective
	Actual float64 `json:"actual"`
	Met    bool    `json:"met"`
}

// Check evaluates every objective against st.
func (slo SLO) Check(st Stats) (outcomes []Outcome, met bool) {
	met = true
	for _, o := range slo {
		var v float64
		switch {
		case o.Metric == "max":
			v = st.MaxLatency()
		case o.Metric == "errors":
			v = st.ErrorRate()
		case o.Metric == "throughput":
			v = st.Throughput()
		default:
			q, _ := percentileOf(o.Metric)
			v = st.Quantile(q)
		}
		ok := compare(v, o.Op, o.Value)
		met = met && ok
		outcomes = append(outcomes, Outcome{Objective: o, Actual: v, Met: ok})
	}
	return outcomes, met
}

func compare(v float64, op string, bound float64) bool {
	switch op {
	case "<":
		return v < bound
	case "<=":
		return v <= bound
	case ">":
		return v > bound
	default:
		return v >= bound
	}
}

// latencyOnly keeps the objectives that a short window can judge
// (latency and errors, not throughput).
func (slo SLO) latencyOnly() SLO {
	var out SLO
	for _, o := range slo {
		if o.Metric != "throughput" {
			out = append(out, o)
		}
	}
	return out
}
