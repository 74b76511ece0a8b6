// Package upgrade replaces a running server process with a new one
// without refusing a single connection.
//
// The running process (the parent) starts its successor with every
// listening socket as an inherited file descriptor, named in an
// environment variable, and one end of a pipe. The successor opens its
// listeners through Listen, which hands back the inherited sockets instead
// of binding new ones, and calls Ready once it serves. Only then does the
// parent stop accepting and drain its in-flight requests; the kernel
// queues new connections on the shared sockets throughout, so none is
// refused. A successor that exits, fails or stays silent past the timeout
// is stopped and the parent keeps serving: a broken release never takes
// the service down.
//
// Under systemd the successor announces itself with MAINPID, so the
// service stays up while the parent exits (the unit needs
// NotifyAccess=all). Sockets passed by systemd socket activation are
// used by Listen like inherited ones.
package upgrade

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// Environment variables by which a parent describes what it passed.
const (
	// EnvListeners lists the inherited sockets as JSON:
	// [{"network":"tcp","addr":":8080","fd":3}].
	EnvListeners = "TENON_UPGRADE_LISTENERS"
	// EnvReadyFD is the descriptor the successor writes to when ready.
	EnvReadyFD = "TENON_UPGRADE_READY_FD"
)

// DefaultReadyTimeout is how long a parent waits for its successor.
const DefaultReadyTimeout = time.Minute

// Errors of Upgrade.
var (
	ErrInProgress = errors.New("upgrade: an upgrade is already in progress")
	ErrUpgraded   = errors.New("upgrade: this process has already handed over to a successor")
)

// Options configure an Upgrader. The zero value upgrades to the program
// the process was started as, with the same arguments.
type Options struct {
	// Command returns the program and arguments of the successor. It is
	// called at every upgrade, so a path through a symbolic link (the
	// `current` link of a releases directory) picks the release it
	// points to at that moment. Default: os.Args, the program looked up
	// by exec.LookPath.
	Command func() (path string, args []string, err error)
	// ReadyTimeout bounds the wait for the successor's Ready. Default
	// DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// Logger receives the steps of an upgrade. Default: discard.
	Logger *slog.Logger
	// Environ is the successor's environment, without the variables of
	// this package, which Upgrade adds. Default os.Environ.
	Environ func() []string
	// Getenv reads this process's environment. Default os.Getenv.
	Getenv func(string) string
	// Stdout and Stderr of the successor. Default os.Stdout and os.Stderr.
	Stdout, Stderr io.Writer
	// SystemdFiles returns the sockets of systemd socket activation.
	// Default activation.Files, which takes them only when LISTEN_PID is
	// this process.
	SystemdFiles func() []*os.File
	// Notify sends a state to the service manager; it reports false
	// when there is none. Default daemon.SdNotify (NOTIFY_SOCKET).
	Notify func(state string) (bool, error)
}

// listenerSpec names one passed socket.
type listenerSpec struct {
	Network string `json:"network"`
	Addr    string `json:"addr"`
	FD      int    `json:"fd"`
}

type key struct{ network, addr string }

// Upgrader owns the listening sockets of a process. It is safe for
// concurrent use.
type Upgrader struct {
	opts Options
	log  *slog.Logger

	mu        sync.Mutex
	inherited map[key]*os.File // from the parent, not yet claimed by Listen
	systemd   []net.Listener   // from socket activation, not yet claimed
	open      map[key]net.Listener
	order     []key // open, in the order Listen returned them
	ready     *os.File
	hasParent bool
	upgrading bool
	done      chan struct{} // closed once a successor is ready
}

// New returns an Upgrader holding the sockets this process inherited from
// its parent or from systemd.
func New(opts Options) (*Upgrader, error) {
	if opts.Command == nil {
		opts.Command = defaultCommand
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = DefaultReadyTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Environ == nil {
		opts.Environ = os.Environ
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.SystemdFiles == nil {
		opts.SystemdFiles = func() []*os.File { return activation.Files(true) }
	}
	if opts.Notify == nil {
		opts.Notify = func(state string) (bool, error) { return daemon.SdNotify(false, state) }
	}
	u := &Upgrader{
		opts:      opts,
		log:       opts.Logger,
		inherited: map[key]*os.File{},
		open:      map[key]net.Listener{},
		done:      make(chan struct{}),
	}
	if err := u.inherit(); err != nil {
		u.Close()
		return nil, err
	}
	for _, f := range opts.SystemdFiles() {
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			u.Close()
			return nil, fmt.Errorf("upgrade: socket from systemd: %w", err)
		}
		u.systemd = append(u.systemd, ln)
	}
	return u, nil
}

// inherit takes the descriptors a parent passed.
func (u *Upgrader) inherit() error {
	if v := u.opts.Getenv(EnvReadyFD); v != "" {
		fd, err := strconv.Atoi(v)
		if err != nil || fd < 3 {
			return fmt.Errorf("upgrade: %s=%q is not a descriptor", EnvReadyFD, v)
		}
		u.ready = os.NewFile(uintptr(fd), "upgrade-ready")
		u.hasParent = true
		syscall.CloseOnExec(fd)
	}
	v := u.opts.Getenv(EnvListeners)
	if v == "" {
		return nil
	}
	var specs []listenerSpec
	if err := json.Unmarshal([]byte(v), &specs); err != nil {
		return fmt.Errorf("upgrade: %s is not valid: %w", EnvListeners, err)
	}
	for _, s := range specs {
		if s.FD < 3 {
			return fmt.Errorf("upgrade: %s names descriptor %d", EnvListeners, s.FD)
		}
		syscall.CloseOnExec(s.FD)
		u.inherited[key{s.Network, s.Addr}] = os.NewFile(uintptr(s.FD), s.Network+":"+s.Addr)
	}
	return nil
}

func defaultCommand() (string, []string, error) {
	path, err := exec.LookPath(os.Args[0])
	if err != nil {
		// Started by a bare name whose lookup no longer works: the
		// binary this process runs is the best remaining guess.
		if path, err = os.Executable(); err != nil {
			return "", nil, fmt.Errorf("upgrade: find the program to start: %w", err)
		}
	}
	return path, os.Args[1:], nil
}

// HasParent reports whether this process was started by an upgrade and
// has not yet told its parent it is ready.
func (u *Upgrader) HasParent() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hasParent
}

// Listen returns a listener for network ("tcp", "tcp4", "tcp6" or "unix")
// and addr: the socket a parent passed for the same network and addr, or
// one from systemd socket activation bound to that address, or a new one.
// Listen the same way, with the same addr strings, in every release.
func (u *Upgrader) Listen(network, addr string) (net.Listener, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	k := key{network, addr}
	if _, dup := u.open[k]; dup {
		return nil, fmt.Errorf("upgrade: %s %s is already open", network, addr)
	}
	ln, err := u.take(k)
	if err != nil {
		return nil, err
	}
	if ln == nil {
		if ln, err = net.Listen(network, addr); err != nil {
			return nil, err
		}
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		// The socket file must outlive this process's close: the
		// successor serves on it.
		ul.SetUnlinkOnClose(false)
	}
	u.open[k] = ln
	u.order = append(u.order, k)
	return ln, nil
}

// take returns an inherited or socket-activated listener for k, or nil.
func (u *Upgrader) take(k key) (net.Listener, error) {
	if f, ok := u.inherited[k]; ok {
		delete(u.inherited, k)
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("upgrade: inherited socket %s %s: %w", k.network, k.addr, err)
		}
		u.log.Info("serving on an inherited socket", "network", k.network, "addr", k.addr)
		return ln, nil
	}
	for i, ln := range u.systemd {
		if sameAddr(k, ln.Addr()) {
			u.systemd = slices.Delete(u.systemd, i, i+1)
			u.log.Info("serving on a socket from systemd", "network", k.network, "addr", ln.Addr().String())
			return ln, nil
		}
	}
	return nil, nil
}

// sameAddr reports whether a socket bound to have serves k: the same unix
// path, or the same TCP port on the same or an unspecified host.
func sameAddr(k key, have net.Addr) bool {
	switch a := have.(type) {
	case *net.UnixAddr:
		return k.network == "unix" && a.Name == k.addr
	case *net.TCPAddr:
		if !strings.HasPrefix(k.network, "tcp") {
			return false
		}
		host, port, err := net.SplitHostPort(k.addr)
		if err != nil || port != strconv.Itoa(a.Port) {
			return false
		}
		ip := net.ParseIP(host)
		return host == "" || a.IP.IsUnspecified() || (ip != nil && ip.Equal(a.IP))
	}
	return false
}

// Ready tells the parent, if any, that this process serves, and the
// service manager, if any, that this process is the service's main one.
// Call it once every listener serves.
func (u *Upgrader) Ready() error {
	u.mu.Lock()
	ready := u.ready
	u.ready, u.hasParent = nil, false
	// Sockets a parent passed that this release does not use.
	for k, f := range u.inherited {
		u.log.Warn("an inherited socket is not used by this release; closing it", "network", k.network, "addr", k.addr)
		f.Close()
		delete(u.inherited, k)
	}
	u.mu.Unlock()

	var err error
	if ready != nil {
		_, err = ready.Write([]byte{'R'})
		if cerr := ready.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			err = fmt.Errorf("upgrade: tell the parent: %w", err)
		}
	}
	if _, nerr := u.opts.Notify("READY=1\nMAINPID=" + strconv.Itoa(os.Getpid())); nerr != nil {
		u.log.Warn("telling systemd the service is ready failed", "err", nerr)
	}
	return err
}

// Stopping tells the service manager this process is going away, unless
// it handed over to a successor, which is now the service.
func (u *Upgrader) Stopping() {
	select {
	case <-u.done:
		return
	default:
	}
	if _, err := u.opts.Notify("STOPPING=1"); err != nil {
		u.log.Warn("telling systemd the service is stopping failed", "err", err)
	}
}

// Upgraded is closed once a successor is ready: the caller should then
// stop accepting, drain its in-flight requests and exit.
func (u *Upgrader) Upgraded() <-chan struct{} { return u.done }

// Upgrade starts the successor with this process's listeners and waits
// until it is ready, fails, or ctx or the ready timeout ends. It returns
// nil once the successor is ready (and Upgraded is closed); any error
// means this process still owns the service and should keep serving.
func (u *Upgrader) Upgrade(ctx context.Context) error {
	u.mu.Lock()
	select {
	case <-u.done:
		u.mu.Unlock()
		return ErrUpgraded
	default:
	}
	if u.upgrading {
		u.mu.Unlock()
		return ErrInProgress
	}
	u.upgrading = true
	files, specs, err := u.listenerFiles()
	u.mu.Unlock()

	defer func() {
		u.mu.Lock()
		u.upgrading = false
		u.mu.Unlock()
	}()
	defer closeAll(files)
	if err != nil {
		return err
	}
	path, args, err := u.opts.Command()
	if err != nil {
		return err
	}
	readR, readyW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("upgrade: pipe: %w", err)
	}
	defer readR.Close()
	specJSON, _ := json.Marshal(specs)
	cmd := exec.Command(path, args...)
	cmd.Env = append(withoutOwnVars(u.opts.Environ()),
		EnvListeners+"="+string(specJSON),
		EnvReadyFD+"="+strconv.Itoa(3+len(files)))
	cmd.ExtraFiles = append(slices.Clone(files), readyW)
	cmd.Stdout, cmd.Stderr = u.opts.Stdout, u.opts.Stderr
	u.log.Info("upgrade: starting the successor", "program", path)
	err = cmd.Start()
	readyW.Close() // the successor holds its own copy
	if err != nil {
		return fmt.Errorf("upgrade: start %s: %w", path, err)
	}

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	gotReady := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := io.ReadFull(readR, b[:])
		gotReady <- err
	}()
	timer := time.NewTimer(u.opts.ReadyTimeout)
	defer timer.Stop()

	var fail error
	select {
	case err := <-gotReady:
		if err == nil {
			u.mu.Lock()
			close(u.done)
			u.mu.Unlock()
			u.log.Info("upgrade: the successor is ready; handing over", "pid", cmd.Process.Pid)
			return nil
		}
		// The pipe closed without a word: the successor exited or
		// closed it; its exit status says more.
		select {
		case werr := <-exited:
			fail = fmt.Errorf("upgrade: the successor exited before it was ready: %v", exitText(werr))
		case <-time.After(5 * time.Second):
			fail = errors.New("upgrade: the successor closed its ready pipe without being ready")
		}
	case werr := <-exited:
		fail = fmt.Errorf("upgrade: the successor exited before it was ready: %v", exitText(werr))
	case <-timer.C:
		fail = fmt.Errorf("upgrade: the successor was not ready within %v", u.opts.ReadyTimeout)
	case <-ctx.Done():
		fail = fmt.Errorf("upgrade: cancelled: %w", ctx.Err())
	}
	if cmd.ProcessState == nil {
		_ = cmd.Process.Kill()
		<-exited
	}
	return fail
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// listenerFiles duplicates the descriptors of the open listeners. The
// caller holds u.mu.
func (u *Upgrader) listenerFiles() ([]*os.File, []listenerSpec, error) {
	var files []*os.File
	var specs []listenerSpec
	for _, k := range u.order {
		f, err := dupListener(u.open[k])
		if err != nil {
			closeAll(files)
			return nil, nil, fmt.Errorf("upgrade: pass the %s listener on %s: %w", k.network, k.addr, err)
		}
		specs = append(specs, listenerSpec{Network: k.network, Addr: k.addr, FD: 3 + len(files)})
		files = append(files, f)
	}
	return files, specs, nil
}

// dupListener duplicates a listener's descriptor for a child process.
// Not through the listener's File method: that file's Fd, which starting
// a process calls, switches the socket to blocking mode, and the mode
// belongs to the socket, shared with this process's listener, whose
// Accept would then block in the kernel where Close cannot interrupt it.
func dupListener(ln net.Listener) (*os.File, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("a %T cannot be passed on", ln)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd, derr := -1, error(nil)
	err = rc.Control(func(s uintptr) {
		fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return nil, fmt.Errorf("duplicate the socket: %w", err)
	}
	return os.NewFile(uintptr(fd), "listener"), nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// withoutOwnVars drops this package's variables (and systemd's socket
// variables, which name this process) from an environment.
func withoutOwnVars(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case EnvListeners, EnvReadyFD, "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES":
			return true
		}
		return false
	})
}

// Close closes the inherited sockets nobody claimed and a ready pipe that
// was never used. Listeners returned by Listen belong to the caller.
func (u *Upgrader) Close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for k, f := range u.inherited {
		f.Close()
		delete(u.inherited, k)
	}
	for _, ln := range u.systemd {
		ln.Close()
	}
	u.systemd = nil
	if u.ready != nil {
		u.ready.Close()
		u.ready = nil
	}
}
