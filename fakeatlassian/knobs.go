package fakeatlassian

import (
	"math"
	"net/http"
	"strconv"
	"time"
)

// knobs make the product REST API slow or failing, so apps can test
// their retries. They act on REST requests only (including AP.request
// from product pages), never on the install flow, pages or the token
// endpoint. Guarded by Fake.mu.
type knobs struct {
	latency       time.Duration
	outage        bool
	failNext      int
	failStatus    int
	rateLimitNext int
	retryAfter    time.Duration
	// failEvery and rateLimitEvery make every n-th REST request fail, a
	// steady share of failures for load tests; seen counts the requests.
	failEvery, failEveryStatus int
	rateLimitEvery             int
	seen                       int
}

// Knobs is the current setting of the failure knobs.
type Knobs struct {
	Latency       time.Duration `json:"latency"`
	Outage        bool          `json:"outage"`
	FailNext      int           `json:"failNext"`
	FailStatus    int           `json:"failStatus"`
	RateLimitNext int           `json:"rateLimitNext"`
	RetryAfter    time.Duration `json:"retryAfter"`
	// FailEvery and RateLimitEvery are the steady shares set by
	// SetFailEvery and SetRateLimitEvery (0: off).
	FailEvery       int `json:"failEvery"`
	FailEveryStatus int `json:"failEveryStatus"`
	RateLimitEvery  int `json:"rateLimitEvery"`
}

// SetLatency delays every REST answer by d (0 turns it off).
func (f *Fake) SetLatency(d time.Duration) {
	f.mu.Lock()
	f.knobs.latency = max(d, 0)
	f.mu.Unlock()
}

// FailNext makes the next n REST requests fail with status (a 4xx or 5xx).
func (f *Fake) FailNext(n, status int) {
	if status < 400 || status > 599 {
		status = http.StatusInternalServerError
	}
	f.mu.Lock()
	f.knobs.failNext, f.knobs.failStatus = max(n, 0), status
	f.mu.Unlock()
}

// RateLimitNext answers the next n REST requests with 429 and a
// Retry-After of retryAfter (rounded up to whole seconds, as the header
// carries seconds).
func (f *Fake) RateLimitNext(n int, retryAfter time.Duration) {
	f.mu.Lock()
	f.knobs.rateLimitNext, f.knobs.retryAfter = max(n, 0), max(retryAfter, 0)
	f.mu.Unlock()
}

// SetFailEvery makes every n-th REST request fail with status (a 4xx or
// 5xx), until set to 0: a steady error rate of 1/n under load. Requests
// already failed by FailNext, RateLimitNext or an outage count too.
func (f *Fake) SetFailEvery(n, status int) {
	if status < 400 || status > 599 {
		status = http.StatusInternalServerError
	}
	f.mu.Lock()
	f.knobs.failEvery, f.knobs.failEveryStatus = max(n, 0), status
	f.mu.Unlock()
}

// SetRateLimitEvery answers every n-th REST request with 429 and a
// Retry-After of retryAfter, until set to 0.
func (f *Fake) SetRateLimitEvery(n int, retryAfter time.Duration) {
	f.mu.Lock()
	f.knobs.rateLimitEvery, f.knobs.retryAfter = max(n, 0), max(retryAfter, 0)
	f.mu.Unlock()
}

// SetOutage makes every REST request answer 503 until turned off.
func (f *Fake) SetOutage(down bool) {
	f.mu.Lock()
	f.knobs.outage = down
	f.mu.Unlock()
}

// Knobs returns the current knob settings.
func (f *Fake) Knobs() Knobs {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.knobs
	return Knobs{Latency: k.latency, Outage: k.outage, FailNext: k.failNext, FailStatus: k.failStatus,
		RateLimitNext: k.rateLimitNext, RetryAfter: k.retryAfter,
		FailEvery: k.failEvery, FailEveryStatus: k.failEveryStatus, RateLimitEvery: k.rateLimitEvery}
}

// applyKnobs delays the request and answers it when a knob says it
// fails; it reports whether it answered.
func (f *Fake) applyKnobs(w http.ResponseWriter, r *http.Request, product string) bool {
	f.mu.Lock()
	k := &f.knobs
	latency := k.latency
	var status int
	var retryAfter time.Duration
	k.seen++
	switch {
	case k.outage:
		status = http.StatusServiceUnavailable
	case k.rateLimitNext > 0:
		k.rateLimitNext--
		status, retryAfter = http.StatusTooManyRequests, k.retryAfter
	case k.failNext > 0:
		k.failNext--
		status = k.failStatus
	case k.rateLimitEvery > 0 && k.seen%k.rateLimitEvery == 0:
		status, retryAfter = http.StatusTooManyRequests, k.retryAfter
	case k.failEvery > 0 && k.seen%k.failEvery == 0:
		status = k.failEveryStatus
	}
	f.mu.Unlock()

	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	switch status {
	case 0:
		return false
	case http.StatusTooManyRequests:
		secs := int(math.Ceil(retryAfter.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		w.Header().Set("Date", f.now().UTC().Format(http.TimeFormat))
		w.Header().Set("X-RateLimit-Reset", f.now().Add(retryAfter).UTC().Format(time.RFC3339))
		w.Header().Set("RateLimit-Reason", "jira-burst-based")
		writeProductError(w, product, status, "Rate limit exceeded.")
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
		writeProductError(w, product, status, "The service is temporarily unavailable.")
	default:
		writeProductError(w, product, status, "Injected failure ("+strconv.Itoa(status)+").")
	}
	noteOf(r).err = "knob"
	return true
}
