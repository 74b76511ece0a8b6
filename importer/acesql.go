package importer

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strconv"

	"github.com/tenon-dev/tenon"
)

// aceSQL reads ACE's sequelize store: AddonSettings rows (clientKey, key,
// val) where key 'clientInfo' holds the install payload, plus the
// InstallationClientKeys links of Forge installations and ForgeSettings.
type aceSQL struct {
	db      *sql.DB
	dialect dialect
	opts    Options
}

// aceRow is one AddonSettings row.
type aceRow struct {
	id             string
	clientKey, key sql.NullString
	val            string
	valNull        bool
}

func (s *aceSQL) Close() error { return s.db.Close() }

func (s *aceSQL) Read(ctx context.Context) ([]Record, []Problem, error) {
	table := s.opts.Table
	if ok, err := tableExists(ctx, s.db, s.dialect, table); err != nil {
		return nil, nil, err
	} else if !ok {
		return nil, nil, fmt.Errorf("the database has no table %s: this is not an atlassian-connect-express store (set --table if the app renamed it)", table)
	}
	valExpr := "val"
	if s.dialect == dialectPostgres {
		valExpr = "CAST(val AS text)"
	}
	q := `SELECT CAST(id AS text), "clientKey", "key", ` + valExpr + ` FROM ` + quote(table) + ` ORDER BY "clientKey", "key", id`
	rows, err := s.db.QueryContext(ctx, q)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", table, err)
	}
	defer rows.Close()
	var list []aceRow
	for rows.Next() {
		var r aceRow
		var val any
		if err := rows.Scan(&r.id, &r.clientKey, &r.key, &val); err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", table, err)
		}
		r.val, r.valNull = valueText(val)
		list = append(list, r)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", table, err)
	}
	links, err := s.links(ctx)
	if err != nil {
		return nil, nil, err
	}
	recs, probs := aceRecords(list, links, table, s.opts)
	forge, err := s.forgeProblems(ctx)
	if err != nil {
		return nil, nil, err
	}
	return recs, append(probs, forge...), nil
}

// valueText is a scanned val as the JSON text ACE wrote: SQLite hands
// numbers back as numbers.
func valueText(v any) (string, bool) {
	switch v := v.(type) {
	case nil:
		return "", true
	case string:
		return v, false
	case []byte:
		return string(v), false
	case int64:
		return strconv.FormatInt(v, 10), false
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), false
	case bool:
		return strconv.FormatBool(v), false
	}
	return fmt.Sprint(v), false
}

// links reads InstallationClientKeys: clientKey → Forge installationId.
func (s *aceSQL) links(ctx context.Context) (map[string]string, error) {
	const table = "InstallationClientKeys"
	ok, err := tableExists(ctx, s.db, s.dialect, table)
	if err != nil || !ok {
		return nil, err // older ACE versions have no such table
	}
	rows, err := s.db.QueryContext(ctx, `SELECT "installationId", "clientKey" FROM `+quote(table)+` ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", table, err)
	}
	defer rows.Close()
	links := map[string]string{}
	for rows.Next() {
		var id, ck string
		if err := rows.Scan(&id, &ck); err != nil {
			return nil, fmt.Errorf("read %s: %w", table, err)
		}
		links[ck] = id
	}
	return links, rows.Err()
}

// forgeProblems reports ForgeSettings rows: Forge storage keyed by
// installation is not tenant data, and is not imported.
func (s *aceSQL) forgeProblems(ctx context.Context) ([]Problem, error) {
	const table = "ForgeSettings"
	ok, err := tableExists(ctx, s.db, s.dialect, table)
	if err != nil || !ok {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT CAST(id AS text), "installationId", "key" FROM `+quote(table)+` ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", table, err)
	}
	defer rows.Close()
	var probs []Problem
	for rows.Next() {
		var id, inst, key string
		if err := rows.Scan(&id, &inst, &key); err != nil {
			return nil, fmt.Errorf("read %s: %w", table, err)
		}
		probs = append(probs, Problem{Where: table + " id " + id, Reason: "Forge settings (key " + key + ") are kept per Forge installation, not per tenant; not imported"})
	}
	return probs, rows.Err()
}

// aceRecords groups ACE's settings rows, ordered by clientKey, into
// tenants. where names the rows in problems ("AddonSettings id 5", or a
// Redis key).
func aceRecords(rows []aceRow, links map[string]string, where string, opts Options) ([]Record, []Problem) {
	var probs []Problem
	byKey := map[string][]aceRow{}
	var order []string
	for _, r := range rows {
		at := where + " id " + r.id
		if where == "" {
			at = r.id
		}
		switch {
		case !r.clientKey.Valid || r.clientKey.String == "":
			probs = append(probs, Problem{Where: at, Reason: "the row has no clientKey"})
			continue
		case !r.key.Valid || r.key.String == "":
			probs = append(probs, Problem{Where: at, ClientKey: r.clientKey.String, Reason: "the row has no key"})
			continue
		case r.valNull:
			probs = append(probs, Problem{Where: at, ClientKey: r.clientKey.String, Reason: "the row's val is NULL"})
			continue
		}
		if _, seen := byKey[r.clientKey.String]; !seen {
			order = append(order, r.clientKey.String)
		}
		byKey[r.clientKey.String] = append(byKey[r.clientKey.String], r)
	}
	sort.Strings(order)
	var recs []Record
	for _, ck := range order {
		var info []aceRow
		var data []aceRow
		for _, r := range byKey[ck] {
			if r.key.String == "clientInfo" {
				info = append(info, r)
			} else {
				data = append(data, r)
			}
		}
		at := func(r aceRow) string {
			if where == "" {
				return r.id
			}
			return where + " id " + r.id
		}
		switch len(info) {
		case 0:
			for _, r := range data {
				probs = append(probs, Problem{Where: at(r), ClientKey: ck, Reason: "app data of a clientKey that has no clientInfo (uninstalled and deleted?)"})
			}
			continue
		case 1:
		default:
			probs = append(probs, Problem{Where: at(info[1]), ClientKey: ck, Reason: "the clientKey has more than one clientInfo row"})
			continue
		}
		in, why := fromPayload([]byte(info[0].val), ck, opts.AppKey)
		if in == nil {
			probs = append(probs, Problem{Where: at(info[0]), ClientKey: ck, Reason: why})
			continue
		}
		if in.InstallationID == "" {
			in.InstallationID = links[ck]
		}
		rec := Record{Installation: *in}
		if opts.WithSettings {
			for _, r := range data {
				v := aceValue(r.val)
				if why := dataProblem(r.key.String, v); why != "" {
					probs = append(probs, Problem{Where: at(r), ClientKey: ck, Reason: why})
					continue
				}
				rec.Data = append(rec.Data, tenon.KeyValue{Key: r.key.String, Value: v})
			}
		}
		recs = append(recs, rec)
	}
	return recs, probs
}
