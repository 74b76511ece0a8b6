// Package loadtest load-, stress-, soak- and spike-tests the backend of an
// Atlassian app — built on tenon or not — through the fake Atlassian: it
// installs many tenants with real signed lifecycle calls, then drives the
// app's own routes as the product would (signed module pages, browser-API
// calls with context tokens, signed webhooks, Forge invocations, events
// and triggers with Forge Invocation Tokens), at a rate given by a
// schedule, while the fake's product API answers the app's own calls with
// the latency and failures the mix asks for.
//
// The pieces are separate so each can be tested alone: a Mix (what to
// send, which tenants), a Picker (uniform or Zipf tenant choice from an
// injected source), a Schedule (the profile as a pure function of time),
// a Recorder (HDR histograms per time window, so latency is measured from
// when a request was due, not when it was sent), samplers for /proc/<pid>
// and Prometheus metrics, SLOs, and the Report with its JSON, HTML and
// comparison.
package loadtest
