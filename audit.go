package tenon

import (
	"context"
	"time"
)

// Audit actions tenon records. Each destructive operation, automatic or
// by an operator, leaves one row; the audit table is the only place that
// keeps a purged tenant's clientKey.
const (
	AuditPersonalClosed  = "personal.closed"  // a closed account's data was erased
	AuditPersonalUpdated = "personal.updated" // an updated account's data was refreshed
	AuditCycleDone       = "personal.cycle"   // a reporting cycle finished
	AuditTenantPurged    = "tenant.purged"    // every row of a tenant was deleted
	AuditSiteMoved       = "site.moved"       // a clientKey came back with a new baseUrl
	AuditSiteCloned      = "site.cloned"      // a new clientKey for a site another clientKey has
)

// AuditEntry is one audit row.
type AuditEntry struct {
	ID        int64
	At        time.Time // set by the store's clock when zero
	Action    string
	ClientKey string
	AccountID string
	Actor     string // "retention", "personal-data", "operator:<user>", ...
	Detail    string // person-readable, without secrets
}

// AuditFilter selects audit rows. Zero fields select everything.
type AuditFilter struct {
	ClientKey string
	Action    string
	AfterID   int64
	Limit     int // <= 0 or above MaxListLimit means MaxListLimit
}

// AuditStore is an optional Store capability: an append-only audit trail.
type AuditStore interface {
	// Audit appends e.
	Audit(ctx context.Context, e AuditEntry) error
	// AuditEntries lists rows matching f in id order.
	AuditEntries(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
}

// TenantPurger is an optional Store capability for data retention.
type TenantPurger interface {
	// RetentionDue lists the tenant keys whose every installation has
	// been gone since before `before`: Connect tenants uninstalled (or
	// superseded) before it whose tenant key no active Forge
	// installation uses, and Forge-only tenants whose installations were
	// all uninstalled before it.
	RetentionDue(ctx context.Context, before time.Time) ([]string, error)
	// PurgeTenant deletes, in one transaction, every row any table keeps
	// for the tenant key: installation, app data, personal-data
	// inventory and cycle, queued jobs, Forge installations and their
	// tokens, the tenant's cached user tokens. It appends e (Action
	// AuditTenantPurged, ClientKey clientKey) in the same transaction and
	// returns how many rows it deleted per table. Only the audit row
	// remains. An unknown tenant deletes nothing and is not an error.
	PurgeTenant(ctx context.Context, clientKey string, e AuditEntry) (map[string]int, error)
}
