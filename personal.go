package tenon

import (
	"context"
	"encoding/json"
	"time"
)

// Personal data reporting. Atlassian asks every app that stores personal
// data to report, once per cycle, the accounts it stores data about; the
// answer says which accounts were closed (erase what the app holds about
// them) and which were updated (refresh the copy). tenon keeps the
// inventory — which accounts each tenant holds data about, and since when
// — so the reporting cycle (package personal) can run without asking the
// app, and can erase what tenon itself holds for a closed account.

// MaxReportBatch is the number of accounts one report request may carry.
const MaxReportBatch = 90

// DefaultCyclePeriod is the reporting cycle when Atlassian's answer names
// none (no Cycle-Period header).
const DefaultCyclePeriod = 7 * 24 * time.Hour

// AccountStatus is what Atlassian said about a reported account.
type AccountStatus string

// The statuses a report answer carries.
const (
	AccountClosed  AccountStatus = "closed"  // erase the account's personal data
	AccountUpdated AccountStatus = "updated" // refresh the stored copy
)

// PersonalAccount is one account of the inventory: a tenant stores
// personal data about AccountID, last changed at UpdatedAt.
type PersonalAccount struct {
	ClientKey string
	AccountID string
	UpdatedAt time.Time
}

// ReportedAccount is one account of a report answer.
type ReportedAccount struct {
	AccountID string        `json:"accountId"`
	Status    AccountStatus `json:"status"`
}

// ReportCycle is the progress of one tenant's reporting cycle, saved after
// every step so that a node that takes over after a crash resumes where
// the last one stopped, without reporting an account twice in a cycle.
type ReportCycle struct {
	ClientKey string
	// StartedAt is when the running cycle began; zero between cycles.
	StartedAt time.Time
	// Cursor is the greatest accountId handed to Atlassian in this cycle:
	// the next batch starts after it. It is saved before the batch is
	// sent, so a crash while a batch is on its way leaves those accounts
	// for the next cycle instead of sending them twice.
	Cursor string
	// NotBefore is when the cycle may take its next step: the next cycle's
	// start, or the end of a Retry-After.
	NotBefore time.Time
	// Period is the cycle period Atlassian asked for last; 0 means
	// DefaultCyclePeriod.
	Period time.Duration
	// Pending are answers received but not yet acted on (erase or refresh
	// hooks that have not yet succeeded).
	Pending []ReportedAccount
	// Reported counts the accounts reported in the running cycle.
	Reported int
}

// PersonalDataStore is an optional Store capability: the inventory of
// personal data per tenant, and the reporting cycle's progress. Both
// stores implement it. Methods are safe for concurrent use and durable
// once they return nil.
type PersonalDataStore interface {
	// PutPersonal stores value under key like PutValue and, in the same
	// transaction, records that key holds personal data of accountID
	// (inventory updated now). Erasing the account removes the value.
	PutPersonal(ctx context.Context, clientKey, accountID, key string, value json.RawMessage) error
	// TouchAccount records that the tenant holds personal data of
	// accountID in a form of the app's own (an account index), updated
	// now. The app's erase hook removes that data.
	TouchAccount(ctx context.Context, clientKey, accountID string) error
	// PersonalAccounts lists up to limit accounts of the tenant with an
	// accountId greater than after, in accountId order (byte-wise).
	PersonalAccounts(ctx context.Context, clientKey, after string, limit int) ([]PersonalAccount, error)
	// ErasePersonal removes everything tenon holds for the account on the
	// tenant: the values PutPersonal stored, its inventory row, and its
	// cached user tokens (Connect and Forge). It returns how many values
	// it removed. Erasing an unknown account removes nothing.
	ErasePersonal(ctx context.Context, clientKey, accountID string) (int, error)
	// ReportCycle returns the tenant's cycle; a tenant that never
	// reported gets a zero ReportCycle with its ClientKey.
	ReportCycle(ctx context.Context, clientKey string) (ReportCycle, error)
	// SaveReportCycle stores c, replacing the tenant's previous state.
	SaveReportCycle(ctx context.Context, c ReportCycle) error
	// PersonalTenants lists the tenant keys that hold inventory, in order.
	PersonalTenants(ctx context.Context) ([]string, error)
}

// TokenOwner names whose token a cached token is, so that erasing an
// account or purging a tenant can find tokens whose cache key is a hash.
type TokenOwner struct {
	ClientKey string
	AccountID string // "" for an app token
}

// OwnedTokenCache is an optional TokenCache capability: PutOwnedToken is
// PutToken that also records the token's owner. hostclient uses it for
// Connect user tokens, whose keys are hashes.
type OwnedTokenCache interface {
	PutOwnedToken(ctx context.Context, key string, owner TokenOwner, token string, expiresAt time.Time) error
}
