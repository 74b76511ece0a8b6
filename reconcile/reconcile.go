// Package reconcile finds the Forge installations Forge no longer knows.
//
// Forge's lifecycle events say when an app is installed or upgraded, but a
// remote cannot count on hearing that it was uninstalled. Run asks the
// Installation Details API about every active Forge installation in the
// store and marks uninstalled the ones it answers 404 for. Only that
// answer marks anything: a 429, a 5xx, a timeout, a refused or missing
// token leave the installation as it is, to be asked again on the next
// run. It runs on one node (the leader) daily, and on demand as
// `tenon tenants reconcile`.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/hostclient"
)

// Defaults of Options.
const (
	DefaultConcurrency = 4
	DefaultCallTimeout = 10 * time.Second
	pageSize           = 200
)

// GoneReason is recorded (in the log and the report) for an installation
// Run marks uninstalled.
const GoneReason = "the Installation Details API answered 404: Forge no longer knows the installation"

// Checker asks Forge about one installation: *hostclient.Client. An error
// with hostclient.ErrForgeInstallationGone in its chain means the
// installation is gone; any other error means the answer is unknown.
type Checker interface {
	ForgeInstallationDetails(ctx context.Context, installationID string) (*hostclient.ForgeInstallationDetails, error)
}

// Options configure Run.
type Options struct {
	Store   tenon.ForgeLifecycleStore // required
	Checker Checker                   // required
	// Concurrency bounds the API calls under way at once. Default
	// DefaultConcurrency.
	Concurrency int
	// CallTimeout bounds one API call. Default DefaultCallTimeout.
	CallTimeout time.Duration
	// Now stamps UninstalledAt. Default time.Now.
	Now func() time.Time
	// Logger receives one line per installation marked gone and per
	// failed check. Default: discard.
	Logger *slog.Logger
}

// Report counts what a run found.
type Report struct {
	Checked int // installations asked about
	Live    int // Forge described them
	Gone    int // marked uninstalled by this run
	// NoToken were not asked: no valid system token is cached for them
	// (Forge sends a fresh one with every call to the app; an app with a
	// scheduled trigger always has one).
	NoToken int
	// Unknown got no usable answer (429, 5xx, timeout, refused token): left
	// as they are, asked again next run.
	Unknown int
	// GoneIDs are the installationIds marked uninstalled.
	GoneIDs []string
}

// String is the report in one line.
func (r Report) String() string {
	return fmt.Sprintf("checked %d: live %d, gone %d (marked uninstalled), no token %d, unknown %d (asked again next run)",
		r.Checked, r.Live, r.Gone, r.NoToken, r.Unknown)
}

// Run checks every active Forge installation once. It returns the report
// so far and an error when the store fails or ctx ends; failures of single
// checks are counted, not returned.
func Run(ctx context.Context, opts Options) (Report, error) {
	if opts.Store == nil || opts.Checker == nil {
		return Report{}, errors.New("reconcile: Options.Store and Options.Checker are required")
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = DefaultCallTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var (
		mu     sync.Mutex
		rep    Report
		runErr error
	)
	note := func(f func()) {
		mu.Lock()
		f()
		mu.Unlock()
	}
	sem := make(chan struct{}, opts.Concurrency)
	var wg sync.WaitGroup
	check := func(in *tenon.ForgeInstallation) {
		defer wg.Done()
		defer func() { <-sem }()
		cctx, cancel := context.WithTimeout(ctx, opts.CallTimeout)
		_, err := opts.Checker.ForgeInstallationDetails(cctx, in.InstallationID)
		cancel()
		switch {
		case err == nil:
			note(func() { rep.Live++ })
		case errors.Is(err, hostclient.ErrForgeInstallationGone):
			changed, uerr := opts.Store.ForgeUninstalled(context.WithoutCancel(ctx), in.InstallationID, opts.Now())
			if uerr != nil {
				note(func() {
					if runErr == nil {
						runErr = fmt.Errorf("reconcile: marking %s uninstalled: %w", in.InstallationID, uerr)
					}
				})
				return
			}
			if changed {
				log.WarnContext(ctx, "Forge installation marked uninstalled", "installation_id", in.InstallationID,
					"tenant", in.ClientKey, "reason", GoneReason)
			}
			note(func() { rep.Gone++; rep.GoneIDs = append(rep.GoneIDs, in.InstallationID) })
		case errors.Is(err, hostclient.ErrNoForgeToken):
			note(func() { rep.NoToken++ })
		default:
			log.InfoContext(ctx, "Forge installation not checked; asked again next run", "installation_id", in.InstallationID, "err", err)
			note(func() { rep.Unknown++ })
		}
	}
	after := ""
	for {
		page, err := opts.Store.ActiveForgeInstallations(ctx, after, pageSize)
		if err != nil {
			wg.Wait()
			return rep, fmt.Errorf("reconcile: listing Forge installations: %w", err)
		}
		for _, in := range page {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				wg.Wait()
				return rep, ctx.Err()
			}
			note(func() { rep.Checked++ })
			wg.Add(1)
			go check(in)
		}
		if len(page) < pageSize {
			break
		}
		after = page[len(page)-1].InstallationID
	}
	wg.Wait()
	slices.Sort(rep.GoneIDs)
	return rep, runErr
}
