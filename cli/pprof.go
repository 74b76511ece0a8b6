package cli

import (
	"net/http/pprof"
	"strings"
)

// --pprof puts Go's runtime profiles on the admin listener, so a running
// server can be measured (go tool pprof http://127.0.0.1:9090/debug/pprof/profile).
// Off by default: profiles show code paths and memory contents' shapes,
// and a CPU profile costs while it runs.

func parsePprofSetting(c *Config, vals values, add func(string, ...any)) {
	switch strings.ToLower(vals["pprof"]) {
	case "true", "1", "yes":
		c.Pprof = true
	case "false", "0", "no", "":
	default:
		add("--pprof / TENON_PPROF must be true or false")
	}
	if c.Pprof && c.AdminAddr == "" {
		add("--pprof needs the admin listener: set --admin-addr / TENON_ADMIN_ADDR")
	}
}

// mountPprof adds the profile endpoints to the admin mux when --pprof is on.
func (b *Backend) mountPprof() {
	if !b.Config.Pprof {
		return
	}
	b.Admin.HandleFunc("GET /debug/pprof/", pprof.Index)
	b.Admin.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	b.Admin.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	b.Admin.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	b.Admin.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}
