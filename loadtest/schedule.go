package loadtest

import (
	"fmt"
	"math"
	"time"
)

// Profiles.
const (
	ProfileLoad   = "load"   // a steady rate for a time
	ProfileStress = "stress" // a rising rate until the SLO breaks
	ProfileSoak   = "soak"   // a steady rate for a long time, watching for drift
	ProfileSpike  = "spike"  // a baseline, a sudden burst, the baseline again
)

// Segment is a stretch of a schedule whose rate goes linearly from From
// to To requests per second.
type Segment struct {
	Name     string        `json:"name"`
	Duration time.Duration `json:"duration"`
	From     float64       `json:"from"`
	To       float64       `json:"to"`
}

// Schedule is a profile as a pure function of time: the rate at each
// moment, the number of requests due by then, and when the n-th is due.
// It implements vegeta's Pacer, and stops at its end or after Max
// requests.
type Schedule struct {
	Profile  string    `json:"profile"`
	Segments []Segment `json:"segments"`
	// Max bounds the number of requests (0: no bound but the time).
	Max uint64 `json:"max,omitempty"`
}

// Duration is the length of the whole schedule.
func (s *Schedule) Duration() time.Duration {
	var d time.Duration
	for _, g := range s.Segments {
		d += g.Duration
	}
	return d
}

// Rate is the rate due at elapsed, in requests per second.
func (s *Schedule) Rate(elapsed time.Duration) float64 {
	start := time.Duration(0)
	for _, g := range s.Segments {
		if elapsed < start+g.Duration {
			f := float64(elapsed-start) / float64(g.Duration)
			return g.From + (g.To-g.From)*f
		}
		start += g.Duration
	}
	return 0
}

// Due is the number of requests due by elapsed (the integral of the rate).
func (s *Schedule) Due(elapsed time.Duration) float64 {
	var hits float64
	start := time.Duration(0)
	for _, g := range s.Segments {
		if elapsed <= start {
			break
		}
		t := min(elapsed-start, g.Duration).Seconds()
		slope := (g.To - g.From) / g.Duration.Seconds()
		hits += g.From*t + slope*t*t/2
		start += g.Duration
	}
	return hits
}

// When is the moment the n-th request (0-based) is due; ok is false
// when the schedule ends before it.
func (s *Schedule) When(n uint64) (time.Duration, bool) {
	target := float64(n + 1)
	var hits float64
	start := time.Duration(0)
	for _, g := range s.Segments {
		secs := g.Duration.Seconds()
		slope := (g.To - g.From) / secs
		seg := g.From*secs + slope*secs*secs/2
		if hits+seg >= target {
			need := target - hits
			var t float64
			if math.Abs(slope) < 1e-12 {
				t = need / g.From
			} else {
				// need = From*t + slope*t²/2, solved for the first t ≥ 0.
				disc := g.From*g.From + 2*slope*need
				t = (-g.From + math.Sqrt(max(disc, 0))) / slope
			}
			return start + time.Duration(t*float64(time.Second)), true
		}
		hits += seg
		start += g.Duration
	}
	return s.Duration(), false
}

// Pace implements vegeta.Pacer: no wait while requests are overdue,
// otherwise until the next one is due.
func (s *Schedule) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	if s.Max > 0 && hits >= s.Max {
		return 0, true
	}
	if elapsed >= s.Duration() {
		return 0, true
	}
	if float64(hits) < s.Due(elapsed) {
		return 0, false
	}
	next, ok := s.When(hits)
	if !ok {
		return 0, true
	}
	return next - elapsed, false
}

// ProfileOptions shape a profile's schedule.
type ProfileOptions struct {
	// Rate is the steady rate (load, soak), the baseline (spike) or the
	// starting rate (stress).
	Rate float64
	// Peak is the burst rate (spike) or the highest rate (stress).
	Peak float64
	// Duration is the whole run.
	Duration time.Duration
}

// NewSchedule builds the schedule of a profile:
//   - load and soak: Rate for Duration;
//   - stress: a ramp from Rate to Peak over Duration (the run stops
//     early once the SLO has broken);
//   - spike: Rate for 40 % of Duration, Peak for 10 %, Rate for the
//     remaining 50 % so recovery can be seen.
func NewSchedule(profile string, o ProfileOptions) (*Schedule, error) {
	if o.Duration <= 0 {
		return nil, fmt.Errorf("the duration must be above 0")
	}
	if o.Rate <= 0 {
		return nil, fmt.Errorf("the rate must be above 0 requests per second, not %g", o.Rate)
	}
	s := &Schedule{Profile: profile}
	switch profile {
	case ProfileLoad, ProfileSoak:
		s.Segments = []Segment{{Name: "steady", Duration: o.Duration, From: o.Rate, To: o.Rate}}
	case ProfileStress:
		if o.Peak <= o.Rate {
			return nil, fmt.Errorf("stress needs a peak rate above the starting rate %g, not %g", o.Rate, o.Peak)
		}
		s.Segments = []Segment{{Name: "ramp", Duration: o.Duration, From: o.Rate, To: o.Peak}}
	case ProfileSpike:
		if o.Peak <= o.Rate {
			return nil, fmt.Errorf("spike needs a burst rate above the baseline %g, not %g", o.Rate, o.Peak)
		}
		base := o.Duration * 4 / 10
		burst := o.Duration / 10
		s.Segments = []Segment{
			{Name: "baseline", Duration: base, From: o.Rate, To: o.Rate},
			{Name: "burst", Duration: burst, From: o.Peak, To: o.Peak},
			{Name: "recovery", Duration: o.Duration - base - burst, From: o.Rate, To: o.Rate},
		}
	default:
		return nil, fmt.Errorf("unknown profile %q: load, stress, soak or spike", profile)
	}
	return s, nil
}

// segmentAt returns the name of the segment at elapsed and its start.
func (s *Schedule) segmentAt(elapsed time.Duration) (string, time.Duration) {
	start := time.Duration(0)
	for _, g := range s.Segments {
		if elapsed < start+g.Duration {
			return g.Name, start
		}
		start += g.Duration
	}
	return "", start
}
