// Package personal runs Atlassian's personal data reporting cycle for
// every tenant that stores personal data: it reports the accounts of the
// tenant's inventory (tenon.PersonalDataStore) at most
// tenon.MaxReportBatch a request, once per cycle (the Cycle-Period
// Atlassian names, 7 days by default), honours 429 and Retry-After, and
// acts on the answers: a closed account's data is erased (the app's Erase
// hook, then everything tenon holds for it), an updated account's is
// refreshed (the Refresh hook). Each action is audited.
//
// Progress is saved before every request, so a node that takes over after
// a crash resumes the cycle without reporting an account twice in it;
// answers are saved before they are acted on, so a crash between the two
// repeats the action (hooks must be idempotent), never skips it. Run it
// on one node only (the leader).
package personal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/hostclient"
)

// Hooks are the app's part of the cycle. Both may be called again for the
// same account after a crash, so they must be idempotent.
type Hooks struct {
	// Erase removes what the app keeps about accountID on the tenant
	// outside PutPersonal values (an author field, an account index).
	// tenon erases its own part after Erase succeeds.
	Erase func(ctx context.Context, clientKey, accountID string) error
	// Refresh re-reads the account's details from the product.
	Refresh func(ctx context.Context, clientKey, accountID string) error
}

// Store is what the reporter needs of the store.
type Store interface {
	tenon.InstallationStore
	tenon.PersonalDataStore
	tenon.AuditStore
}

// Options configure a Reporter.
type Options struct {
	Store  Store
	Client *hostclient.Client // the one outbound path
	// Forge finds a Forge-only tenant's installations; nil skips them.
	Forge  tenon.ForgeStore
	Hooks  Hooks
	Now    func() time.Time
	Logger *slog.Logger
	// Fault, when set, is called at the named points of every batch —
	// "sent" (progress saved, request not sent yet) and "answered"
	// (answer received, not saved yet) — and an error it returns ends
	// the step there, as a node killed at that point would. For failure
	// tests; nil otherwise.
	Fault func(point string) error
}

// Reporter runs the cycle. It is safe for one goroutine at a time.
type Reporter struct{ o Options }

// New returns a Reporter.
func New(o Options) (*Reporter, error) {
	if o.Store == nil || o.Client == nil {
		return nil, errors.New("personal: Options.Store and Options.Client are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Reporter{o: o}, nil
}

// Step advances every tenant's cycle as far as it can now: due cycles
// start, running ones report their next batches until done or told to
// wait. It returns the errors of tenants that could not progress, joined;
// the others carry on.
func (r *Reporter) Step(ctx context.Context) error {
	keys, err := r.o.Store.PersonalTenants(ctx)
	if err != nil {
		return fmt.Errorf("personal: list tenants: %w", err)
	}
	var errs []error
	for _, k := range keys {
		if err := r.tenant(ctx, k); err != nil {
			errs = append(errs, fmt.Errorf("personal: tenant %q: %w", k, err))
		}
	}
	return errors.Join(errs...)
}

func (r *Reporter) point(name string) error {
	if r.o.Fault == nil {
		return nil
	}
	return r.o.Fault(name)
}

func (r *Reporter) tenant(ctx context.Context, key string) error {
	st := r.o.Store
	c, err := st.ReportCycle(ctx, key)
	if err != nil {
		return err
	}
	if err := r.apply(ctx, &c); err != nil {
		return err
	}
	now := r.o.Now()
	if now.Before(c.NotBefore) {
		return nil // between cycles, or told to wait
	}
	call, err := r.caller(ctx, key)
	if err != nil {
		return err
	}
	if call == nil {
		return nil // no installation that can be called: nothing to report for now
	}
	if c.StartedAt.IsZero() {
		c.StartedAt, c.Cursor, c.Reported = now, "", 0
	}
	for {
		batch, err := st.PersonalAccounts(ctx, key, c.Cursor, tenon.MaxReportBatch)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			return r.finish(ctx, c)
		}
		prev := c.Cursor
		c.Cursor = batch[len(batch)-1].AccountID
		if err := st.SaveReportCycle(ctx, c); err != nil {
			return err
		}
		if err := r.point("sent"); err != nil {
			return err
		}
		answers, period, wait, err := r.report(ctx, call, batch)
		if err != nil || wait > 0 {
			// The batch was not taken: report it again later.
			c.Cursor = prev
			if wait > 0 {
				c.NotBefore = r.o.Now().Add(wait)
			}
			if serr := st.SaveReportCycle(ctx, c); serr != nil {
				return errors.Join(err, serr)
			}
			return err
		}
		if err := r.point("answered"); err != nil {
			return err
		}
		c.Reported += len(batch)
		if period > 0 {
			c.Period = period
		}
		c.Pending = answers
		if err := st.SaveReportCycle(ctx, c); err != nil {
			return err
		}
		if err := r.apply(ctx, &c); err != nil {
			return err
		}
	}
}

// finish ends a cycle: the next starts one period after this one did.
func (r *Reporter) finish(ctx context.Context, c tenon.ReportCycle) error {
	period := c.Period
	if period <= 0 {
		period = tenon.DefaultCyclePeriod
	}
	next := tenon.ReportCycle{ClientKey: c.ClientKey, NotBefore: c.StartedAt.Add(period), Period: c.Period}
	if err := r.o.Store.SaveReportCycle(ctx, next); err != nil {
		return err
	}
	return r.o.Store.Audit(ctx, tenon.AuditEntry{Action: tenon.AuditCycleDone, ClientKey: c.ClientKey, Actor: "personal-data",
		Detail: fmt.Sprintf("reported %d accounts; next cycle from %s", c.Reported, next.NotBefore.UTC().Format(time.RFC3339))})
}

// apply acts on the saved answers one at a time, saving after each, so
// a crash repeats at most the action under way.
func (r *Reporter) apply(ctx context.Context, c *tenon.ReportCycle) error {
	for len(c.Pending) > 0 {
		a := c.Pending[0]
		if err := r.act(ctx, c.ClientKey, a); err != nil {
			return err
		}
		c.Pending = c.Pending[1:]
		if err := r.o.Store.SaveReportCycle(ctx, *c); err != nil {
			return err
		}
	}
	return nil
}

func (r *Reporter) act(ctx context.Context, key string, a tenon.ReportedAccount) error {
	st, h := r.o.Store, r.o.Hooks
	switch a.Status {
	case tenon.AccountClosed:
		if h.Erase != nil {
			if err := h.Erase(ctx, key, a.AccountID); err != nil {
				return fmt.Errorf("erase hook for a closed account: %w", err)
			}
		}
		n, err := st.ErasePersonal(ctx, key, a.AccountID)
		if err != nil {
			return err
		}
		return st.Audit(ctx, tenon.AuditEntry{Action: tenon.AuditPersonalClosed, ClientKey: key, AccountID: AccountRef(a.AccountID),
			Actor: "personal-data", Detail: fmt.Sprintf("account closed: app erase hook ran, %d personal values and the account's cached tokens erased", n)})
	case tenon.AccountUpdated:
		if h.Refresh != nil {
			if err := h.Refresh(ctx, key, a.AccountID); err != nil {
				return fmt.Errorf("refresh hook for an updated account: %w", err)
			}
		}
		if err := st.TouchAccount(ctx, key, a.AccountID); err != nil {
			return err
		}
		return st.Audit(ctx, tenon.AuditEntry{Action: tenon.AuditPersonalUpdated, ClientKey: key, AccountID: AccountRef(a.AccountID),
			Actor: "personal-data", Detail: "account updated: app refresh hook ran"})
	}
	r.o.Logger.WarnContext(ctx, "personal: unknown account status in a report answer; ignored", "client_key", key, "status", string(a.Status))
	return nil
}

// AccountRef is how the audit names an account: a hash, so the audit of
// an erasure does not keep the erased account's id.
func AccountRef(accountID string) string {
	h := sha256.Sum256([]byte(accountID))
	return "sha256:" + hex.EncodeToString(h[:8])
}

// caller returns the tenant to report as: the Connect installation
// signed as the app, or for a Forge-only tenant an active installation
// with its cached system token. nil when there is none to call.
func (r *Reporter) caller(ctx context.Context, key string) (*hostclient.Tenant, error) {
	if !tenon.IsForgeTenantKey(key) {
		in, err := r.o.Store.Installation(ctx, key)
		if tenon.ErrorCode(err) == tenon.ENOTFOUND {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if in.State == tenon.StateUninstalled {
			return nil, nil
		}
		return r.o.Client.AsApp(in), nil
	}
	if r.o.Forge == nil {
		return nil, nil
	}
	ins, err := r.o.Forge.ForgeInstallations(ctx, key)
	if err != nil {
		return nil, err
	}
	for _, fi := range ins {
		if fi.Active() {
			return r.o.Client.ForgeAsApp(ctx, fi.InstallationID)
		}
	}
	return nil, nil
}

type reportBody struct {
	Accounts []reportAccount `json:"accounts"`
}

type reportAccount struct {
	AccountID string `json:"accountId"`
	UpdatedAt string `json:"updatedAt"`
}

// report sends one batch. It returns the answers, the cycle period the
// answer named (0 when none), and how long to wait when rate limited.
func (r *Reporter) report(ctx context.Context, t *hostclient.Tenant, batch []tenon.PersonalAccount) ([]tenon.ReportedAccount, time.Duration, time.Duration, error) {
	body := reportBody{Accounts: make([]reportAccount, len(batch))}
	for i, a := range batch {
		body.Accounts[i] = reportAccount{a.AccountID, a.UpdatedAt.UTC().Format(time.RFC3339)}
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, 0, 0, err
	}
	resp, err := t.ReportAccounts(ctx, bytes.NewReader(raw))
	if err != nil {
		var rl *hostclient.RateLimitedError
		if errors.As(err, &rl) {
			return nil, 0, max(rl.Until.Sub(r.o.Now()), time.Second), nil
		}
		return nil, 0, 0, err
	}
	defer resp.Body.Close()
	period := cyclePeriod(resp.Header.Get("Cycle-Period"))
	switch resp.StatusCode {
	case http.StatusNoContent:
		return nil, period, 0, nil
	case http.StatusOK:
		var out struct {
			Accounts []tenon.ReportedAccount `json:"accounts"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
			return nil, 0, 0, fmt.Errorf("the report answer is not JSON: %w", err)
		}
		return out.Accounts, period, 0, nil
	case http.StatusTooManyRequests:
		return nil, 0, max(hostclient.RetryAfter(resp.Header, r.o.Now()), time.Minute), nil
	}
	return nil, 0, 0, hostclient.ResponseError(t.BaseURL(), http.MethodPost, hostclient.ReportAccountsPath, resp, r.o.Now())
}

// cyclePeriod reads the Cycle-Period header: seconds; 0 when absent or
// not a positive number.
func cyclePeriod(v string) time.Duration {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 || n > int64(365*24*time.Hour/time.Second) {
		return 0
	}
	return time.Duration(n) * time.Second
}
