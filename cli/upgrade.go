package cli

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tenon-dev/tenon/upgrade"
)

// This file is how a `tenon serve` process starts and ends without
// dropping requests:
//
//   - SIGTERM: readiness turns 503 (the "draining" check) and the server
//     keeps serving for --drain-delay, so load balancers stop sending;
//     then it stops accepting, lets in-flight requests finish within
//     --shutdown-timeout, and exits.
//   - SIGHUP: an in-place upgrade (package upgrade). The process starts
//     the program it was started as — through the `current` link of a
//     releases directory, the release that link names now — handing it
//     the listening sockets. Once the new process serves, this one stops
//     accepting, drains and exits; if the new one fails, this one keeps
//     serving.
//
// Both paths end in drainer.stop (upgrade.Drainer), which closes the
// listener before anything else, so that connections the kernel has
// queued go to the successor (or are refused after SIGTERM), never
// half-served.

// process is what a serving process owns besides its Backend: the
// sockets it may hand on, whether it is draining, its PID file.
type process struct {
	up       *upgrade.Upgrader
	log      *slog.Logger
	pidFile  string
	draining atomic.Bool

	hup      chan os.Signal
	ready    chan struct{} // closed once the server serves
	stopped  chan struct{} // closed when the process should stop
	stopOnce sync.Once
	done     chan struct{} // closed when the SIGHUP loop has ended
}

// startProcess prepares the serve command's process and attaches it to
// b: listeners go through the upgrader, readiness reports draining, and
// SIGHUP is caught from now on (its default action would kill the
// process). The caller must call close.
func startProcess(b *Backend) (*process, error) {
	up, err := upgrade.New(upgrade.Options{Logger: b.Logger})
	if err != nil {
		return nil, err
	}
	p := &process{
		up:      up,
		log:     b.Logger,
		pidFile: b.Config.PIDFile,
		hup:     make(chan os.Signal, 1),
		ready:   make(chan struct{}),
		stopped: make(chan struct{}),
		done:    make(chan struct{}),
	}
	signal.Notify(p.hup, syscall.SIGHUP)
	b.proc = p
	b.Listen = up.Listen
	b.Health.RegisterState("draining", func() error {
		if p.draining.Load() {
			return errors.New("the process is shutting down")
		}
		return nil
	})
	return p, nil
}

// close stops catching SIGHUP, waits for an upgrade in progress and
// removes the PID file unless a successor owns it now.
func (p *process) close() {
	signal.Stop(p.hup)
	p.stop()
	select {
	case <-p.ready:
		<-p.done
	default:
	}
	p.up.Stopping()
	p.up.Close()
	if p.upgraded() || p.pidFile == "" {
		return
	}
	if raw, err := os.ReadFile(p.pidFile); err == nil && strings.TrimSpace(string(raw)) == strconv.Itoa(os.Getpid()) {
		_ = os.Remove(p.pidFile)
	}
}

func (p *process) stop() { p.stopOnce.Do(func() { close(p.stopped) }) }

func (p *process) upgraded() bool {
	select {
	case <-p.up.Upgraded():
		return true
	default:
		return false
	}
}

// serving is called once the server accepts requests. It tells a parent
// process and the service manager, writes the PID file, and starts
// handling SIGHUP. The channel it returns is closed when the server
// should stop: ctx ended (SIGTERM, SIGINT) or a successor took over.
func (d *drainer) serving(ctx context.Context) <-chan struct{} {
	p := d.b.proc
	if p == nil {
		return ctx.Done()
	}
	if err := p.up.Ready(); err != nil {
		// The parent gave up waiting and keeps serving; this process
		// serves too, on the same sockets, until stopped.
		p.log.Error("telling the previous process that this one is ready failed", "err", err)
	}
	if p.pidFile != "" {
		if err := writePIDFile(p.pidFile, os.Getpid()); err != nil {
			p.log.Error("writing the PID file failed", "path", p.pidFile, "err", err)
		}
	}
	close(p.ready)
	go p.handleSignals(ctx)
	return p.stopped
}

// handleSignals runs an upgrade on every SIGHUP until the process stops.
func (p *process) handleSignals(ctx context.Context) {
	defer close(p.done)
	for {
		select {
		case <-ctx.Done():
			p.stop()
			return
		case <-p.stopped:
			return
		case <-p.hup:
		}
		if p.draining.Load() {
			continue
		}
		p.log.Info("SIGHUP: upgrading in place")
		if err := p.up.Upgrade(ctx); err != nil {
			p.log.Error("upgrade failed; this process keeps serving", "err", err)
			continue
		}
		p.log.Info("the new process serves; this one drains and exits")
		p.stop()
		return
	}
}

// writePIDFile replaces path atomically with pid.
func writePIDFile(path string, pid int) error {
	return writeFileAtomic(path, []byte(strconv.Itoa(pid)+"\n"), 0o644)
}

// drainer is the end of a serve: the drain delay with readiness
// failing after SIGTERM, then upgrade.Drainer's stop.
type drainer struct {
	*upgrade.Drainer
	b         *Backend
	stopWatch context.CancelFunc
}

// newDrainer prepares hs to be served on ln and drained; call it before
// hs serves. It also follows setting changes (maintenance mode, notices)
// reported by the store until stop.
func (b *Backend) newDrainer(ctx context.Context, hs *http.Server, ln net.Listener) *drainer {
	d := &drainer{Drainer: upgrade.NewDrainer(hs, ln), b: b}
	wctx, cancel := context.WithCancel(ctx)
	d.stopWatch = cancel
	go func() { _ = b.Server.WatchSettings(wctx) }()
	return d
}

func (d *drainer) serve() error { return d.Serve() }

// stop drains and shuts the server down: after SIGTERM with readiness
// failing for the drain delay first, after an upgrade at once (the
// successor already accepts on the same sockets).
func (d *drainer) stop() error {
	b := d.b
	d.stopWatch()
	upgraded := b.proc != nil && b.proc.upgraded()
	if b.proc != nil {
		b.proc.draining.Store(true)
	}
	if delay := b.Config.DrainDelay; delay > 0 && !upgraded {
		b.Logger.Info("draining: readiness fails while the server keeps serving", "drain_delay", delay.String())
		time.Sleep(delay)
	}
	b.Logger.Info("shutting down", "timeout", b.Config.ShutdownTimeout.String(), "upgraded", upgraded)
	ctx, cancel := context.WithTimeout(context.Background(), b.Config.ShutdownTimeout)
	defer cancel()
	return d.Stop(ctx)
}
