package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/connectjwt"
	"github.com/tenon-dev/tenon/qsh"
)

// DrillOptions says what a drill compares the restored copy with.
type DrillOptions struct {
	// Source is the live store and SourcePath its engine location: the
	// tenants, secrets and row counts the restored copy must match.
	Source     tenon.Store
	SourcePath string
	// Open opens a restored copy as a store, with the current key file.
	Open func(ctx context.Context, path string) (tenon.Store, error)
	// Sync, when set, ships everything committed before the drill starts
	// (serve passes its replication's Sync).
	Sync func(ctx context.Context) error
	// Sample is how many tenants get a signed request verified against
	// the restored copy, spread evenly over the tenants; default 20.
	Sample int
	// Snapshot restores this snapshot instead of the replica; "latest"
	// picks the newest snapshot.
	Snapshot string
}

// DrillReport is what a drill found. OK is false when any check failed;
// Problems then says which and what to do.
type DrillReport struct {
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`

	StartedAt time.Time `json:"started_at"`
	// From is "replica" or "snapshot NAME".
	From string `json:"from"`
	// RestoredTo is the time of the restored state as the backup says.
	RestoredTo time.Time `json:"restored_to"`
	// Tables maps each table to its row counts: [source, restored].
	Tables    map[string][2]int64 `json:"tables"`
	Tenants   int                 `json:"tenants"`
	Secrets   int                 `json:"secrets_decrypted"`
	Requests  int                 `json:"signed_requests_verified"`
	Integrity string              `json:"integrity"`
	// NewestSourceWrite and NewestRestoredWrite are the newest updated_at
	// in the source (when the drill started) and in the restored copy.
	NewestSourceWrite   time.Time `json:"newest_source_write"`
	NewestRestoredWrite time.Time `json:"newest_restored_write"`
	// RPO is how much newer the source's newest write was than the
	// restored copy's: the writes a restore at that moment loses.
	RPO time.Duration `json:"rpo_ns"`
	// RTO is the time from the start until the restored copy was open
	// and had verified its first signed request.
	RTO time.Duration `json:"rto_ns"`
}

func (r *DrillReport) fail(format string, args ...any) {
	r.OK = false
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// Drill restores the latest backup into scratch (a directory it may fill
// and empties afterwards) and proves it: the engine's integrity check, row
// counts against the source, every shared secret decrypting with the
// current key file, and one signed request per sampled tenant verified
// against the restored store. The report is returned even when checks
// fail; the error is non-nil only when the drill could not run at all,
// in which case the report says how far it got.
func (m *Manager) Drill(ctx context.Context, scratch string, opt DrillOptions) (*DrillReport, error) {
	rep := &DrillReport{OK: true, StartedAt: m.now(), Tables: map[string][2]int64{}}
	if opt.Sync != nil {
		if err := opt.Sync(ctx); err != nil {
			rep.fail("replication did not catch up before the drill: %v; check the target is reachable (see the replication lag metric)", err)
		}
	}
	src, err := m.Engine.Inspect(ctx, opt.SourcePath, true)
	if err != nil {
		rep.fail("read the source: %v", err)
		return rep, err
	}
	rep.NewestSourceWrite = src.NewestWrite
	if err := os.MkdirAll(scratch, 0o700); err != nil {
		rep.fail("scratch directory: %v", err)
		return rep, err
	}
	work, err := os.MkdirTemp(scratch, "drill-")
	if err != nil {
		rep.fail("scratch directory: %v", err)
		return rep, err
	}
	defer os.RemoveAll(work)
	restored := filepath.Join(work, "restored.db")

	if opt.Snapshot == "" {
		rep.From = "replica"
		rep.RestoredTo, err = m.Engine.RestoreReplica(ctx, time.Time{}, restored)
	} else {
		name := opt.Snapshot
		if name == "latest" {
			name = ""
		}
		var man *Manifest
		if man, err = m.RestoreSnapshot(ctx, name, restored); err == nil {
			rep.From, rep.RestoredTo = "snapshot "+man.Name, man.CreatedAt
		}
	}
	if err != nil {
		rep.fail("restore: %v", err)
		return rep, err
	}
	got, err := m.Engine.Inspect(ctx, restored, false)
	if err != nil {
		rep.Integrity = err.Error()
		rep.fail("the restored copy fails its integrity check: %v; restore from an older snapshot and investigate the target", err)
		return rep, nil
	}
	rep.Integrity = "ok"
	rep.NewestRestoredWrite = got.NewestWrite
	// A copy without a single dated row holds everything written before
	// the state it restored, and nothing after.
	base := got.NewestWrite
	if base.IsZero() {
		base = rep.RestoredTo
	}
	if !base.IsZero() && src.NewestWrite.After(base) {
		rep.RPO = src.NewestWrite.Sub(base)
	}
	m.compareCounts(rep, src, got)

	store, err := opt.Open(ctx, restored)
	if err != nil {
		rep.fail("open the restored copy: %v", err)
		return rep, nil
	}
	defer store.Close()
	m.checkTenants(ctx, rep, opt, store)
	return rep, nil
}

// compareCounts holds the restored copy to the source's counts when it is
// as new as the source was when counted. When the source was written in
// between (or the copy lags behind it) the counts are reported, and the
// tenant checks below still hold every restored tenant to the source.
func (m *Manager) compareCounts(rep *DrillReport, src, got *Inspection) {
	names := map[string]bool{}
	for n := range src.Tables {
		names[n] = true
	}
	for n := range got.Tables {
		names[n] = true
	}
	exact := got.NewestWrite.Equal(src.NewestWrite)
	for n := range names {
		rep.Tables[n] = [2]int64{src.Tables[n], got.Tables[n]}
		if exact && src.Tables[n] != got.Tables[n] {
			rep.fail("table %s has %d rows in the source and %d in the restored copy, which is as new as the source; the backup is incomplete: take a snapshot now and check replication errors in the log", n, src.Tables[n], got.Tables[n])
		}
	}
}

func (m *Manager) checkTenants(ctx context.Context, rep *DrillReport, opt DrillOptions, restored tenon.Store) {
	first := true
	ins, err := restored.Installations(ctx, "")
	if err != nil {
		rep.fail("shared secrets of the restored copy do not decrypt with the current key file: %v; the key file must be the one in use when the backup was taken (restore it from escrow)", err)
		return
	}
	rep.Tenants, rep.Secrets = len(ins), len(ins)
	sample := opt.Sample
	if sample <= 0 {
		sample = 20
	}
	sort.Slice(ins, func(i, j int) bool { return ins[i].ClientKey < ins[j].ClientKey })
	step := 1
	if len(ins) > sample {
		step = len(ins) / sample
	}
	for i := 0; i < len(ins) && rep.Requests < sample; i += step {
		clientKey := ins[i].ClientKey
		live, err := opt.Source.Installation(ctx, clientKey)
		if err != nil && tenon.ErrorCode(err) == tenon.ENOTFOUND {
			continue // removed since; nothing to compare
		}
		if err != nil {
			rep.fail("read tenant %s from the source: %v", clientKey, err)
			continue
		}
		if live.UpdatedAt.After(rep.NewestRestoredWrite) {
			continue // changed after the restored state; a newer secret is expected
		}
		if err := verifySigned(ctx, m.now(), live, restored); err != nil {
			rep.fail("tenant %s: a request signed with its current secret does not verify against the restored copy: %v", clientKey, err)
			continue
		}
		rep.Requests++
		if first {
			rep.RTO, first = m.now().Sub(rep.StartedAt), false
		}
	}
	if first {
		rep.RTO = m.now().Sub(rep.StartedAt)
	}
}

// verifySigned signs a request as the tenant does, with the secret the
// live store holds, and verifies it the way the server does, looking the
// issuer up in the restored store.
func verifySigned(ctx context.Context, now time.Time, live *tenon.Installation, restored tenon.Store) error {
	tok, err := connectjwt.SignHS256(connectjwt.Claims{
		Issuer: live.ClientKey, IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Minute).Unix(),
		QSH: qsh.Hash("GET", "/drill", "", ""),
	}, []byte(live.SharedSecret))
	if err != nil {
		return err
	}
	parsed, err := connectjwt.Parse(tok)
	if err != nil {
		return err
	}
	in, err := restored.Installation(ctx, parsed.Claims.Issuer)
	if err != nil {
		return fmt.Errorf("tenant missing from the restored copy: %w", err)
	}
	v := &connectjwt.Verifier{Now: func() time.Time { return now }}
	if err := v.VerifyHS256(parsed, []byte(in.SharedSecret)); err != nil {
		return fmt.Errorf("restored secret differs: %w", err)
	}
	if in.Active() != live.Active() {
		return fmt.Errorf("restored state %s, live state %s", in.State, live.State)
	}
	return nil
}

const lastDrillName = "latest.json"

// SaveDrill stores a drill report at the target (drills/latest.json), so
// that `tenon backup list`, the next start and other operators see it.
func (m *Manager) SaveDrill(ctx context.Context, rep *DrillReport) error {
	bucket, err := m.Target.objects(ctx, "drills")
	if err != nil {
		return err
	}
	raw, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return bucket.Put(ctx, lastDrillName, bytes.NewReader(raw))
}

// LastDrill returns the last stored drill report, or nil when there is
// none.
func (m *Manager) LastDrill(ctx context.Context) (*DrillReport, error) {
	bucket, err := m.Target.objects(ctx, "drills")
	if err != nil {
		return nil, err
	}
	rc, err := bucket.Get(ctx, lastDrillName)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var rep DrillReport
	if err := json.NewDecoder(io.LimitReader(rc, 1<<20)).Decode(&rep); err != nil {
		return nil, fmt.Errorf("last drill report: %w", err)
	}
	return &rep, nil
}
