package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/connectjwt"
	"github.com/tenon-dev/tenon/forge"
	"github.com/tenon-dev/tenon/health"
	"github.com/tenon-dev/tenon/hostclient"
	"github.com/tenon-dev/tenon/jobs"
	"github.com/tenon-dev/tenon/keyring"
	"github.com/tenon-dev/tenon/leader"
	"github.com/tenon-dev/tenon/metrics"
	"github.com/tenon-dev/tenon/postgres"
	"github.com/tenon-dev/tenon/server"
	"github.com/tenon-dev/tenon/sqlite"
)

func runServe(ctx context.Context, env Env, app App, args []string) error {
	if err := checkEnvNames(env.environ()); err != nil {
		return err
	}
	cfg, err := LoadConfig(args, env.Getenv, env.Stderr)
	if err != nil {
		return err
	}
	logger := newLogger(env, cfg.LogLevel)
	if err := restoreIfEmpty(ctx, cfg, logger); err != nil { // backup_serve.go
		return err
	}
	b, err := Open(ctx, cfg, app, logger)
	if err != nil {
		return err
	}
	defer b.Close()
	bk, err := startBackups(ctx, b)
	if err != nil {
		return err
	}
	defer bk.close()                   // before the store closes: ships what is committed
	defer startDataJobs(ctx, b, app)() // retention_serve.go
	proc, err := startProcess(b)       // SIGHUP upgrades, draining, PID file: upgrade.go
	if err != nil {
		return err
	}
	defer proc.close()
	return b.Serve(ctx)
}

func newLogger(env Env, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(newLogHandler(env.Stderr, l)) // accesslog.go
}

// Backend is a configured, running-ready app backend: its store, server
// and listener settings. Open builds it; Serve runs it until ctx ends.
type Backend struct {
	Config *Config
	Store  tenon.Store
	Server *server.Server
	Logger *slog.Logger
	// Health, Metrics, Admin and Listen: the network edge, see listeners.go.
	Health  *health.Checker
	Metrics *metrics.Metrics
	Admin   *http.ServeMux
	Listen  func(network, addr string) (net.Listener, error)
	// ForgeKeys is the Forge JWKS cache; nil when Forge is off.
	ForgeKeys *forge.JWKS
	// Leader says whether this node runs singleton work: see leader.go.
	Leader leader.Leader
	// Host is the product client behind Principal.AsApp and AsUser, for
	// calls outside a request (see products.go).
	Host *hostclient.Client

	elector *leader.Postgres // campaigns while serving; nil on SQLite

	proc *process // set by the serve command; nil in dev and tests

	accessLog *server.AccessLog // the request log; see accesslog.go
}

// Open opens the store, the key ring and the install key server, and
// builds the server for app. The caller must Close it.
func Open(ctx context.Context, cfg *Config, app App, logger *slog.Logger) (*Backend, error) {
	box, err := keyring.Load(cfg.SecretKeyFile)
	if err != nil {
		return nil, fmt.Errorf("secret key file: %w", err)
	}
	store, err := openStore(ctx, cfg.DB, box, logger)
	if err != nil {
		return nil, err
	}
	b := &Backend{Config: cfg, Store: store, Logger: logger}
	b.initObservability()
	b.mountPprof()                         // pprof.go
	if err := b.initLeader(); err != nil { // leader.go
		store.Close()
		return nil, err
	}
	if err := b.build(app); err != nil {
		_ = b.Close()
		return nil, err
	}
	return b, nil
}

func (b *Backend) build(app App) error {
	cfg := b.Config
	envName, err := server.ParseEnvironment(cfg.Environment)
	if err != nil {
		return err
	}
	defaults := envName.Defaults()
	keysURL := cfg.InstallKeysURL
	var fallbacks []string
	if keysURL == "" {
		if defaults.KeyServerURL == "" {
			return fmt.Errorf("set --install-keys-url / TENON_INSTALL_KEYS_URL: %s has no default key server", envName)
		}
		keysURL, fallbacks = defaults.KeyServerURL, defaults.KeyServerFallbacks
	}
	keys, err := connectjwt.NewKeyServer(keysURL, connectjwt.KeyServerOptions{Fallbacks: fallbacks})
	if err != nil {
		return fmt.Errorf("install key server: %w", err)
	}
	hosts := cfg.AllowedHosts
	if len(hosts) == 0 {
		hosts = defaults.AllowedHosts
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	sc := server.Config{
		Descriptor:   app.Descriptor(),
		BaseURL:      cfg.BaseURL,
		Store:        b.Store,
		InstallKeys:  keys,
		AllowedHosts: hosts,
		AllowHTTP:    defaults.AllowHTTP,
		AllJSURL:     cfg.AllJSURL,
		Logger:       b.Logger,
		Leeway:       cfg.ClockSkew,
		Now:          now,
		Observer:     b.Metrics,
		Jobs:         jobs.Options{Workers: cfg.JobWorkers, PollInterval: cfg.JobPoll, StopGrace: cfg.ShutdownTimeout},
	}
	b.startAccessLog(&sc) // accesslog.go
	if b.Leader != nil {
		sc.Jobs.Singleton = b.Leader // purges on one node only
	}
	if sc.Products, err = b.initProducts(app.Descriptor(), defaults.AllowHTTP); err != nil { // products.go
		return err
	}
	if b.ForgeKeys, err = forgeKeys(cfg, envName, b); err != nil {
		return err
	}
	if b.ForgeKeys != nil {
		sc.ForgeAppID, sc.ForgeKeys = cfg.ForgeAppID, b.ForgeKeys
		sc.ForgeOnly = cfg.ForgeOnly || pureForgeApp(app)
		sc.ForgeLicenses = newForgeClient(b.Store, envName, b) // the Forge License API: tenants_reconcile.go
	}
	if h, ok := app.(HookedApp); ok {
		sc.Hooks = h.Hooks()
	}
	if err := checkApp(app, nil, b.Logger); err != nil { // lint.go
		return err
	}
	s, err := server.New(sc)
	if err != nil {
		return fmt.Errorf("app server: %w", err)
	}
	if err := app.Routes(s); err != nil {
		return fmt.Errorf("app routes: %w", err)
	}
	if err := checkApp(app, s, b.Logger); err != nil {
		return err
	}
	b.Server = s
	return nil
}

// openStore picks the store by the form of dsn, a postgres:// URL or a
// SQLite file path, and opens it, creating and migrating a new one: for
// serve and dev only. Other commands use openExistingStore (open.go).
func openStore(ctx context.Context, dsn string, box tenon.SecretBox, logger *slog.Logger) (tenon.Store, error) {
	if isPostgres(dsn) {
		s, err := postgres.Open(ctx, dsn, postgres.Options{SecretBox: box, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL store: %w", err)
		}
		return s, nil
	}
	s, err := sqlite.Open(dsn, sqlite.Options{SecretBox: box, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("open SQLite store %s: %w", dsn, err)
	}
	return s, nil
}

// Serve listens on the configured address and serves until ctx ends, then
// shuts down gracefully within the configured timeout.
func (b *Backend) Serve(ctx context.Context) error {
	ln, err := b.listen(b.Config.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", b.Config.Addr, err)
	}
	return b.ServeListener(ctx, ln)
}

// ServeListener serves on ln until ctx ends.
func (b *Backend) ServeListener(ctx context.Context, ln net.Listener) error {
	hs := b.Server.NewHTTPServer(ln.Addr().String())
	ln, stopEdge, err := b.startEdge(ctx, hs, ln)
	if err != nil {
		return err
	}
	defer stopEdge()
	// Background work — the installation watch (PostgreSQL) and the job
	// runner that processes queued webhooks — runs until HTTP has shut
	// down, so nothing acknowledged during the shutdown waits for the
	// next start; running jobs then get their grace (Jobs.StopGrace).
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		_ = b.Server.Run(runCtx)
	}()
	go b.runForgeKeys(runCtx)
	waitLeader := b.startLeader(runCtx) // leader.go
	defer b.startReconcile(runCtx)()    // reconcile_serve.go; stops after stopRun below
	defer func() {
		stopRun()
		<-ran
		waitLeader()
	}()
	errc := make(chan error, 1)
	drain := b.newDrainer(ctx, hs, ln) // see upgrade.go
	go func() { errc <- drain.serve() }()
	b.Logger.Info("serving", "addr", ln.Addr().String(), "base_url", b.Config.BaseURL, "environment", b.Config.Environment)
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-drain.serving(ctx): // ctx ended, or a new process took over
	}
	if err := drain.stop(); err != nil {
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http server: %w", err)
	}
	return nil
}

// Close releases the store.
func (b *Backend) Close() error {
	if b.accessLog != nil {
		_ = b.accessLog.Close() // the last request lines
	}
	return b.Store.Close()
}
