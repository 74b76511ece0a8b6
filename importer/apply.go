package importer

import (
	"context"
	"fmt"
)

// Result counts what Apply wrote.
type Result struct {
	Tenants int // created or updated
	Values  int // data values written
}

// Apply carries out the create and update steps of a plan, in clientKey
// order, with their data. Conflicts and problems are left alone. A tenant
// that changed in tenon's store since Plan read it stops the import with
// an ECONFLICT error, its record untouched; what was written before stays,
// and a new run (plan again) goes on from there. progress, when set, is
// called after each tenant with the number done and the total.
func Apply(ctx context.Context, st Store, r *Report, progress func(done, total int)) (Result, error) {
	var res Result
	total := len(r.Steps)
	for i, s := range r.Steps {
		if s.Action == Create || s.Action == Update {
			in := s.Record.Installation
			if err := st.ImportInstallation(ctx, &in, s.expect); err != nil {
				return res, fmt.Errorf("import tenant %s: %w", in.ClientKey, err)
			}
			res.Tenants++
		}
		if s.Action != Conflict {
			for _, kv := range s.Data {
				if err := st.PutValue(ctx, s.Record.Installation.ClientKey, kv.Key, kv.Value); err != nil {
					return res, fmt.Errorf("import data %s of tenant %s: %w", kv.Key, s.Record.Installation.ClientKey, err)
				}
				res.Values++
			}
		}
		if progress != nil {
			progress(i+1, total)
		}
	}
	return res, nil
}
