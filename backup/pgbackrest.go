package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// PgBackRestURL is a parsed --backup-url of the form
// pgbackrest://STANZA?config=/etc/pgbackrest/pgbackrest.conf&snapshots=TARGET:
// WAL archiving and physical backups are pgBackRest's, in the repository
// its configuration file names for STANZA; the logical snapshots go to
// TARGET (file:///dir or s3://bucket/prefix), as SQLite's do.
type PgBackRestURL struct {
	Stanza, Config, Snapshots string
}

// DefaultPgBackRestConfig is where the Debian package puts the file.
const DefaultPgBackRestConfig = "/etc/pgbackrest/pgbackrest.conf"

var stanzaName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// IsPgBackRestURL tells a pgBackRest backup URL from a target URL.
func IsPgBackRestURL(raw string) bool { return strings.HasPrefix(raw, "pgbackrest:") }

// ParsePgBackRestURL checks a pgbackrest:// backup URL strictly: a stanza
// name, no path, user or port, and only the config and snapshots
// parameters, each at most once.
func ParsePgBackRestURL(raw string) (*PgBackRestURL, error) {
	const form = "pgbackrest://STANZA?config=/etc/pgbackrest/pgbackrest.conf&snapshots=file:///var/backups/tenon"
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "pgbackrest" || u.Opaque != "" {
		return nil, fmt.Errorf("backup URL %q: want %s", raw, form)
	}
	if u.User != nil || u.Port() != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("backup URL %q: only a stanza name goes between pgbackrest:// and ?; want %s", raw, form)
	}
	if !stanzaName.MatchString(u.Hostname()) {
		return nil, fmt.Errorf("backup URL %q: name the pgBackRest stanza (letters, digits, _ . -) after pgbackrest://; want %s", raw, form)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("backup URL %q: %v", raw, err)
	}
	p := &PgBackRestURL{Stanza: u.Hostname(), Config: DefaultPgBackRestConfig}
	for k, v := range q {
		if len(v) != 1 {
			return nil, fmt.Errorf("backup URL %q: %s is given %d times", raw, k, len(v))
		}
		switch k {
		case "config":
			if !filepath.IsAbs(v[0]) {
				return nil, fmt.Errorf("backup URL %q: config must be an absolute path such as %s", raw, DefaultPgBackRestConfig)
			}
			p.Config = filepath.Clean(v[0])
		case "snapshots":
			if IsPgBackRestURL(v[0]) {
				return nil, fmt.Errorf("backup URL %q: snapshots names where the logical snapshots go, file:///dir or s3://bucket/prefix", raw)
			}
			p.Snapshots = v[0]
		default:
			return nil, fmt.Errorf("backup URL %q: unknown parameter %q (config and snapshots are known)", raw, k)
		}
	}
	if p.Snapshots == "" {
		return nil, fmt.Errorf("backup URL %q: add snapshots=file:///dir or snapshots=s3://bucket/prefix for the logical snapshots and drill reports; want %s", raw, form)
	}
	return p, nil
}

// PgBackRest is the Engine of a PostgreSQL store. tenon does not archive
// WAL itself: PostgreSQL's archive_command hands every segment to
// pgBackRest, and this engine drives pgBackRest (backup, info, restore)
// and watches the archiver to know how much is safe. Snapshots are
// logical exports of tenon's tables (see SnapshotTo). Locations are
// DSNs for live databases, data directories for physical restores and
// paths for logical export files.
type PgBackRest struct {
	Stanza, Config string
	// DSN is the live database: the one tenon serves.
	DSN string
	// Bin is the pgbackrest binary; default "pgbackrest" on PATH.
	Bin string
	// Command builds each pgbackrest process; default exec.CommandContext.
	// pgBackRest must run as the owner of its repository (the postgres
	// user, usually): run tenon's backup commands as that user, or let
	// Command set the credentials.
	Command func(ctx context.Context, name string, args ...string) *exec.Cmd
	// SyncInterval is how often the archiver is read; 0 means 1s.
	SyncInterval time.Duration
	Now          func() time.Time
	Logger       *slog.Logger
}

var _ Engine = (*PgBackRest)(nil)

// Kind names the engine in manifests.
func (e *PgBackRest) Kind() string { return "postgres" }

func (e *PgBackRest) now() time.Time {
	if e.Now == nil {
		return time.Now()
	}
	return e.Now()
}

func (e *PgBackRest) logger() *slog.Logger {
	if e.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Logger
}

// run runs one pgbackrest command and returns its standard output. A
// failure carries pgBackRest's own message and what to check.
func (e *PgBackRest) run(ctx context.Context, command string, args ...string) ([]byte, error) {
	bin := e.Bin
	if bin == "" {
		bin = "pgbackrest"
	}
	mk := e.Command
	if mk == nil {
		mk = exec.CommandContext
	}
	all := append([]string{"--config=" + e.Config, "--stanza=" + e.Stanza, "--log-level-console=off", "--log-level-stderr=error"}, args...)
	all = append(all, command)
	cmd := mk(ctx, bin, all...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	msg := strings.TrimSpace(stderr.String())
	if msg == "" {
		msg = strings.TrimSpace(stdout.String())
	}
	if msg == "" {
		msg = err.Error()
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) { // it never ran
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("pgbackrest %s failed: %v; install pgBackRest (apt-get install pgbackrest) or check PATH", command, err)
		}
		return nil, fmt.Errorf("pgbackrest %s failed to start: %w", command, err)
	}
	return nil, &pgBackRestError{command: command, msg: msg, hint: e.hint(command)}
}

type pgBackRestError struct{ command, msg, hint string }

func (e *pgBackRestError) Error() string {
	return fmt.Sprintf("pgbackrest %s failed: %s; %s", e.command, e.msg, e.hint)
}

func (e *PgBackRest) hint(command string) string {
	switch command {
	case "restore":
		return "check the stanza with tenon backup list, that the target directory is empty, and that tenon runs as the repository's owner (the postgres user)"
	case "info":
		return fmt.Sprintf("check stanza %q exists in %s (pgbackrest stanza-create) and that tenon runs as the repository's owner", e.Stanza, e.Config)
	}
	return fmt.Sprintf("check %s, that archive_command ships WAL (pgbackrest --stanza=%s check), and that tenon runs as the repository's owner (the postgres user)", e.Config, e.Stanza)
}

// PgBackRestBackup is one backup set in the repository.
type PgBackRestBackup struct {
	Label       string    `json:"label"`
	Type        string    `json:"type"` // full, diff or incr
	Start, Stop time.Time `json:"-"`
	Size        int64     `json:"size"`
}

// PgBackRestInfo is what pgbackrest info says of the stanza.
type PgBackRestInfo struct {
	// Backups, oldest first.
	Backups []PgBackRestBackup
	// ArchiveMin and ArchiveMax are the oldest and newest archived WAL
	// segments.
	ArchiveMin, ArchiveMax string
	Status                 string
}

// Info reads the stanza's backups and archive range.
func (e *PgBackRest) Info(ctx context.Context) (*PgBackRestInfo, error) {
	out, err := e.run(ctx, "info", "--output=json")
	if err != nil {
		return nil, err
	}
	var raw []struct {
		Archive []struct{ Min, Max string } `json:"archive"`
		Backup  []struct {
			Label     string `json:"label"`
			Type      string `json:"type"`
			Timestamp struct{ Start, Stop int64 }
			Info      struct{ Size int64 }
		} `json:"backup"`
		Status struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"status"`
	}
	if err := json.Unmarshal(out, &raw); err != nil || len(raw) != 1 {
		return nil, fmt.Errorf("pgbackrest info: unexpected output (%v); check pgBackRest is version 2.x", err)
	}
	in := &PgBackRestInfo{Status: raw[0].Status.Message}
	for _, b := range raw[0].Backup {
		in.Backups = append(in.Backups, PgBackRestBackup{Label: b.Label, Type: b.Type, Size: b.Info.Size,
			Start: time.Unix(b.Timestamp.Start, 0).UTC(), Stop: time.Unix(b.Timestamp.Stop, 0).UTC()})
	}
	sort.Slice(in.Backups, func(i, j int) bool { return in.Backups[i].Stop.Before(in.Backups[j].Stop) })
	for _, a := range raw[0].Archive {
		if in.ArchiveMin == "" || a.Min < in.ArchiveMin {
			in.ArchiveMin = a.Min
		}
		if a.Max > in.ArchiveMax {
			in.ArchiveMax = a.Max
		}
	}
	if raw[0].Status.Code != 0 && raw[0].Status.Code != 2 { // 2: no backups yet
		return in, fmt.Errorf("pgbackrest info failed: stanza %s: %s; %s", e.Stanza, in.Status, e.hint("info"))
	}
	return in, nil
}

// FullEvery is how old the newest full backup may be before Backup takes
// a full one again instead of a differential.
const FullEvery = 7 * 24 * time.Hour

// Backup takes a pgBackRest backup: full when the repository holds none
// from the last FullEvery, differential (against that full) otherwise.
// Retention of backup sets and of the WAL they need is pgBackRest's
// (repo1-retention-full in its configuration), applied as it finishes.
func (e *PgBackRest) Backup(ctx context.Context) (*PgBackRestBackup, error) {
	in, err := e.Info(ctx)
	if err != nil {
		return nil, err
	}
	typ := "full"
	for _, b := range in.Backups {
		if b.Type == "full" && e.now().Sub(b.Stop) < FullEvery {
			typ = "diff"
		}
	}
	if _, err := e.run(ctx, "backup", "--type="+typ); err != nil {
		return nil, err
	}
	after, err := e.Info(ctx)
	if err != nil {
		return nil, err
	}
	if len(after.Backups) == 0 {
		return nil, fmt.Errorf("pgbackrest backup reported success and info lists no backup; %s", e.hint("backup"))
	}
	b := after.Backups[len(after.Backups)-1]
	e.logger().Info("pgbackrest backup stored", "label", b.Label, "type", b.Type, "stanza", e.Stanza)
	return &b, nil
}

// Check runs pgbackrest check: the configuration is valid and
// archive_command delivers WAL to the repository.
func (e *PgBackRest) Check(ctx context.Context) error {
	_, err := e.run(ctx, "check")
	return err
}

// RestoreReplica restores the newest backup set into the data directory
// to (missing or empty), with PostgreSQL set to replay the archived WAL
// up to at, or to the end of the archive when at is zero, and then
// promote. The state is reached when PostgreSQL is started on to; the
// time returned is at, or zero for the end of the archive (the server
// knows that moment only after replay).
func (e *PgBackRest) RestoreReplica(ctx context.Context, at time.Time, to string) (time.Time, error) {
	if entries, err := os.ReadDir(to); err == nil && len(entries) > 0 {
		return time.Time{}, fmt.Errorf("%s is not empty; restore into an empty data directory (stop PostgreSQL and move the old one away)", to)
	}
	in, err := e.Info(ctx)
	if err != nil {
		return time.Time{}, err
	}
	if len(in.Backups) == 0 {
		return time.Time{}, fmt.Errorf("%w: stanza %s has no backup set; take one with tenon backup", ErrNoBackup, e.Stanza)
	}
	args := []string{"--pg1-path=" + to}
	if !at.IsZero() {
		if oldest := in.Backups[0].Stop; at.Before(oldest) {
			return time.Time{}, fmt.Errorf("%w: the oldest pgBackRest backup of stanza %s finished at %s, after %s; restore a logical snapshot taken before that time (tenon backup list, --snapshot NAME)",
				ErrNoBackup, e.Stanza, oldest.Format(time.RFC3339), at.UTC().Format(time.RFC3339))
		}
		args = append(args, "--type=time", "--target="+at.UTC().Format("2006-01-02 15:04:05.000000+00"), "--target-action=promote")
	}
	if _, err := e.run(ctx, "restore", args...); err != nil {
		var pe *pgBackRestError
		if errors.As(err, &pe) && strings.Contains(pe.msg, "no backup set") {
			return time.Time{}, fmt.Errorf("%w: %v", ErrNoBackup, err)
		}
		return time.Time{}, err
	}
	return at, nil
}

// Replicate watches the archiver of the live database: it does not ship
// anything itself (archive_command does), it measures what is shipped.
func (e *PgBackRest) Replicate(ctx context.Context) (Replication, error) {
	conn, err := pgx.Connect(ctx, e.DSN)
	if err != nil {
		return nil, fmt.Errorf("watch WAL archiving: connect to the database: %w", err)
	}
	w := &archiveWatch{e: e, conn: conn, stop: make(chan struct{}), done: make(chan struct{})}
	if err := w.poll(ctx); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	interval := e.SyncInterval
	if interval <= 0 {
		interval = time.Second
	}
	go w.watch(interval)
	return w, nil
}

// archiveWatch turns pg_stat_archiver into a recovery point. At each
// poll it notes the time and the WAL segment of the current insert
// position: every commit acknowledged before that time lies in that
// segment or an earlier one. Once the archiver reports a segment at least
// as new as the noted one, everything committed before the noted time is
// in the repository.
type archiveWatch struct {
	e *PgBackRest

	connMu  sync.Mutex // guards conn and pending: one poll at a time
	conn    *pgx.Conn
	pending []walMark

	mu     sync.Mutex // guards synced and err, so Status never waits on the database
	synced time.Time
	err    error

	stop, done chan struct{}
	closeOnce  sync.Once
}

type walMark struct {
	at      time.Time
	segment string
}

// walSegment is a WAL file name: timeline, log and segment, 24 hex
// digits, so that names compare in WAL order as strings.
var walSegment = regexp.MustCompile(`^[0-9A-F]{24}$`)

func (w *archiveWatch) watch(interval time.Duration) {
	defer close(w.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), interval+5*time.Second)
		_ = w.poll(ctx) // kept in Status
		cancel()
	}
}

// poll notes the current segment and reads the archiver once.
func (w *archiveWatch) poll(ctx context.Context) error {
	_, err := w.mark(ctx, false)
	return err
}

// mark notes (now, current segment), switching to a new segment first
// when switch is set, and advances synced from the archiver.
func (w *archiveWatch) mark(ctx context.Context, switchWAL bool) (walMark, error) {
	w.connMu.Lock()
	defer w.connMu.Unlock()
	m, synced, err := w.read(ctx, switchWAL)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.err = err
	if synced.After(w.synced) {
		w.synced = synced
	}
	return m, err
}

// read does one poll under connMu and returns the mark, the newest
// moment now known archived (zero: none new) and the archiver's error.
func (w *archiveWatch) read(ctx context.Context, switchWAL bool) (walMark, time.Time, error) {
	var synced time.Time
	if w.conn == nil || w.conn.IsClosed() {
		c, err := pgx.Connect(ctx, w.e.DSN)
		if err != nil {
			return walMark{}, synced, fmt.Errorf("watch WAL archiving: %w", err)
		}
		w.conn = c
	}
	m := walMark{at: w.e.now()}
	if err := w.conn.QueryRow(ctx, `SELECT pg_walfile_name(pg_current_wal_insert_lsn())`).Scan(&m.segment); err != nil {
		return walMark{}, synced, fmt.Errorf("watch WAL archiving: %w (a server in recovery archives nothing yet)", err)
	}
	if switchWAL {
		// Closes the segment holding m now rather than at archive_timeout;
		// without the privilege (superuser, or GRANT EXECUTE ON FUNCTION
		// pg_switch_wal) the wait is up to archive_timeout.
		_, _ = w.conn.Exec(ctx, `SELECT pg_switch_wal()`)
	}
	w.pending = append(w.pending, m)
	if len(w.pending) > 4096 {
		w.pending = w.pending[len(w.pending)-4096:]
	}
	var archived, failed *string
	var archivedAt, failedAt *time.Time
	var mode string
	err := w.conn.QueryRow(ctx, `SELECT last_archived_wal, last_archived_time, last_failed_wal, last_failed_time, current_setting('archive_mode') FROM pg_stat_archiver`).
		Scan(&archived, &archivedAt, &failed, &failedAt, &mode)
	if err != nil {
		return m, synced, fmt.Errorf("watch WAL archiving: %w", err)
	}
	if mode == "off" {
		return m, synced, errors.New("archive_mode is off: PostgreSQL archives no WAL, so only backups are restorable; set archive_mode and archive_command as docs/OPERATIONS.md shows")
	}
	if archived != nil && walSegment.MatchString(*archived) {
		i := 0
		for ; i < len(w.pending) && w.pending[i].segment <= *archived; i++ {
			if w.pending[i].at.After(synced) {
				synced = w.pending[i].at
			}
		}
		w.pending = w.pending[i:]
	}
	if failedAt != nil && (archivedAt == nil || failedAt.After(*archivedAt)) {
		err = fmt.Errorf("archive_command failed for WAL segment %s at %s; see the PostgreSQL log and run pgbackrest --stanza=%s check", deref(failed), failedAt.UTC().Format(time.RFC3339), w.e.Stanza)
	}
	return m, synced, err
}

func deref(s *string) string {
	if s == nil {
		return "?"
	}
	return *s
}

func (w *archiveWatch) Status() ReplicationStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	return ReplicationStatus{SyncedAt: w.synced, Err: w.err}
}

// Sync closes the current WAL segment and waits until it is archived.
func (w *archiveWatch) Sync(ctx context.Context) error {
	m, err := w.mark(ctx, true)
	if err != nil {
		return err
	}
	for {
		w.mu.Lock()
		done := !w.synced.Before(m.at)
		w.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("WAL segment %s not archived yet: %w", m.segment, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
		if _, err := w.mark(ctx, false); err != nil {
			return err
		}
	}
}

func (w *archiveWatch) Close(ctx context.Context) error {
	w.closeOnce.Do(func() {
		close(w.stop)
		<-w.done
		w.connMu.Lock()
		defer w.connMu.Unlock()
		if w.conn != nil {
			w.conn.Close(ctx)
		}
	})
	return nil
}
