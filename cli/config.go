package cli

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/connectjwt"
	"github.com/tenon-dev/tenon/forge"
)

// setting is one configuration value: its flag, environment variable and
// file key, its default and what it means. The same table drives flag
// parsing, environment and file lookup, and the documentation.
type setting struct {
	Flag    string // --flag
	Env     string // TENON_...; also the key in the configuration file
	Default string
	Usage   string
}

// Settings of the serve command, in documentation order.
var serveSettings = []setting{
	{"config", "TENON_CONFIG", "", "Path of a configuration file of NAME=value lines (names as the environment variables)."},
	{"addr", "TENON_ADDR", ":8080", "Address the HTTP server listens on."},
	{"base-url", "TENON_BASE_URL", "", "Public base URL of the app, as products reach it (https in production and staging). Required."},
	{"db", "TENON_DB", "tenon.db", "SQLite file path, or a postgres:// URL."},
	{"environment", "TENON_ENVIRONMENT", "production", "production, staging or development: picks the defaults of the two settings below."},
	{"install-keys-url", "TENON_INSTALL_KEYS_URL", "", "Key server for signed installs. Default: Atlassian's for production and staging; required in development."},
	{"oauth-server-url", "TENON_OAUTH_SERVER_URL", "", "OAuth 2.0 authorization server for calls to the product as a user (JWT-bearer grant). Default: Atlassian's (tenon dev uses the fake's)."},
	{"allowed-hosts", "TENON_ALLOWED_HOSTS", "", "Comma-separated globs of product hosts allowed to install (one * is one DNS label). Default per environment."},
	{"forge-app-id", "TENON_FORGE_APP_ID", "", "Forge app id (app.id of manifest.yml, ari:cloud:ecosystem::app/<uuid>) that Forge Invocation Tokens must be addressed to. Empty: Forge routes are off."},
	{"forge-jwks-url", "TENON_FORGE_JWKS_URL", "", "JWKS of Forge Invocation Tokens. Default: Atlassian's for production and staging; required in development."},
	{"clock-skew", "TENON_CLOCK_SKEW", DefaultClockSkew.String(), "Clock difference tolerated on exp, nbf and iat of Connect JWTs and Forge Invocation Tokens, from 0s to 30s."},
	{"secret-key-file", "TENON_SECRET_KEY_FILE", "", "File of AES-256 keys that encrypt shared secrets at rest (create with `tenon keygen`). Required."},
	{"log-level", "TENON_LOG_LEVEL", "info", "debug, info, warn or error."},
	{"shutdown-timeout", "TENON_SHUTDOWN_TIMEOUT", "20s", "How long in-flight requests may finish after SIGTERM."},
	{"job-workers", "TENON_JOB_WORKERS", "4", "How many queued jobs (webhooks, events) this node processes at once; 0: it only accepts and queues them, other nodes process."},
	{"job-poll", "TENON_JOB_POLL", "1s", "How often the job runner looks for due jobs (retries, jobs queued by other nodes); local webhooks wake it at once."},
	{"drain-delay", "TENON_DRAIN_DELAY", "5s", "After SIGTERM, how long the server keeps serving with readiness failing, so load balancers stop sending before it closes its listeners. 0 on a single node."},
	{"pid-file", "TENON_PID_FILE", "", "File the serving process writes its PID to once ready; it follows in-place upgrades (SIGHUP)."},
	{"domains", "TENON_DOMAINS", "", "Comma-separated DNS names to serve HTTPS for, with certificates obtained and renewed automatically (ACME). Empty: plain HTTP on --addr, for running behind a proxy that terminates TLS."},
	{"acme-ca", "TENON_ACME_CA", "https://acme-v02.api.letsencrypt.org/directory", "ACME directory URL of the certificate authority (with --domains)."},
	{"acme-ca-roots", "TENON_ACME_CA_ROOTS", "", "PEM file of root certificates trusted for the ACME directory's own HTTPS, for a private CA. Default: the system's."},
	{"acme-email", "TENON_ACME_EMAIL", "", "Contact address given to the certificate authority, for expiry notices."},
	{"http-addr", "TENON_HTTP_ADDR", ":80", "With --domains: plain-HTTP listener that answers HTTP-01 challenges and redirects to HTTPS; off disables it."},
	{"admin-addr", "TENON_ADMIN_ADDR", "127.0.0.1:9090", "Admin listener for /metrics, /livez and /readyz with details; keep it on loopback or a private network; off disables it."},
	{"trusted-proxies", "TENON_TRUSTED_PROXIES", "", "Comma-separated addresses or networks (CIDR) of the proxies in front of the app; only their X-Forwarded-For/-Proto/-Host headers are believed."},
	{"retention", "TENON_RETENTION", "30d", "How long an uninstalled tenant's data, tokens, jobs and Forge records are kept before the daily job deletes them for good: days such as 30d, or a duration such as 720h (see docs/DATA_RETENTION_POLICY.md)."},
	// Backups (see cli/backup.go).
	{"backup-url", "TENON_BACKUP_URL", "", "Where backups go: file:///directory or s3://bucket/prefix. Serve replicates the SQLite store there continuously and takes snapshots. Empty: no backups."},
	{"backup-s3-endpoint", "TENON_BACKUP_S3_ENDPOINT", "", "S3-compatible endpoint URL for an s3:// backup URL outside AWS (path-style requests)."},
	{"backup-s3-region", "TENON_BACKUP_S3_REGION", "us-east-1", "Region of the S3 bucket."},
	{"backup-s3-access-key-id", "TENON_BACKUP_S3_ACCESS_KEY_ID", "", "Access key id for the S3 bucket. Empty: the AWS SDK's default credentials (AWS_* variables, instance role)."},
	{"backup-s3-secret-access-key", "TENON_BACKUP_S3_SECRET_ACCESS_KEY", "", "Secret access key for the S3 bucket."},
	{"backup-sync-interval", "TENON_BACKUP_SYNC_INTERVAL", "1s", "How often committed changes are shipped to the replica."},
	{"backup-schedule", "TENON_BACKUP_SCHEDULE", "daily", "How often serve takes a snapshot: hourly, daily, weekly, a duration such as 6h, or off."},
	{"backup-keep", "TENON_BACKUP_KEEP", "7,4,12", "Snapshots kept: DAILY,WEEKLY,MONTHLY (grandfather-father-son)."},
	{"drill-schedule", "TENON_DRILL_SCHEDULE", "weekly", "How often serve runs a restore drill: hourly, daily, weekly, a duration, or off."},
	{"restore-if-empty", "TENON_RESTORE_IF_EMPTY", "false", "true: when the SQLite file is missing or empty and a backup exists, restore it before serving; refuse to start if that fails."},
	{"pprof", "TENON_PPROF", "false", "true: serve Go's profiles (/debug/pprof/) on the admin listener, for measuring; they reveal internals, so only with the admin listener on loopback or a private network."},
}

// Config is the resolved configuration of a serve command.
type Config struct {
	// Pprof serves the profiles on the admin listener (pprof.go).
	Pprof          bool
	Addr           string
	BaseURL        string
	DB             string
	Environment    string
	InstallKeysURL string
	// OAuthServerURL is the authorization server of calls as a user;
	// empty: Atlassian's (hostclient.DefaultAuthServerURL).
	OAuthServerURL  string
	AllowedHosts    []string
	SecretKeyFile   string
	LogLevel        string
	ShutdownTimeout time.Duration
	DrainDelay      time.Duration
	PIDFile         string

	// JobWorkers is jobs.Options.Workers: 0 means the default, negative
	// none (the setting's 0).
	JobWorkers int
	// JobPoll is jobs.Options.PollInterval; 0 means the default.
	JobPoll time.Duration
	// Network edge (see listeners.go). With Domains, Addr serves HTTPS
	// and HTTPAddr answers ACME challenges and redirects; AdminAddr and
	// HTTPAddr are "" when off.
	Domains        []string
	ACMECA         string
	ACMECARoots    string
	ACMEEmail      string
	HTTPAddr       string
	AdminAddr      string
	TrustedProxies []string

	// Retention is how long after uninstall a tenant is purged
	// (retention_serve.go).
	Retention time.Duration
	// Backup configures replication, snapshots and drills (cli/backup.go).
	Backup BackupConfig

	// ForgeAppID and ForgeJWKSURL configure Forge Remote (see cli/forge.go).
	ForgeAppID string
	// ForgeOnly runs the app as a pure Forge app (server.Config.ForgeOnly):
	// Forge installs supersede the site's Connect tenant.
	ForgeOnly    bool
	ForgeJWKSURL string

	// ClockSkew is the clock difference tolerated on the times of every
	// verified token (server.Config.Leeway), 0 to MaxClockSkew.
	ClockSkew time.Duration
	// Now is the server's clock. It is not a setting: nil means
	// time.Now; tests set it to move time without sleeping.
	Now func() time.Time

	// AllJSURL overrides where pages load the AP library from. It is not
	// a setting: production always uses Atlassian's CDN; `tenon dev` sets
	// it to the fake product's copy.
	AllJSURL string

	// Source says where each value came from ("flag", "env", "file",
	// "default"), for `tenon serve --print-config` and error messages.
	Source map[string]string
}

// Clock skew bounds. The verifiers take at most MaxClockSkew: a Forge
// Invocation Token lives about 25 s, and more would more than double it.
const (
	DefaultClockSkew = 10 * time.Second
	MaxClockSkew     = min(connectjwt.MaxLeeway, forge.MaxLeeway)
)

// values holds one raw string per setting, keyed by flag name.
type values map[string]string

// resolve merges sources by precedence: flags > environment > file >
// defaults. getenv is injected so tests need not touch the process
// environment.
func resolve(fs *flag.FlagSet, settings []setting, getenv func(string) string, readFile func(string) ([]byte, error)) (values, map[string]string, error) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	vals := values{}
	src := map[string]string{}
	lookup := func(s setting, file map[string]string) {
		switch {
		case set[s.Flag]:
			vals[s.Flag], src[s.Flag] = fs.Lookup(s.Flag).Value.String(), "flag"
		case getenv(s.Env) != "":
			vals[s.Flag], src[s.Flag] = getenv(s.Env), "env"
		case file != nil && file[s.Env] != "":
			vals[s.Flag], src[s.Flag] = file[s.Env], "file"
		default:
			vals[s.Flag], src[s.Flag] = s.Default, "default"
		}
	}
	// The config file path itself comes from flags or environment only.
	lookup(settings[0], nil)
	var file map[string]string
	if path := vals["config"]; path != "" {
		raw, err := readFile(path)
		if err != nil {
			return nil, nil, fmt.Errorf("read configuration file: %w", err)
		}
		file, err = parseConfigFile(raw, settings)
		if err != nil {
			return nil, nil, fmt.Errorf("configuration file %s: %w", path, err)
		}
	}
	for _, s := range settings[1:] {
		lookup(s, file)
	}
	return vals, src, nil
}

// parseConfigFile reads NAME=value lines; '#' starts a comment line.
// Unknown names are errors: a typo must not silently fall back to a
// default.
func parseConfigFile(raw []byte, settings []setting) (map[string]string, error) {
	known := map[string]bool{}
	for _, s := range settings {
		known[s.Env] = true
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok {
			return nil, fmt.Errorf("line %d: expected NAME=value", n)
		}
		if !known[k] {
			return nil, fmt.Errorf("line %d: unknown setting %q (did you mean %s? known: %s)", n, k, closestEnvName(k), knownNames(settings))
		}
		if k == "TENON_CONFIG" {
			return nil, fmt.Errorf("line %d: TENON_CONFIG cannot be set inside the configuration file", n)
		}
		out[k] = strings.Trim(v, `"'`)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func knownNames(settings []setting) string {
	var names []string
	for _, s := range settings {
		names = append(names, s.Env)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// defineFlags registers every setting on fs. Defaults are shown in usage
// but resolve applies them, so a flag left alone never hides the
// environment.
func defineFlags(fs *flag.FlagSet, settings []setting) {
	for _, s := range settings {
		fs.Var(&settingValue{s: s}, s.Flag, s.Usage)
	}
}

// LoadConfig parses the serve command's args and resolves a Config from
// flags, the environment (getenv), the configuration file and defaults,
// checking that it is complete and consistent. Errors say what to set.
func LoadConfig(args []string, getenv func(string) string, output io.Writer) (*Config, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.Usage = func() {
		fmt.Fprint(output, "Usage: tenon serve [flags]\n\nRuns the app backend. Every flag can be set as an environment variable or in the\n--config file instead; flags win over the environment, the environment over the file.\n\nFlags:\n")
		printFlags(output, fs)
	}
	defineFlags(fs, serveSettings)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	vals, src, err := resolve(fs, serveSettings, getenv, os.ReadFile)
	if err != nil {
		return nil, err
	}
	return buildConfig(vals, src)
}

func buildConfig(vals values, src map[string]string) (*Config, error) {
	c := &Config{
		Addr:           vals["addr"],
		BaseURL:        strings.TrimSuffix(vals["base-url"], "/"),
		DB:             vals["db"],
		Environment:    strings.ToLower(vals["environment"]),
		InstallKeysURL: strings.TrimSuffix(vals["install-keys-url"], "/"),
		OAuthServerURL: strings.TrimSuffix(vals["oauth-server-url"], "/"),
		SecretKeyFile:  vals["secret-key-file"],
		LogLevel:       strings.ToLower(vals["log-level"]),
		Source:         src,
	}
	for _, h := range strings.Split(vals["allowed-hosts"], ",") {
		if h = strings.TrimSpace(h); h != "" {
			c.AllowedHosts = append(c.AllowedHosts, strings.ToLower(h))
		}
	}
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	d, err := time.ParseDuration(vals["shutdown-timeout"])
	if err != nil || d < 0 {
		add("--shutdown-timeout / TENON_SHUTDOWN_TIMEOUT must be a duration such as 20s")
	}
	c.ShutdownTimeout = d
	if c.JobWorkers, err = strconv.Atoi(vals["job-workers"]); err != nil || c.JobWorkers < 0 || c.JobWorkers > 1000 {
		add("--job-workers / TENON_JOB_WORKERS must be a number from 0 to 1000")
	} else if c.JobWorkers == 0 {
		c.JobWorkers = -1 // this node only queues; other nodes process
	}
	if c.Retention, err = ParseRetention(vals["retention"]); err != nil {
		add("--retention / TENON_RETENTION: %v", err)
	}
	if c.JobPoll, err = time.ParseDuration(vals["job-poll"]); err != nil || c.JobPoll <= 0 {
		add("--job-poll / TENON_JOB_POLL must be a positive duration such as 1s")
	}
	if c.DrainDelay, err = time.ParseDuration(vals["drain-delay"]); err != nil || c.DrainDelay < 0 {
		add("--drain-delay / TENON_DRAIN_DELAY must be a duration such as 5s, or 0")
	}
	c.PIDFile = vals["pid-file"]
	if c.ClockSkew, err = time.ParseDuration(vals["clock-skew"]); err != nil || c.ClockSkew < 0 || c.ClockSkew > MaxClockSkew {
		add("--clock-skew / TENON_CLOCK_SKEW must be a duration from 0s to %v, such as 10s, not %q: a token may be accepted at most that long after it expired", MaxClockSkew, vals["clock-skew"])
	}

	switch c.Environment {
	case "production", "staging", "development":
	default:
		add("--environment / TENON_ENVIRONMENT must be production, staging or development, not %q", c.Environment)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add("--log-level / TENON_LOG_LEVEL must be debug, info, warn or error, not %q", c.LogLevel)
	}
	if c.Addr == "" {
		add("set --addr / TENON_ADDR, e.g. :8080")
	}
	if c.DB == "" {
		add("set --db / TENON_DB to a SQLite file path or a postgres:// URL")
	}
	if c.SecretKeyFile == "" {
		add("set --secret-key-file / TENON_SECRET_KEY_FILE to a key file; create one with: tenon keygen -o /etc/tenon/secret.key")
	}
	if c.BaseURL == "" {
		add("set --base-url / TENON_BASE_URL to the public URL of the app, e.g. https://app.example.com")
	} else if u, err := url.Parse(c.BaseURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" || u.Fragment != "" {
		add("--base-url / TENON_BASE_URL must be an absolute http(s) URL without query, not %q", c.BaseURL)
	} else if u.Scheme != "https" && c.Environment != "development" {
		add("--base-url / TENON_BASE_URL must use https in %s (Atlassian only calls https apps); use --environment development for local work", c.Environment)
	}
	if c.InstallKeysURL != "" {
		if u, err := url.Parse(c.InstallKeysURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			add("--install-keys-url / TENON_INSTALL_KEYS_URL must be an absolute http(s) URL, not %q", c.InstallKeysURL)
		} else if why := plainHTTP(u, c.Environment); why != "" {
			add("--install-keys-url / TENON_INSTALL_KEYS_URL must use https %s", why)
		}
	} else if c.Environment == "development" {
		add("set --install-keys-url / TENON_INSTALL_KEYS_URL: development has no default key server (point it at the fake Atlassian's key server)")
	}
	if c.OAuthServerURL != "" {
		if u, err := url.Parse(c.OAuthServerURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" {
			add("--oauth-server-url / TENON_OAUTH_SERVER_URL must be an absolute http(s) URL without query, not %q", c.OAuthServerURL)
		} else if u.Scheme == "http" && !tenon.LoopbackHost(u.Hostname()) {
			add("--oauth-server-url / TENON_OAUTH_SERVER_URL must use https (http only on loopback: the fake Atlassian)")
		}
	}
	parseEdgeSettings(c, vals, src, add)
	parseForgeSettings(c, vals, add)
	parseBackupSettings(c, vals, add)
	parsePprofSetting(c, vals, add) // pprof.go
	if len(problems) > 0 {
		return nil, &ConfigError{Problems: problems}
	}
	return c, nil
}

// plainHTTP says why u, the URL of a key server, may not use plain http
// in environment, or "" when it may: it is https, or http to a loopback
// host (tenon.LoopbackHost) in development. Keys fetched over the network
// without TLS could be swapped on the way, and with them every install.
func plainHTTP(u *url.URL, environment string) string {
	switch {
	case u.Scheme == "https":
		return ""
	case environment != "development":
		return "in " + environment
	case !tenon.LoopbackHost(u.Hostname()):
		return "(http only reaches a server on this machine: localhost, 127.0.0.0/8, [::1])"
	}
	return ""
}

// ConfigError lists everything wrong with a configuration at once, so an
// operator fixes it in one go.
type ConfigError struct{ Problems []string }

func (e *ConfigError) Error() string {
	return "configuration is incomplete or contradictory:\n  - " + strings.Join(e.Problems, "\n  - ")
}

// Setting describes one configuration value, for documentation.
type Setting struct{ Flag, Env, Default, Usage string }

// Settings returns the serve command's settings in documentation order.
func Settings() []Setting {
	out := make([]Setting, len(serveSettings))
	for i, s := range serveSettings {
		out[i] = Setting(s)
	}
	return out
}
