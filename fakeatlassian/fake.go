package fakeatlassian

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Options configure a Fake. The zero value is ready to use.
type Options struct {
	// URL is the fake's public base URL, e.g. "http://127.0.0.1:8123".
	// Start sets it from the listener when it is empty; set it when the
	// fake is served through Handler by a server of your own, or behind a
	// proxy. Every site URL, key server URL and iframe origin derives
	// from it.
	URL string

	// Now is the clock used for token times, expiry checks and webhook
	// timestamps. Default time.Now.
	Now func() time.Time

	// Logger receives one line per request and per outgoing call. It never
	// sees tokens or secrets. Default: discard.
	Logger *slog.Logger

	// Rand is the source of keys, secrets, ids and tokens. Default
	// crypto/rand.Reader. Reads are serialised, so any io.Reader works.
	Rand io.Reader

	// HTTPClient makes the fake's outgoing calls: descriptor fetches,
	// lifecycle callbacks and webhook deliveries. Default: a client with a
	// 10 s timeout that does not follow redirects across origins.
	HTTPClient *http.Client

	// WebhookRetryDelays are the waits before each retry of a failed
	// webhook delivery; their number is the number of retries. Jira waits
	// minutes; tests pass milliseconds. Nil means Jira-like delays
	// (1, 2, 4, 8 and 15 minutes); an empty non-nil slice means no retry.
	WebhookRetryDelays []time.Duration

	// MaxCalls bounds the call record (oldest entries are dropped first).
	// Default 10000.
	MaxCalls int

	// ForgeAppID is the id of the default Forge app
	// (ari:cloud:ecosystem::app/<uuid>), so that an app under development
	// keeps one id across restarts. Default: a new random id.
	ForgeAppID string
}

// Fake is a fake Atlassian Cloud: a Connect key server, product sites with
// REST APIs, an installer, product pages that embed app iframes, webhooks
// and an OAuth 2.0 token endpoint. Create it with New; it is safe for
// concurrent use.
type Fake struct {
	now         func() time.Time
	log         *slog.Logger
	client      *http.Client
	retryDelays []time.Duration
	maxCalls    int
	handler     http.Handler

	// REST routers, one per product, matched on the path relative to the
	// site's base URL.
	restJira, restConfluence *http.ServeMux

	randMu sync.Mutex
	rand   io.Reader

	mu        sync.Mutex
	url       string
	srv       *http.Server
	closed    bool
	keys      []*installKey // oldest first; the last one signs
	sites     map[string]*siteState
	siteOrder []string
	grants    map[string]*bearerGrant // OAuth access token → grant
	sessions  map[string]*pageSession // product page session id → session
	calls     []Call
	callSeq   int64
	knobs     knobs
	personal  personalState // personal.go
	limits    rateLimiter   // points-based rate limits (ratelimit.go)

	hooks webhookQueue

	forge forgeState // Forge Remote (forge.go); guarded by mu
}

// New returns a Fake configured by opts. It serves nothing until Start is
// called or Handler is mounted.
func New(opts Options) *Fake {
	f := &Fake{
		now:         opts.Now,
		log:         opts.Logger,
		rand:        opts.Rand,
		client:      opts.HTTPClient,
		retryDelays: opts.WebhookRetryDelays,
		maxCalls:    opts.MaxCalls,
		url:         strings.TrimRight(opts.URL, "/"),
		sites:       map[string]*siteState{},
		grants:      map[string]*bearerGrant{},
		sessions:    map[string]*pageSession{},
	}
	if f.now == nil {
		f.now = time.Now
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.rand == nil {
		f.rand = rand.Reader
	}
	if f.client == nil {
		f.client = &http.Client{Timeout: 10 * time.Second, CheckRedirect: sameOriginRedirects}
	}
	if f.retryDelays == nil {
		f.retryDelays = []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 15 * time.Minute}
	}
	if f.maxCalls <= 0 {
		f.maxCalls = 10000
	}
	f.hooks.init()
	f.forgeInit()
	f.forge.appID = opts.ForgeAppID
	f.buildRESTRouters()
	f.handler = f.routes()
	return f
}

// sameOriginRedirects refuses redirects that change scheme or host: a
// signed request must never be replayed against another origin.
func sameOriginRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("too many redirects")
	}
	prev := via[len(via)-1].URL
	if req.URL.Scheme != prev.Scheme || req.URL.Host != prev.Host {
		return http.ErrUseLastResponse
	}
	return nil
}

// Start listens on addr (e.g. "127.0.0.1:0") and serves the fake in the
// background until Close. When Options.URL was empty the fake's URL
// becomes http://<listener address>.
func (f *Fake) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("fakeatlassian: listen on %s: %w", addr, err)
	}
	return f.StartListener(ln)
}

// StartListener serves the fake on ln in the background until Close, which
// also closes ln. It is Start for a caller that opened the listener
// itself, e.g. to know the URL before creating the fake (Options.URL).
func (f *Fake) StartListener(ln net.Listener) error {
	srv := &http.Server{
		Handler:           f.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(f.log.Handler(), slog.LevelWarn),
	}
	f.mu.Lock()
	if f.closed || f.srv != nil {
		f.mu.Unlock()
		ln.Close()
		return errors.New("fakeatlassian: already started or closed")
	}
	if f.url == "" {
		f.url = "http://" + ln.Addr().String()
	}
	f.srv = srv
	f.mu.Unlock()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			f.log.Error("fake atlassian server stopped", "err", err)
		}
	}()
	f.log.Info("fake atlassian listening", "url", f.URL())
	return nil
}

// Handler returns the fake's HTTP handler, for serving it from a server of
// your own. Set Options.URL to the address it is reachable at.
func (f *Fake) Handler() http.Handler { return f.handler }

// URL returns the fake's base URL ("" before Start when Options.URL was empty).
func (f *Fake) URL() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.url
}

// KeyServerURL is the Connect install-keys server: GET <KeyServerURL>/<kid>
// answers the PEM public key that signed installed/uninstalled callbacks.
func (f *Fake) KeyServerURL() string { return f.URL() + keyServerPath }

// AuthServerURL is the OAuth 2.0 authorization server: POST
// <AuthServerURL>/oauth2/token. It is also the `aud` of JWT-bearer assertions.
func (f *Fake) AuthServerURL() string { return f.URL() + authServerPath }

// Close stops the server and pending webhook deliveries. It is safe to
// call more than once.
func (f *Fake) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	srv := f.srv
	f.mu.Unlock()

	f.hooks.stop()
	// Connections the fake opened to apps (lifecycle, webhooks) go too,
	// so an app shutting down after the fake finds none left open.
	f.client.CloseIdleConnections()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
		return fmt.Errorf("fakeatlassian: shut down: %w", err)
	}
	return nil
}

const (
	keyServerPath  = "/connect-install-keys"
	authServerPath = "/oauth"
	allJSPath      = "/atlassian-connect/all.js"
)

// routes builds the fake's top-level router. Everything a site serves
// (pages and REST) lives under /s/<name>/ and is dispatched by serveSite.
func (f *Fake) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", f.serveHome)
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET "+keyServerPath+"/{kid}", f.serveInstallKey)
	mux.HandleFunc("POST "+authServerPath+"/oauth2/token", f.serveOAuthToken)
	mux.HandleFunc("GET "+allJSPath, f.serveStatic("all.js"))
	mux.HandleFunc("GET /_static/host.js", f.serveStatic("host.js"))
	mux.HandleFunc("GET /_static/style.css", f.serveStatic("style.css"))
	mux.HandleFunc("POST /_host/{session}/token", f.serveHostToken)
	mux.HandleFunc("POST /_host/{session}/request", f.serveHostRequest)
	mux.HandleFunc("/s/{site}", f.serveSite)
	mux.HandleFunc("/s/{site}/{rest...}", f.serveSite)
	f.controlRoutes(mux)
	f.forgeRoutes(mux)
	return f.recordCalls(mux)
}

// randomBytes reads n bytes from the injected source.
func (f *Fake) randomBytes(n int) []byte {
	b := make([]byte, n)
	f.randMu.Lock()
	defer f.randMu.Unlock()
	if _, err := io.ReadFull(f.rand, b); err != nil {
		// A broken random source would make every secret guessable; a
		// fake has no better answer than to stop.
		panic(fmt.Sprintf("fakeatlassian: read random source: %v", err))
	}
	return b
}

func (f *Fake) randomHex(n int) string { return hex.EncodeToString(f.randomBytes(n)) }

// newUUID returns a random (version 4) UUID string.
func (f *Fake) newUUID() string {
	b := f.randomBytes(16)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// origin returns scheme://host of an absolute URL.
func origin(u string) string {
	i := strings.Index(u, "://")
	if i < 0 {
		return ""
	}
	rest := u[i+3:]
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		rest = rest[:j]
	}
	return u[:i+3] + rest
}
