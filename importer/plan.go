package importer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/tenon-dev/tenon"
)

// Action is what an import does with one tenant.
type Action string

// Actions, as the report names them.
const (
	Create    Action = "create"    // tenon has no such tenant
	Update    Action = "update"    // tenon's record is older than the source's
	Unchanged Action = "unchanged" // tenon holds the same record already
	Conflict  Action = "conflict"  // tenon's record is newer, or cannot be told older: left alone
)

// Step is the plan for one tenant.
type Step struct {
	Record Record
	Action Action
	Reason string // why a conflict is one
	// expect is the UpdatedAt of tenon's record as read (zero: none).
	expect time.Time
	// Data are the values to write; values tenon already holds the same
	// are left out.
	Data []tenon.KeyValue
}

// Report is a plan: what an import would do, and what it cannot.
type Report struct {
	Source   string
	Steps    []Step
	Problems []Problem
}

// Count returns how many steps have action a.
func (r *Report) Count(a Action) int {
	n := 0
	for _, s := range r.Steps {
		if s.Action == a {
			n++
		}
	}
	return n
}

// Values returns how many data values the plan writes.
func (r *Report) Values() int {
	n := 0
	for _, s := range r.Steps {
		n += len(s.Data)
	}
	return n
}

// Clean reports whether the plan has neither conflicts nor problems: only
// a clean plan is applied unless the operator accepts skipping the rest.
func (r *Report) Clean() bool { return len(r.Problems) == 0 && r.Count(Conflict) == 0 }

// Writes reports whether applying the plan would change tenon's store.
func (r *Report) Writes() bool { return r.Count(Create)+r.Count(Update) > 0 || r.Values() > 0 }

// Plan compares the records of a source with tenon's store. It reads
// only. A tenant tenon holds with other values is a conflict unless the
// source's record is dated and tenon's is not newer: after the switch,
// tenon's record (a reinstall's new secret) is the truth. App data never
// replaces a different value tenon holds under the same key.
func Plan(ctx context.Context, st Store, source string, recs []Record, probs []Problem) (*Report, error) {
	rep := &Report{Source: source, Problems: probs}
	for _, rec := range recs {
		step, err := planOne(ctx, st, rec)
		if err != nil {
			return nil, err
		}
		rep.Steps = append(rep.Steps, step)
	}
	return rep, nil
}

func planOne(ctx context.Context, st Store, rec Record) (Step, error) {
	in := &rec.Installation
	step := Step{Record: rec}
	cur, err := st.Installation(ctx, in.ClientKey)
	switch {
	case tenon.ErrorCode(err) == tenon.ENOTFOUND:
		step.Action = Create
	case err != nil:
		return Step{}, fmt.Errorf("read tenant %s from tenon's store: %w", in.ClientKey, err)
	case sameRecord(cur, in):
		step.Action = Unchanged
	case in.UpdatedAt.IsZero():
		step.Action, step.Reason = Conflict, "tenon holds this tenant with other values, and the source keeps no times to show it is newer"
	case cur.UpdatedAt.After(in.UpdatedAt):
		step.Action, step.Reason = Conflict, fmt.Sprintf("tenon's record (updated %s) is newer than the source's (%s)",
			cur.UpdatedAt.Format(time.RFC3339), in.UpdatedAt.Format(time.RFC3339))
	default:
		step.Action, step.expect = Update, cur.UpdatedAt
	}
	if step.Action == Conflict {
		return step, nil
	}
	for _, kv := range rec.Data {
		have, err := st.GetValue(ctx, in.ClientKey, kv.Key)
		switch {
		case tenon.ErrorCode(err) == tenon.ENOTFOUND:
			step.Data = append(step.Data, kv)
		case err != nil:
			return Step{}, fmt.Errorf("read data of tenant %s from tenon's store: %w", in.ClientKey, err)
		case !sameJSON(have, kv.Value):
			step.Action, step.Reason, step.Data = Conflict, "tenon holds another value under data key "+kv.Key, nil
			return step, nil
		}
	}
	return step, nil
}

// sameRecord compares what an import writes, times aside.
func sameRecord(a, b *tenon.Installation) bool {
	return a.AppKey == b.AppKey && a.SharedSecret == b.SharedSecret && a.BaseURL == b.BaseURL &&
		a.DisplayURL == b.DisplayURL && a.ProductType == b.ProductType && a.OAuthClientID == b.OAuthClientID &&
		a.InstallationID == b.InstallationID && a.CloudID == b.CloudID && a.State == b.State &&
		sameJSON(a.Payload, b.Payload)
}

func sameJSON(a, b []byte) bool {
	ca, errA := compactJSON(a)
	cb, errB := compactJSON(b)
	if errA != nil || errB != nil {
		return bytes.Equal(a, b)
	}
	return bytes.Equal(ca, cb)
}

// WriteReport prints the plan for a person: counts, then every conflict
// and problem. It never prints a secret.
func WriteReport(w io.Writer, r *Report) {
	states := map[tenon.State]int{}
	for _, s := range r.Steps {
		states[s.Record.Installation.State]++
	}
	fmt.Fprintf(w, "source: %s\n", r.Source)
	fmt.Fprintf(w, "tenants found: %d (%d enabled, %d disabled, %d uninstalled)\n", len(r.Steps),
		states[tenon.StateEnabled], states[tenon.StateDisabled], states[tenon.StateUninstalled])
	fmt.Fprintf(w, "to create: %d, to update: %d, unchanged: %d, conflicts: %d, data values to write: %d\n",
		r.Count(Create), r.Count(Update), r.Count(Unchanged), r.Count(Conflict), r.Values())
	fmt.Fprintf(w, "unsupported rows: %d\n", len(r.Problems))
	for _, s := range r.Steps {
		if s.Action == Conflict {
			fmt.Fprintf(w, "  conflict: %s: %s; tenon's record is kept\n", s.Record.Installation.ClientKey, s.Reason)
		}
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "  unsupported: %s: %s\n", p.Where, p.Reason)
	}
}
