package importer

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// acsbSQL reads atlassian-connect-spring-boot's atlassian_host table (its
// JPA entity AtlassianHost). ACSB keeps no install payload and no app key;
// it marks an uninstall with addon_installed = false and records no
// enabled/disabled state. Its created_date and last_modified_date are the
// record's times.
type acsbSQL struct {
	db      *sql.DB
	dialect dialect
	opts    Options
}

const acsbTable = "atlassian_host"

// acsbColumns are the atlassian_host columns the import reads, and the
// install payload field each becomes. The first three are required.
var acsbColumns = []struct{ column, field string }{
	{"client_key", "clientKey"},
	{"shared_secret", "sharedSecret"},
	{"base_url", "baseUrl"},
	{"display_url", "displayUrl"},
	{"display_url_servicedesk_help_center", "displayUrlServicedeskHelpCenter"},
	{"product_type", "productType"},
	{"description", "description"},
	{"service_entitlement_number", "serviceEntitlementNumber"},
	{"entitlement_id", "entitlementId"},
	{"entitlement_number", "entitlementNumber"},
	{"oauth_client_id", "oauthClientId"},
	{"installation_id", "installationId"},
	{"cloud_id", "cloudId"},
	{"capability_set", "capabilitySet"},
}

func (s *acsbSQL) Close() error { return s.db.Close() }

func (s *acsbSQL) Read(ctx context.Context) ([]Record, []Problem, error) {
	if s.opts.AppKey == "" {
		return nil, nil, fmt.Errorf("atlassian-connect-spring-boot keeps no app key: give the app's descriptor key (--app-key)")
	}
	if ok, err := tableExists(ctx, s.db, s.dialect, acsbTable); err != nil {
		return nil, nil, err
	} else if !ok {
		return nil, nil, fmt.Errorf("the database has no table %s: this is not an atlassian-connect-spring-boot store", acsbTable)
	}
	have, err := columns(ctx, s.db, s.dialect, acsbTable)
	if err != nil {
		return nil, nil, err
	}
	var sel []string
	var fields []string
	for i, c := range acsbColumns {
		if !have[c.column] {
			if i < 3 {
				return nil, nil, fmt.Errorf("the table %s has no column %s: not a schema this import knows", acsbTable, c.column)
			}
			continue
		}
		sel = append(sel, "CAST("+c.column+" AS text)")
		fields = append(fields, c.field)
	}
	extra := []string{"addon_installed", "created_date", "last_modified_date"}
	for _, c := range extra {
		if have[c] {
			sel = append(sel, c)
		} else {
			sel = append(sel, "NULL")
		}
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+strings.Join(sel, ", ")+` FROM `+acsbTable+` ORDER BY client_key`)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", acsbTable, err)
	}
	defer rows.Close()
	var recs []Record
	var probs []Problem
	for rows.Next() {
		texts := make([]sql.NullString, len(fields))
		var installed, created, modified any
		dst := make([]any, 0, len(fields)+3)
		for i := range texts {
			dst = append(dst, &texts[i])
		}
		dst = append(dst, &installed, &created, &modified)
		if err := rows.Scan(dst...); err != nil {
			return nil, nil, fmt.Errorf("read %s: %w", acsbTable, err)
		}
		rec, p := s.record(fields, texts, installed, created, modified)
		if p != nil {
			probs = append(probs, *p)
			continue
		}
		recs = append(recs, *rec)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", acsbTable, err)
	}
	return recs, probs, nil
}

// record turns one atlassian_host row into a tenant with a payload in
// the shape of an `installed` body, so tenon stores what it would have.
func (s *acsbSQL) record(fields []string, texts []sql.NullString, installed, created, modified any) (*Record, *Problem) {
	body := map[string]string{"key": s.opts.AppKey, "eventType": "installed"}
	for i, f := range fields {
		if texts[i].Valid && texts[i].String != "" {
			body[f] = texts[i].String
		}
	}
	ck := body["clientKey"]
	where := acsbTable + " client_key " + ck
	if ck == "" {
		return nil, &Problem{Where: acsbTable, Reason: "a row has no client_key"}
	}
	up, ok := boolValue(installed)
	if !ok {
		return nil, &Problem{Where: where, ClientKey: ck, Reason: "addon_installed is not a boolean"}
	}
	if !up {
		body["eventType"] = "uninstalled"
	}
	var times [2]time.Time
	for i, v := range []any{created, modified} {
		t, ok := timeValue(v)
		if !ok {
			return nil, &Problem{Where: where, ClientKey: ck, Reason: "created_date or last_modified_date is not a timestamp"}
		}
		times[i] = t
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, &Problem{Where: where, ClientKey: ck, Reason: "the row cannot be a payload"}
	}
	in, why := fromPayload(raw, ck, s.opts.AppKey)
	if in == nil {
		return nil, &Problem{Where: where, ClientKey: ck, Reason: strings.Replace(why, "the install payload", "the row", 1)}
	}
	in.InstalledAt, in.UpdatedAt = times[0], times[1]
	if in.UpdatedAt.IsZero() {
		in.UpdatedAt = in.InstalledAt
	}
	if in.InstalledAt.IsZero() || in.InstalledAt.After(in.UpdatedAt) {
		in.InstalledAt = in.UpdatedAt
	}
	return &Record{Installation: *in}, nil
}

// boolValue reads addon_installed; a missing column means installed.
func boolValue(v any) (bool, bool) {
	switch v := v.(type) {
	case nil:
		return true, true
	case bool:
		return v, true
	case int64:
		return v != 0, v == 0 || v == 1
	case string:
		switch strings.ToLower(v) {
		case "true", "t", "1":
			return true, true
		case "false", "f", "0":
			return false, true
		}
	case []byte:
		return boolValue(string(v))
	}
	return false, false
}

// timeLayouts are the text forms JDBC and SQLite give timestamps.
var timeLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999"}

func timeValue(v any) (time.Time, bool) {
	switch v := v.(type) {
	case nil:
		return time.Time{}, true
	case time.Time:
		return timeOrZero(v), true
	case []byte:
		return timeValue(string(v))
	case string:
		for _, l := range timeLayouts {
			if t, err := time.Parse(l, v); err == nil {
				return timeOrZero(t), true
			}
		}
	case int64:
		return timeOrZero(time.UnixMilli(v)), true // SQLite JDBC stores epoch milliseconds
	}
	return time.Time{}, false
}
