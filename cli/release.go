package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The releases layout, the seed of an automated deploy:
//
//	<dir>/releases/<version>/   one directory per release: the binary and what it needs
//	<dir>/current               symbolic link to releases/<version>, switched atomically
//	<dir>/releases.json         the activated versions, newest last, and a log of changes
//
// The service runs <dir>/current/<binary>, so an in-place upgrade (SIGHUP)
// starts whatever release `current` names at that moment.

const releaseUsage = `Usage: tenon release activate [flags] VERSION
       tenon release rollback [flags]
       tenon release list [flags]

activate points <dir>/current at <dir>/releases/VERSION (atomically) and
records it; rollback goes back to the version active before the current
one. Neither touches the running server unless --reload is given: then the
process in --pid-file gets SIGHUP and upgrades in place to the release now
current (as systemctl reload does).

Flags:
`

// maxReleaseHistory bounds the versions kept for rollbacks.
const maxReleaseHistory = 50

type releaseState struct {
	// Active holds the activated versions, the current one last; a
	// rollback removes the last.
	Active []string     `json:"active"`
	Log    []releaseLog `json:"log"`
}

type releaseLog struct {
	At      time.Time `json:"at"`
	Action  string    `json:"action"`
	Version string    `json:"version"`
	From    string    `json:"from,omitempty"`
}

func runRelease(ctx context.Context, env Env, _ App, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, env.help(releaseUsage))
		return errors.New("name a subcommand: activate, rollback or list")
	}
	sub := args[0]
	fs := flag.NewFlagSet("release "+sub, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	dirDefault := env.Getenv("TENON_RELEASES_DIR")
	if dirDefault == "" {
		dirDefault = "/opt/tenon"
	}
	dir := fs.String("releases-dir", dirDefault, "directory holding releases/ and current (env TENON_RELEASES_DIR)")
	reload := fs.Bool("reload", false, "send SIGHUP to the process in --pid-file after switching")
	pidFile := fs.String("pid-file", env.Getenv("TENON_PID_FILE"), "PID file of the running server, for --reload (env TENON_PID_FILE)")
	fs.Usage = func() {
		fmt.Fprint(env.Stderr, env.help(releaseUsage))
		fs.PrintDefaults()
	}
	switch sub {
	case "activate", "rollback", "list":
	case "-h", "--help", "help":
		fs.Usage()
		return flag.ErrHelp
	default:
		fs.Usage()
		return fmt.Errorf("unknown subcommand %q: use activate, rollback or list", sub)
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	want := 0
	if sub == "activate" {
		want = 1
	}
	if fs.NArg() != want {
		if want == 1 {
			return errors.New("name the version to activate, e.g. tenon release activate 1.4.2")
		}
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *reload && *pidFile == "" {
		return errors.New("--reload needs --pid-file (or TENON_PID_FILE): the server's PID file")
	}
	r := &releases{dir: *dir, now: time.Now}
	if sub == "list" {
		return r.list(env.Stdout)
	}

	unlock, err := r.lock()
	if err != nil {
		return err
	}
	var from, to string
	if sub == "activate" {
		from, to, err = r.activate(fs.Arg(0))
	} else {
		from, to, err = r.rollback()
	}
	unlock()
	if err != nil {
		return err
	}
	if from == to {
		fmt.Fprintf(env.Stdout, "%s is already the current release\n", to)
	} else {
		fmt.Fprintf(env.Stdout, "current -> releases/%s (was %s)\n", to, orNone(from))
	}
	if !*reload {
		if from != to {
			fmt.Fprintln(env.Stdout, "The running server is unchanged: reload it (systemctl reload tenon, or tenon release --reload) to upgrade in place.")
		}
		return nil
	}
	pid, err := signalPIDFile(*pidFile, syscall.SIGHUP)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "sent SIGHUP to process %d: it upgrades in place to the current release\n", pid)
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

type releases struct {
	dir string
	now func() time.Time
}

func (r *releases) statePath() string   { return filepath.Join(r.dir, "releases.json") }
func (r *releases) currentPath() string { return filepath.Join(r.dir, "current") }

// validVersion accepts names that are one path element: letters, digits
// and . _ - +, not starting with a dot.
func validVersion(v string) error {
	if v == "" || len(v) > 128 || v[0] == '.' || v[0] == '-' {
		return fmt.Errorf("%q is not a version name: use letters, digits and . _ - + (e.g. 1.4.2), not starting with . or -", v)
	}
	for _, c := range v {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-', c == '+':
		default:
			return fmt.Errorf("%q is not a version name: use letters, digits and . _ - + (e.g. 1.4.2), not starting with . or -", v)
		}
	}
	return nil
}

// checkRelease makes sure releases/<v> is a directory with an executable
// file in it, so `current` never points at something that cannot start.
func (r *releases) checkRelease(v string) error {
	if err := validVersion(v); err != nil {
		return err
	}
	rdir := filepath.Join(r.dir, "releases", v)
	fi, err := os.Stat(rdir)
	if err != nil || !fi.IsDir() {
		return fmt.Errorf("no release %s: %s is not a directory (unpack the release there first)", v, rdir)
	}
	entries, err := os.ReadDir(rdir)
	if err != nil {
		return fmt.Errorf("release %s: %w", v, err)
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0 {
			return nil
		}
	}
	return fmt.Errorf("release %s: %s holds no executable file", v, rdir)
}

// current returns the version the `current` link names, or "".
func (r *releases) current() (string, error) {
	target, err := os.Readlink(r.currentPath())
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", r.currentPath(), err)
	}
	rel := filepath.ToSlash(filepath.Clean(target))
	if abs := filepath.ToSlash(filepath.Join(r.dir, "releases")) + "/"; strings.HasPrefix(rel, abs) {
		rel = "releases/" + strings.TrimPrefix(rel, abs)
	}
	v, ok := strings.CutPrefix(rel, "releases/")
	if !ok || strings.Contains(v, "/") {
		return "", fmt.Errorf("%s points to %s, not to a release under %s/releases", r.currentPath(), target, r.dir)
	}
	return v, nil
}

func (r *releases) load() (*releaseState, error) {
	raw, err := os.ReadFile(r.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return &releaseState{}, nil
	}
	if err != nil {
		return nil, err
	}
	var st releaseState
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("%s is damaged: %w", r.statePath(), err)
	}
	return &st, nil
}

func (r *releases) save(st *releaseState) error {
	if n := len(st.Active); n > maxReleaseHistory {
		st.Active = st.Active[n-maxReleaseHistory:]
	}
	if n := len(st.Log); n > 10*maxReleaseHistory {
		st.Log = st.Log[n-10*maxReleaseHistory:]
	}
	raw, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(r.statePath(), append(raw, '\n'), 0o644)
}

// activate switches current to v and records it.
func (r *releases) activate(v string) (from, to string, err error) {
	if err := r.checkRelease(v); err != nil {
		return "", "", err
	}
	st, err := r.load()
	if err != nil {
		return "", "", err
	}
	from, err = r.current()
	if err != nil {
		return "", "", err
	}
	if from == v {
		return v, v, nil
	}
	if err := r.switchTo(v); err != nil {
		return "", "", err
	}
	st.Active = append(st.Active, v)
	st.Log = append(st.Log, releaseLog{At: r.now().UTC(), Action: "activate", Version: v, From: from})
	return from, v, r.save(st)
}

// rollback switches current back to the version activated before it.
func (r *releases) rollback() (from, to string, err error) {
	st, err := r.load()
	if err != nil {
		return "", "", err
	}
	from, err = r.current()
	if err != nil {
		return "", "", err
	}
	n := len(st.Active)
	if n < 2 {
		return "", "", errors.New("there is no earlier release to roll back to (see tenon release list)")
	}
	if st.Active[n-1] != from {
		return "", "", fmt.Errorf("current is %s, but the last activated release is %s: it was changed by hand; activate the wanted version explicitly", orNone(from), st.Active[n-1])
	}
	to = st.Active[n-2]
	if err := r.checkRelease(to); err != nil {
		return "", "", fmt.Errorf("cannot roll back: %w", err)
	}
	if err := r.switchTo(to); err != nil {
		return "", "", err
	}
	st.Active = st.Active[:n-1]
	st.Log = append(st.Log, releaseLog{At: r.now().UTC(), Action: "rollback", Version: to, From: from})
	return from, to, r.save(st)
}

// switchTo replaces the current link in one step: a new link under a
// temporary name renamed over the old one, so every reader sees either
// the old release or the new one, never no link.
func (r *releases) switchTo(v string) error {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	tmp := filepath.Join(r.dir, ".current-"+hex.EncodeToString(b[:]))
	if err := os.Symlink(filepath.Join("releases", v), tmp); err != nil {
		return fmt.Errorf("switch current: %w", err)
	}
	if err := os.Rename(tmp, r.currentPath()); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("switch current: %w", err)
	}
	return syncDir(r.dir)
}

// lock serializes release commands on one directory.
func (r *releases) lock() (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(r.dir, ".release.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("releases directory %s: %w", r.dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

func (r *releases) list(w io.Writer) error {
	cur, err := r.current()
	if err != nil {
		return err
	}
	st, err := r.load()
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(filepath.Join(r.dir, "releases"))
	if err != nil {
		return fmt.Errorf("releases directory: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || validVersion(e.Name()) != nil {
			continue
		}
		mark := " "
		if e.Name() == cur {
			mark = "*"
		}
		fmt.Fprintf(w, "%s %s\n", mark, e.Name())
	}
	if n := len(st.Active); n >= 2 && st.Active[n-1] == cur {
		fmt.Fprintf(w, "rollback would return to %s\n", st.Active[n-2])
	}
	return nil
}

// writeFileAtomic replaces path with data: a temporary file, synced, then
// renamed over it, and the directory synced.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), mode)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// signalPIDFile sends sig to the process whose PID is in path.
func signalPIDFile(path string, sig syscall.Signal) (int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("PID file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("PID file %s does not hold a process id", path)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return 0, fmt.Errorf("signal process %d from %s: %w", pid, path, err)
	}
	return pid, nil
}
