package loadtest_test

import (
	"math"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/tenon-dev/tenon/loadtest"
)

func TestParseMixRejects(t *testing.T) {
	cases := []struct{ name, mix, want string }{
		{"not JSON", `{`, "not a mix"},
		{"unknown field", `{"tenants":1,"routes":[{"kind":"page","module":"p","share":1}],"extra":1}`, "unknown field"},
		{"no tenants", `{"routes":[{"kind":"page","module":"p","share":1}]}`, "tenants must be from 1"},
		{"too many tenants", `{"tenants":1000000,"routes":[{"kind":"page","module":"p","share":1}]}`, "tenants must be from 1"},
		{"no routes", `{"tenants":1}`, "at least one route"},
		{"bad skew", `{"tenants":1,"skew":"pareto","routes":[{"kind":"page","module":"p","share":1}]}`, `skew must be "uniform" or "zipf"`},
		{"zipf s", `{"tenants":5,"skew":"zipf","zipfS":0.5,"routes":[{"kind":"page","module":"p","share":1}]}`, "zipfS must be above 1"},
		{"unknown kind", `{"tenants":1,"routes":[{"kind":"graphql","share":1}]}`, `unknown kind "graphql"`},
		{"no share", `{"tenants":1,"routes":[{"kind":"page","module":"p"}]}`, "share must be above 0"},
		{"page without module", `{"tenants":1,"routes":[{"kind":"page","share":1}]}`, "a page needs module"},
		{"page with path", `{"tenants":1,"routes":[{"kind":"page","module":"p","path":"/x","share":1}]}`, "a page takes only module"},
		{"webhook without event", `{"tenants":1,"routes":[{"kind":"webhook","share":1}]}`, "a webhook needs event"},
		{"api absolute path", `{"tenants":1,"routes":[{"kind":"api","path":"http://evil/x","share":1}]}`, "path must be a path on the app"},
		{"api bad method", `{"tenants":1,"routes":[{"kind":"api","method":"TRACE","path":"/x","share":1}]}`, "method must be GET"},
		{"event GET", `{"tenants":1,"routes":[{"kind":"forge-event","method":"GET","path":"/e","event":"x","share":1}]}`, "are POSTed"},
		{"event without type", `{"tenants":1,"routes":[{"kind":"forge-event","path":"/e","share":1}]}`, "needs event, the event type"},
		{"duplicate", `{"tenants":1,"routes":[{"kind":"page","module":"p","share":1},{"kind":"page","module":"p","share":2}]}`, "a second route labelled"},
		{"setup page", `{"tenants":1,"routes":[{"kind":"page","module":"p","share":1}],"setup":[{"kind":"page","module":"p"}]}`, `a setup route must be of kind "api"`},
		{"setup share", `{"tenants":1,"routes":[{"kind":"page","module":"p","share":1}],"setup":[{"kind":"api","method":"PUT","path":"/v","share":1}]}`, "leave share out"},
		{"setup absolute path", `{"tenants":1,"routes":[{"kind":"page","module":"p","share":1}],"setup":[{"kind":"api","path":"https://evil/v"}]}`, "setup[0]: path must be a path on the app"},
		{"setup bad method", `{"tenants":1,"routes":[{"kind":"page","module":"p","share":1}],"setup":[{"kind":"api","method":"HEAD","path":"/v"}]}`, "setup[0]: method must be GET"},
		{"bad fail status", `{"tenants":1,"routes":[{"kind":"page","module":"p","share":1}],"product":{"failStatus":200}}`, "failStatus must be from 400"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := loadtest.ParseMix([]byte(c.mix))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseMix = %v, %v; want an error with %q", m, err, c.want)
			}
		})
	}
}

func TestParseMixDefaults(t *testing.T) {
	m, err := loadtest.ParseMix([]byte(`{"tenants":10,"skew":"zipf","routes":[{"kind":"api","path":"/api/x","share":2},{"kind":"forge-trigger","path":"/t","share":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if m.IssuesPerTenant != 3 || m.ZipfS != 1.1 || m.Routes[0].Method != "GET" || m.Routes[1].Method != "POST" || m.Product.FailStatus != 500 {
		t.Fatalf("defaults not filled: %+v", m)
	}
}

func TestParseMixSetup(t *testing.T) {
	m, err := loadtest.ParseMix([]byte(`{"tenants":2,"routes":[{"kind":"page","module":"p","share":1}],"setup":[{"kind":"api","method":"PUT","path":"/api/v","body":{"greeting":"hi"}},{"kind":"api","path":"/api/w"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Setup) != 2 || m.Setup[0].Method != "PUT" || string(m.Setup[0].Body) != `{"greeting":"hi"}` || m.Setup[1].Method != "GET" {
		t.Fatalf("setup = %+v", m.Setup)
	}
}

func TestPickerSkew(t *testing.T) {
	count := func(skew string) []int {
		m := &loadtest.Mix{Tenants: 100, IssuesPerTenant: 5, Skew: skew, ZipfS: 1.2}
		p := loadtest.NewPicker(m, rand.NewSource(7))
		n := make([]int, 100)
		for range 20000 {
			ten, is, u := p.Pick()
			if ten < 0 || ten >= 100 || is < 0 || is >= 5 || u < 0 || u >= 1 {
				t.Fatalf("out of range: %d %d %g", ten, is, u)
			}
			n[ten]++
		}
		return n
	}
	uni := count(loadtest.SkewUniform)
	if uni[0] > 400 || uni[0] < 100 {
		t.Errorf("uniform: tenant 0 picked %d of 20000 times, want about 200", uni[0])
	}
	z := count(loadtest.SkewZipf)
	if z[0] < 10*z[50] || z[0] < 3000 {
		t.Errorf("zipf: tenant 0 picked %d times, tenant 50 %d: want the first tenants to dominate", z[0], z[50])
	}
}

func TestScheduleProfiles(t *testing.T) {
	s, err := loadtest.NewSchedule(loadtest.ProfileLoad, loadtest.ProfileOptions{Rate: 100, Duration: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Due(10 * time.Second); math.Abs(got-1000) > 1e-6 {
		t.Errorf("load: %g due after 10 s, want 1000", got)
	}
	if w, ok := s.When(0); !ok || w != 10*time.Millisecond {
		t.Errorf("load: first request due at %v, want 10ms", w)
	}
	if _, ok := s.When(1000); ok {
		t.Errorf("load: a 1001st request is due inside the schedule")
	}
	// Pace: on time → wait for the next; behind → no wait; the end → stop.
	if wait, stop := s.Pace(0, 0); stop || wait != 10*time.Millisecond {
		t.Errorf("Pace(0,0) = %v, %v", wait, stop)
	}
	if wait, stop := s.Pace(time.Second, 50); stop || wait != 0 {
		t.Errorf("Pace behind = %v, %v; want no wait", wait, stop)
	}
	if _, stop := s.Pace(10*time.Second, 1000); !stop {
		t.Errorf("Pace at the end did not stop")
	}
	s.Max = 5
	if _, stop := s.Pace(0, 5); !stop {
		t.Errorf("Pace past Max did not stop")
	}

	ramp, err := loadtest.NewSchedule(loadtest.ProfileStress, loadtest.ProfileOptions{Rate: 10, Peak: 110, Duration: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got := ramp.Due(10 * time.Second); math.Abs(got-600) > 1e-6 {
		t.Errorf("stress: %g due, want 600 (mean rate 60 for 10 s)", got)
	}
	if r := ramp.Rate(5 * time.Second); math.Abs(r-60) > 1e-9 {
		t.Errorf("stress: rate at 5 s = %g, want 60", r)
	}
	// When inverts Due on a ramp.
	for _, n := range []uint64{0, 10, 299, 599} {
		w, ok := ramp.When(n)
		if !ok || math.Abs(ramp.Due(w)-float64(n+1)) > 1e-6 {
			t.Errorf("stress: When(%d) = %v, Due there %g", n, w, ramp.Due(w))
		}
	}

	sp, err := loadtest.NewSchedule(loadtest.ProfileSpike, loadtest.ProfileOptions{Rate: 10, Peak: 100, Duration: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if sp.Rate(5*time.Second) != 10 || sp.Rate(9*time.Second) != 100 || sp.Rate(15*time.Second) != 10 || sp.Duration() != 20*time.Second {
		t.Errorf("spike: rates %g %g %g over %v", sp.Rate(5*time.Second), sp.Rate(9*time.Second), sp.Rate(15*time.Second), sp.Duration())
	}

	for _, bad := range []struct {
		p string
		o loadtest.ProfileOptions
	}{
		{"load", loadtest.ProfileOptions{Rate: 0, Duration: time.Second}},
		{"load", loadtest.ProfileOptions{Rate: 1}},
		{"stress", loadtest.ProfileOptions{Rate: 10, Peak: 5, Duration: time.Second}},
		{"spike", loadtest.ProfileOptions{Rate: 10, Duration: time.Second}},
		{"ramp", loadtest.ProfileOptions{Rate: 10, Duration: time.Second}},
	} {
		if _, err := loadtest.NewSchedule(bad.p, bad.o); err == nil {
			t.Errorf("NewSchedule(%s, %+v) accepted", bad.p, bad.o)
		}
	}
}

func TestParseSLO(t *testing.T) {
	slo, err := loadtest.ParseSLO("p95<200ms, p99.9<=1s, max<5s, errors<0.1%, throughput>=100")
	if err != nil {
		t.Fatal(err)
	}
	if len(slo) != 5 || slo[0].Value != 0.2 || slo[3].Value != 0.001 || slo[4].Op != ">=" {
		t.Fatalf("parsed %+v", slo)
	}
	for _, bad := range []struct{ in, want string }{
		{"p95", "want metric"},
		{"p95>200ms", "upper bound"},
		{"p95<fast", "not a positive duration"},
		{"errors<2", "more than all requests"},
		{"errors>1%", "upper bound"},
		{"throughput<5", "lower bound"},
		{"latency<1s", "unknown metric"},
		{"p95<1s,,errors<1%", "empty term"},
		{"p100<1s", "unknown metric"},
	} {
		if _, err := loadtest.ParseSLO(bad.in); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("ParseSLO(%q) = %v, want an error with %q", bad.in, err, bad.want)
		}
	}
	if slo, err := loadtest.ParseSLO(""); err != nil || slo != nil {
		t.Errorf("empty SLO = %v, %v", slo, err)
	}
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		code int
		err  string
		want string
	}{
		{200, "", ""}, {204, "", ""}, {429, "", loadtest.ClassRateLimited}, {503, "", loadtest.Class5xx}, {401, "", loadtest.Class4xx},
		{0, "Get \"x\": context deadline exceeded (Client.Timeout exceeded)", loadtest.ClassTimeout},
		{0, "dial tcp: connect: connection refused", loadtest.ClassConnection},
		{0, "something else", loadtest.ClassOther},
	} {
		var err error
		if c.err != "" {
			err = errString(c.err)
		}
		if got := loadtest.Classify(c.code, err); got != c.want {
			t.Errorf("Classify(%d, %q) = %q, want %q", c.code, c.err, got, c.want)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }
