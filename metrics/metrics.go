// Package metrics exposes what an operator needs to keep a service level
// promise in Prometheus form: requests by route pattern, method and
// status with latency buckets placed at common objectives, calls to the
// products, the job queue, the store's connection pools, lifecycle
// events, installed tenants, certificates and build information.
//
// Every process gets its own registry (New); nothing is registered in the
// client library's global default registry. No series carries a tenant:
// a label per clientKey would grow with every install and is what logs
// are for.
//
// Metrics implements server.RequestObserver and tenon.Observer, so it is
// plugged in as server.Config.Observer and wherever a tenon.Observer is
// taken (host clients, queue workers).
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/server"
)

// DefaultBuckets are the upper bounds, in seconds, of the latency
// histograms. They sit at the thresholds service level objectives are
// usually written against (50, 100, 250, 500 ms, 1 s, ...), so "the share
// of requests under 250 ms" is an exact bucket, not an interpolation, and
// p90/p95 estimates are tight where it matters.
var DefaultBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 2.5, 5, 10, 30}

// Options configure Metrics.
type Options struct {
	// Buckets are the latency histogram bounds in seconds. Default
	// DefaultBuckets.
	Buckets []float64
	// Store, when it implements tenon.PoolStatser or tenon.TenantCounter,
	// is asked on each scrape for its pool state and tenant counts.
	Store tenon.Store
	// ScrapeTimeout bounds the store queries of one scrape. Default 2s.
	ScrapeTimeout time.Duration
	// Version and Revision label tenon_build_info. Default: read from
	// the binary's build information.
	Version, Revision string
	// Logger receives failures to collect. Default: discard.
	Logger *slog.Logger
}

// Metrics is one process's registry and instruments. It is safe for
// concurrent use.
type Metrics struct {
	reg *prometheus.Registry
	log *slog.Logger

	requests  *prometheus.HistogramVec
	lifecycle *prometheus.CounterVec
	outbound  *prometheus.HistogramVec
	retries   *prometheus.CounterVec
	queueJobs *prometheus.GaugeVec
	queueAge  *prometheus.GaugeVec

	budgetLeft *prometheus.GaugeVec
	budgetNear *prometheus.GaugeVec
	pauses     *prometheus.CounterVec
	topShareMu sync.Mutex
	topShare   *prometheus.GaugeVec
}

var (
	_ server.RequestObserver = (*Metrics)(nil)
	_ tenon.Observer         = (*Metrics)(nil)
	_ tenon.RateObserver     = (*Metrics)(nil)
)

// New returns Metrics with a registry of its own, holding tenon's series
// and the Go runtime and process collectors.
func New(opts Options) *Metrics {
	if len(opts.Buckets) == 0 {
		opts.Buckets = DefaultBuckets
	}
	if opts.ScrapeTimeout <= 0 {
		opts.ScrapeTimeout = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{reg: prometheus.NewRegistry(), log: opts.Logger}
	m.requests = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tenon_http_request_duration_seconds",
		Help:    "Time to answer an HTTP request, by route pattern, method and status code. Its _count is the number of requests.",
		Buckets: opts.Buckets,
	}, []string{"route", "method", "code"})
	m.lifecycle = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tenon_lifecycle_events_total",
		Help: "Lifecycle callbacks from the product, by event and outcome (accepted, refused, failed).",
	}, []string{"event", "outcome"})
	m.outbound = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tenon_outbound_request_duration_seconds",
		Help:    "Time of each attempt of a call to a product, by product, method, status code (0 without an answer) and outcome.",
		Buckets: opts.Buckets,
	}, []string{"product", "method", "code", "outcome"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tenon_outbound_retries_total",
		Help: "Attempts of calls to a product beyond the first, by product.",
	}, []string{"product"})
	m.queueJobs = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tenon_queue_jobs",
		Help: "Jobs in the durable queue, by queue and state (pending, running, dead).",
	}, []string{"queue", "state"})
	m.queueAge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tenon_queue_oldest_pending_seconds",
		Help: "Age of the oldest pending job, by queue; 0 when none is pending.",
	}, []string{"queue"})

	m.budgetLeft = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tenon_outbound_budget_remaining_points",
		Help: "Points left in a product's rate-limit quota pool as its last answer said, by product and policy (global-app-quota, tenant-app-quota).",
	}, []string{"product", "policy"})
	m.budgetNear = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tenon_outbound_budget_near_limit",
		Help: "1 when the product's last answer said the app is near a rate limit, by product and policy.",
	}, []string{"product", "policy"})
	m.pauses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tenon_outbound_rate_limit_pauses_total",
		Help: "Pauses of calls to a product after a 429, by product, scope (product, tenant) and reason (RateLimit-Reason).",
	}, []string{"product", "scope", "reason"})
	m.topShare = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tenon_outbound_budget_top_tenant_share",
		Help: "Share of the points spent this quota window by the few tenants that spent most, by product and tenant site; only the top tenants have a series.",
	}, []string{"product", "tenant"})

	version, revision, goVersion := buildInfo(opts.Version, opts.Revision)
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "tenon_build_info",
		Help:        "Always 1; the labels say which build is running.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goVersion},
	})
	buildInfo.Set(1)

	m.reg.MustRegister(
		m.requests, m.lifecycle, m.outbound, m.retries, m.queueJobs, m.queueAge, buildInfo,
		m.budgetLeft, m.budgetNear, m.pauses, m.topShare,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	if opts.Store != nil {
		m.reg.MustRegister(&storeCollector{store: opts.Store, timeout: opts.ScrapeTimeout, log: opts.Logger})
	}
	return m
}

// Registry returns the registry, for an app's own collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format. Mount
// it on the admin listener, not on the public one.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		ErrorHandling:     promhttp.ContinueOnError,
		Registry:          m.reg, // promhttp_metric_handler_errors_total
		Timeout:           10 * time.Second,
		EnableOpenMetrics: true,
	})
}

// ObserveRequest implements server.RequestObserver.
func (m *Metrics) ObserveRequest(info server.RequestInfo) {
	route := info.Route
	if route == "" {
		// Paths no route matched are the attacker's choice: one label
		// value for all of them.
		route = "unmatched"
	}
	m.requests.WithLabelValues(route, method(info.Method), codeLabel(info.Status)).Observe(info.Duration.Seconds())
	if info.Lifecycle != "" {
		m.lifecycle.WithLabelValues(info.Lifecycle, outcome(info.Status)).Inc()
	}
}

// ObserveOutbound implements tenon.Observer.
func (m *Metrics) ObserveOutbound(c tenon.OutboundCall) {
	product := c.Product
	if product == "" {
		product = "unknown"
	}
	out := c.Outcome
	if out == "" {
		out = "unknown"
	}
	m.outbound.WithLabelValues(product, method(c.Method), codeLabel(c.Status), out).Observe(c.Duration.Seconds())
	if c.Attempt > 1 {
		m.retries.WithLabelValues(product).Inc()
	}
}

// ObserveQueue implements tenon.Observer.
func (m *Metrics) ObserveQueue(s tenon.QueueStats) {
	m.queueJobs.WithLabelValues(s.Queue, "pending").Set(float64(s.Pending))
	m.queueJobs.WithLabelValues(s.Queue, "running").Set(float64(s.Running))
	m.queueJobs.WithLabelValues(s.Queue, "dead").Set(float64(s.Dead))
	m.queueAge.WithLabelValues(s.Queue).Set(s.OldestAge.Seconds())
}

// ObserveRateBudget implements tenon.RateObserver.
func (m *Metrics) ObserveRateBudget(b tenon.RateBudgetStats) {
	policy := rateLabel(b.Policy)
	m.budgetLeft.WithLabelValues(rateLabel(b.Product), policy).Set(float64(b.Remaining))
	near := 0.0
	if b.NearLimit {
		near = 1
	}
	m.budgetNear.WithLabelValues(rateLabel(b.Product), policy).Set(near)
}

// ObserveRatePause implements tenon.RateObserver: it counts pauses as
// they start.
func (m *Metrics) ObserveRatePause(p tenon.RatePause) {
	if p.Start {
		m.pauses.WithLabelValues(rateLabel(p.Product), rateLabel(p.Scope), rateLabel(p.Reason)).Inc()
	}
}

// ObserveTenantShares implements tenon.RateObserver: the product's series
// are replaced by the top tenants given, so they stay few.
func (m *Metrics) ObserveTenantShares(product string, top []tenon.TenantShare) {
	product = rateLabel(product)
	m.topShareMu.Lock()
	defer m.topShareMu.Unlock()
	m.topShare.DeletePartialMatch(prometheus.Labels{"product": product})
	for i, s := range top {
		if i == 10 {
			break
		}
		m.topShare.WithLabelValues(product, s.Tenant).Set(s.Used)
	}
}

// rateLabel bounds a label value that comes from a product's header.
func rateLabel(v string) string {
	switch {
	case v == "":
		return "unknown"
	case len(v) > 64:
		return v[:64]
	}
	return v
}

// WatchCertificates adds tenon_tls_certificate_expiry_timestamp_seconds,
// read from expiry (domain → NotAfter of the certificate served for it)
// on each scrape. Domains come from the configuration, so the series
// stay few. Call it once.
func (m *Metrics) WatchCertificates(expiry func() map[string]time.Time) error {
	return m.reg.Register(&certCollector{expiry: expiry})
}

// method bounds the method label: a client may send any token as method.
func method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// codeLabels holds the label of every HTTP status, so observing a
// request does not format one.
var codeLabels = func() (t [600]string) {
	for i := range t {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

func codeLabel(status int) string {
	if status >= 0 && status < len(codeLabels) {
		return codeLabels[status]
	}
	return strconv.Itoa(status)
}

func outcome(status int) string {
	switch {
	case status >= 500:
		return "failed"
	case status >= 400:
		return "refused"
	}
	return "accepted"
}

func buildInfo(version, revision string) (string, string, string) {
	goVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		if version == "" && bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && revision == "" {
				revision = s.Value
			}
		}
	}
	if version == "" {
		version = "(devel)"
	}
	if revision == "" {
		revision = "unknown"
	}
	return version, revision, goVersion
}

// storeCollector asks the store on each scrape. The store's optional
// capabilities decide which series exist.
type storeCollector struct {
	store   tenon.Store
	timeout time.Duration
	log     *slog.Logger
}

var (
	descConns = prometheus.NewDesc("tenon_store_connections",
		"Connections of the store's pools, by pool and state (in_use, idle).", []string{"pool", "state"}, nil)
	descConnsMax = prometheus.NewDesc("tenon_store_connections_max",
		"Connection limit of the store's pools; 0 when unlimited.", []string{"pool"}, nil)
	descWaits = prometheus.NewDesc("tenon_store_waits_total",
		"Times a caller waited for a free connection, by pool.", []string{"pool"}, nil)
	descWaitSeconds = prometheus.NewDesc("tenon_store_wait_seconds_total",
		"Time callers spent waiting for a free connection, by pool.", []string{"pool"}, nil)
	descTenants = prometheus.NewDesc("tenon_tenants",
		"Installations by state.", []string{"state"}, nil)
	descCertExpiry = prometheus.NewDesc("tenon_tls_certificate_expiry_timestamp_seconds",
		"When the certificate served for a domain expires, as a Unix time.", []string{"domain"}, nil)
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	if _, ok := c.store.(tenon.PoolStatser); ok {
		ch <- descConns
		ch <- descConnsMax
		ch <- descWaits
		ch <- descWaitSeconds
	}
	if _, ok := c.store.(tenon.TenantCounter); ok {
		ch <- descTenants
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	if ps, ok := c.store.(tenon.PoolStatser); ok {
		for _, p := range ps.PoolStats() {
			ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(p.InUse), p.Name, "in_use")
			ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(p.Idle), p.Name, "idle")
			ch <- prometheus.MustNewConstMetric(descConnsMax, prometheus.GaugeValue, float64(p.MaxOpen), p.Name)
			ch <- prometheus.MustNewConstMetric(descWaits, prometheus.CounterValue, float64(p.WaitCount), p.Name)
			ch <- prometheus.MustNewConstMetric(descWaitSeconds, prometheus.CounterValue, p.WaitDuration.Seconds(), p.Name)
		}
	}
	if tc, ok := c.store.(tenon.TenantCounter); ok {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
		counts, err := tc.CountInstallations(ctx)
		if err != nil {
			// A scrape must not fail because the database is slow; the
			// series is missing for this scrape and readiness reports it.
			c.log.Warn("metrics: counting installations failed", "err", err)
			return
		}
		for _, s := range []tenon.State{tenon.StateEnabled, tenon.StateDisabled, tenon.StateUninstalled} {
			ch <- prometheus.MustNewConstMetric(descTenants, prometheus.GaugeValue, float64(counts[s]), string(s))
		}
	}
}

type certCollector struct {
	expiry func() map[string]time.Time
}

func (c *certCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descCertExpiry }

func (c *certCollector) Collect(ch chan<- prometheus.Metric) {
	for domain, notAfter := range c.expiry() {
		ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, float64(notAfter.Unix()), domain)
	}
}
