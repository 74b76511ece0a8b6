package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/jobs"
)

// Queued webhooks.
//
// OnWebhook is how an app should take webhooks: the delivery is
// authenticated like any webhook route, stored in the job queue, and only
// then acknowledged with 204. The handler runs afterwards, on the job
// runner (Server.Run), with retries and backoff; after the last attempt the
// event becomes a dead letter an operator can inspect and requeue. A crash
// between the acknowledgement and the processing loses nothing: the event
// is in the store and runs after the restart.
//
// Jira sends a webhook again when it did not get an answer in time; when
// the delivery carries X-Atlassian-Webhook-Identifier, a second delivery
// with the same identifier for the same site is acknowledged and dropped.
//
// Tenants at processing time: an event runs only for a site where the app
// is installed and enabled. For a site that uninstalled the app (or is
// unknown) the event is dropped with a log line, as the product itself
// stops sending to it; tokens of such a site are refused too. For a site
// where the app is disabled the event is retried with the usual backoff,
// so a short disable (an upgrade) delays it, and a long one ends in the
// dead letters, from which an operator can requeue it once the app is
// enabled again.

// Event is one webhook delivery, as stored before it was acknowledged.
type Event struct {
	// Name is the event, e.g. "jira:issue_deleted".
	Name string
	// ID is X-Atlassian-Webhook-Identifier, the same on every delivery
	// of one event; "" when the product sent none.
	ID string
	// Retry is X-Atlassian-Webhook-Retry: how many deliveries of this
	// event the product had made before this one (0 for the first).
	Retry int
	// RawQuery is the query of the delivery (the URL variables of the
	// descriptor's webhook url, filled in), without the jwt parameter. It
	// is covered by the token's qsh. Query is the same, parsed.
	RawQuery string
	Query    url.Values
	// Body is the JSON body, nil when the webhook excludes it. It is not
	// signed by the product: trust what the query says over it.
	Body json.RawMessage
	// ReceivedAt is when the delivery was acknowledged.
	ReceivedAt time.Time
	// JobID and Attempt identify this processing attempt (Attempt 1 is
	// the first).
	JobID   int64
	Attempt int
}

// EventHandler processes a queued webhook event for the site p, which
// was verified when the event arrived and is enabled now. It runs after
// the product got its answer, so it can take its time (within the queue's
// timeout). Returning an error retries the event later, except an error
// with code EINVALID or one made by jobs.Permanent, which no retry can
// fix: the event goes straight to the dead letters. Events may arrive
// more than once (a retry after a crash, a redelivery without
// identifier): handlers must be idempotent. The context also carries p
// (tenon.PrincipalFrom).
type EventHandler func(ctx context.Context, p *tenon.Principal, ev *Event) error

// WebhookQueue is the queue of event's webhooks, for inspecting and
// tuning: "webhook:" + event.
func WebhookQueue(event string) string { return "webhook:" + event }

// Limits on the webhook headers tenon reads.
const maxWebhookIDLength = 200

// QueueOptions tune the queue behind an OnWebhook route: attempts,
// timeout, concurrency. Other routes ignore it.
func QueueOptions(opts ...jobs.QueueOption) RouteOption {
	return func(rt *route) { rt.queue = append(rt.queue, opts...) }
}

// work holds the job runner and the queued webhook routes.
type work struct {
	runner *jobs.Runner // nil without a queue

	mu    sync.RWMutex
	paths map[string]*hookPath // by mounted path
}

// hookPath is one mounted webhook path and the events delivered to it.
type hookPath struct {
	events []string
}

func newWork(cfg *Config, log *slog.Logger) *work {
	w := &work{paths: map[string]*hookPath{}}
	q := cfg.Queue
	if q == nil {
		q, _ = cfg.Store.(tenon.JobQueue)
	}
	if q == nil {
		return w
	}
	opts := cfg.Jobs
	if opts.Now == nil {
		opts.Now = cfg.Now
	}
	if opts.Logger == nil {
		opts.Logger = log
	}
	if opts.Observer == nil {
		if o, ok := cfg.Observer.(tenon.Observer); ok {
			opts.Observer = o
		}
	}
	w.runner = jobs.New(q, opts)
	return w
}

func (s *Server) runner(what string) *jobs.Runner {
	if s.work.runner == nil {
		panic(fmt.Sprintf("server: %s needs a job queue: Config.Store (%T) does not implement tenon.JobQueue; set Config.Queue", what, s.cfg.Store))
	}
	return s.work.runner
}

// OnWebhook registers h for the webhook event, mounted at the url the
// descriptor's modules.webhooks gives for it (its path; a query template
// such as "?issueKey=${issue.key}" is allowed). Deliveries are
// authenticated like Webhook routes, limited to Config.MaxBodyBytes (or
// BodyLimit), stored, acknowledged with 204, and handed to h by the job
// runner: see Event and EventHandler, and Server.Run, which must be
// running for events to be processed. A delivery that cannot be stored
// gets 503, so the product sends it again.
//
// Several events may share a url; a delivery to it then names its event
// in the body's "webhookEvent" (Jira's payloads do). An event the
// descriptor does not declare mounts nothing and is collected as a
// SetupError, reported at start with the other descriptor problems. Like
// Module, it panics on programming mistakes: a second handler for an
// event, a store without a job queue.
func (s *Server) OnWebhook(event string, h EventHandler, opts ...RouteOption) {
	r := s.runner("OnWebhook")
	if h == nil {
		panic("server: OnWebhook(" + event + "): nil handler")
	}
	var paths []string
	for _, wh := range s.desc.Modules.Webhooks {
		if wh.Event != event {
			continue
		}
		path, _, _ := strings.Cut(wh.URL, "?")
		if !strings.HasPrefix(path, "/") {
			s.setupErrs = append(s.setupErrs, fmt.Errorf("server: OnWebhook(%q): the descriptor's webhook url %q must be a path relative to baseUrl, starting with '/'", event, wh.URL))
			continue
		}
		paths = append(paths, path)
	}
	if len(paths) == 0 {
		// Collected, not a panic: the command line reports it with the
		// other descriptor problems, at their places (package lint).
		s.record(kindWebhook.String(), "", "", event)
		s.setupErrs = append(s.setupErrs, fmt.Errorf(`server: OnWebhook(%q): the descriptor declares no webhook for this event; add {"event": %q, "url": "/..."} to modules.webhooks`, event, event))
		return
	}
	rt := &route{}
	for _, o := range opts {
		o(rt)
	}
	r.Handle(WebhookQueue(event), s.eventJob(event, h), rt.queue...)

	s.work.mu.Lock()
	defer s.work.mu.Unlock()
	for _, path := range paths {
		if hp := s.work.paths[path]; hp != nil {
			hp.events = append(hp.events, event)
			continue
		}
		hp := &hookPath{events: []string{event}}
		s.work.paths[path] = hp
		s.register(kindWebhook, path, http.MethodPost, s.acceptWebhook(hp), opts)
		s.routes[len(s.routes)-1].Event = event
	}
}

// eventOf decides which event a delivery to hp is.
func (s *Server) eventOf(hp *hookPath, body []byte) (string, error) {
	s.work.mu.RLock()
	events := hp.events
	s.work.mu.RUnlock()
	if len(events) == 1 {
		return events[0], nil
	}
	var named struct {
		WebhookEvent string `json:"webhookEvent"`
	}
	_ = json.Unmarshal(body, &named)
	for _, e := range events {
		if e == named.WebhookEvent {
			return e, nil
		}
	}
	return "", errInvalid("This URL receives several events; the body's webhookEvent must name one of them.")
}

// webhookJob is the stored form of a delivery: everything EventHandler
// gets, nothing secret (the token is not kept).
type webhookJob struct {
	Event      string          `json:"event"`
	ID         string          `json:"id,omitempty"`
	Retry      int             `json:"retry,omitempty"`
	Query      string          `json:"query,omitempty"`
	AccountID  string          `json:"accountId,omitempty"`
	ReceivedAt time.Time       `json:"receivedAt"`
	Body       json.RawMessage `json:"body,omitempty"`
}

// acceptWebhook stores a verified delivery and acknowledges it.
func (s *Server) acceptWebhook(hp *hookPath) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		p := tenon.PrincipalFrom(r.Context())
		if p == nil {
			return errors.New("server: queued webhook without a principal")
		}
		body, err := readDelivery(r) // nil for a webhook with excludeBody
		if err != nil {
			return err
		}
		if body != nil && !json.Valid(body) {
			return errInvalid("The webhook body is not valid JSON.")
		}
		event, err := s.eventOf(hp, body)
		if err != nil {
			return err
		}
		id, retry, err := webhookHeaders(r.Header)
		if err != nil {
			return err
		}
		job := webhookJob{
			Event: event, ID: id, Retry: retry, Query: withoutJWT(r.URL.RawQuery),
			AccountID: p.AccountID, ReceivedAt: s.cfg.Now().UTC(), Body: body,
		}
		dedupe := ""
		if id != "" {
			// The identifier is unique per site and event; the queue is
			// per event, so the site completes the key. The identifier
			// has no spaces, so the pair is unambiguous.
			dedupe = id + " " + p.ClientKey()
		}
		jobID, created, err := s.enqueueDelivery(r.Context(), "webhook", WebhookQueue(event), p.ClientKey(), dedupe, &job)
		if err != nil {
			return err
		}
		s.log.DebugContext(r.Context(), "webhook queued", "event", event, "client_key", p.ClientKey(),
			"job", jobID, "duplicate", !created, "retry", retry)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// webhookHeaders reads and checks X-Atlassian-Webhook-Identifier and
// X-Atlassian-Webhook-Retry. They are not signed, but only a caller
// holding the site's secret gets this far, and the identifier only
// decides deduplication within that site's own events.
func webhookHeaders(h http.Header) (id string, retry int, err error) {
	id = h.Get("X-Atlassian-Webhook-Identifier")
	if len(id) > maxWebhookIDLength {
		return "", 0, errInvalid("The X-Atlassian-Webhook-Identifier header is too long.")
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' {
			return "", 0, errInvalid("The X-Atlassian-Webhook-Identifier header must be printable ASCII without spaces.")
		}
	}
	if v := h.Get("X-Atlassian-Webhook-Retry"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 1000 {
			return "", 0, errInvalid("The X-Atlassian-Webhook-Retry header must be a small number.")
		}
		retry = n
	}
	return id, retry, nil
}

// withoutJWT returns a raw query without its jwt parameters, so the token
// (a credential, if a short-lived one) is never stored.
func withoutJWT(raw string) string {
	if !strings.Contains(raw, "jw") && !strings.Contains(raw, "%") {
		return raw
	}
	var kept []string
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		k, _, _ := strings.Cut(pair, "=")
		if strings.ContainsAny(k, "%+") {
			if dk, err := url.QueryUnescape(k); err == nil {
				k = dk
			}
		}
		if k == "jwt" || pair == "" {
			continue
		}
		kept = append(kept, pair)
	}
	return strings.Join(kept, "&")
}

// eventJob turns a stored delivery back into an Event for h.
func (s *Server) eventJob(event string, h EventHandler) jobs.Handler {
	return func(ctx context.Context, j tenon.Job) error {
		var stored webhookJob
		if err := json.Unmarshal(j.Payload, &stored); err != nil {
			return jobs.Permanent(fmt.Errorf("server: webhook job %d: unreadable payload: %w", j.ID, err))
		}
		p, err := s.jobPrincipal(ctx, j.ClientKey)
		if errors.Is(err, errSiteGone) {
			s.log.InfoContext(ctx, "webhook dropped: the app is not installed on the site", "event", event,
				"client_key", j.ClientKey, "job", j.ID)
			return nil
		}
		if err != nil {
			return err
		}
		p.Kind = tenon.TokenWebhook
		p.AccountID = stored.AccountID
		query, _ := url.ParseQuery(stored.Query)
		ev := &Event{
			Name: stored.Event, ID: stored.ID, Retry: stored.Retry,
			RawQuery: stored.Query, Query: query, Body: stored.Body,
			ReceivedAt: stored.ReceivedAt, JobID: j.ID, Attempt: j.Attempts,
		}
		err = h(tenon.WithPrincipal(ctx, p), p, ev)
		if err != nil && tenon.ErrorCode(err) == tenon.EINVALID && !jobs.IsPermanent(err) {
			err = jobs.Permanent(err)
		}
		return err
	}
}

// errSiteGone: the job's site uninstalled the app or is unknown.
var errSiteGone = errors.New("the app is not installed on the site")

// jobPrincipal returns a Principal for the site of a queued job, applying
// the rules in the comment at the top of this file.
func (s *Server) jobPrincipal(ctx context.Context, clientKey string) (*tenon.Principal, error) {
	if clientKey == "" {
		return nil, jobs.Permanent(errors.New("the job names no site"))
	}
	t, err := s.tenants.get(ctx, clientKey)
	switch {
	case tenon.ErrorCode(err) == tenon.ENOTFOUND:
		return nil, errSiteGone
	case err != nil:
		return nil, fmt.Errorf("server: look up the site of a job: %w", err)
	case t.inst.State == tenon.StateUninstalled:
		return nil, errSiteGone
	case t.inst.State != tenon.StateEnabled:
		return nil, fmt.Errorf("the app is %s on site %s; the event waits until it is enabled", t.inst.State, clientKey)
	}
	inst := *t.inst // the cached record is shared
	return s.principal(&inst), nil
}

// HandleJobs registers h for the jobs of queue, run by Server.Run. Other
// features queue work through it: Forge events, scheduled tasks, slow
// work an API handler wants to do after answering. See package jobs for
// attempts, backoff and dead letters. It panics without a job queue.
func (s *Server) HandleJobs(queue string, h jobs.Handler, opts ...jobs.QueueOption) {
	s.runner("HandleJobs").Handle(queue, h, opts...)
}

// Enqueue stores a job in queue and wakes this node's runner for it. It
// returns once the job is durable. Without a job queue it fails with
// EUNAVAILABLE.
func (s *Server) Enqueue(ctx context.Context, queue string, job tenon.NewJob) (id int64, created bool, err error) {
	if s.work.runner == nil {
		return 0, false, tenon.Errorf(tenon.EUNAVAILABLE, "This server has no job queue.")
	}
	return s.work.runner.Enqueue(ctx, queue, job)
}

// Run runs what a serving Server needs in the background until ctx
// ends: the installation watch (Watch) and the job runner, which
// processes queued webhooks and jobs. It returns once both stopped; the
// runner lets running jobs finish within Config.Jobs.StopGrace. Call it
// once, next to serving HTTP. It returns SetupError at once when there is
// one.
func (s *Server) Run(ctx context.Context) error {
	if err := s.SetupError(); err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.Watch(ctx); err != nil {
			s.log.Error("installation watch stopped", "err", err)
		}
	})
	if s.work.runner != nil {
		wg.Go(func() {
			if err := s.work.runner.Run(ctx); err != nil {
				s.log.Error("job runner stopped", "err", err)
			}
		})
	}
	wg.Wait()
	return nil
}
