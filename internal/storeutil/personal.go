package storeutil

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tenon-dev/tenon"
)

// MaxAccountIDLength bounds an accountId in the inventory. Atlassian's are
// at most 128 characters.
const MaxAccountIDLength = 256

// ValidateAccount checks a (tenant, account) pair the inventory records.
func ValidateAccount(clientKey, accountID string) error {
	if !ValidClientKey(clientKey) {
		return tenon.Errorf(tenon.EINVALID, "The clientKey is not valid.")
	}
	if accountID == "" || len(accountID) > MaxAccountIDLength || !ValidText(accountID) {
		return tenon.Errorf(tenon.EINVALID, "An accountId must be 1 to %d bytes of UTF-8 without NUL.", MaxAccountIDLength)
	}
	return nil
}

// TokenAccount is what the token cache stores as a token's account: a
// hash of the tenant and the accountId, so the table holds no account
// ids and yet erasing one account finds its tokens. "" for app tokens.
func TokenAccount(clientKey, accountID string) string {
	if accountID == "" {
		return ""
	}
	h := sha256.Sum256([]byte(clientKey + "\x00" + accountID))
	return hex.EncodeToString(h[:])
}

// ForgeUserTokenPrefix is the start of every Forge user-token key of an
// installation (see tenon.ForgeUserTokenKey).
func ForgeUserTokenPrefix(installationID string) string {
	return tenon.ForgeUserTokenKey(installationID, "")
}

// EncodePending and DecodePending keep a cycle's pending answers as JSON.
func EncodePending(p []tenon.ReportedAccount) []byte {
	if len(p) == 0 {
		return []byte("[]")
	}
	b, err := json.Marshal(p)
	if err != nil {
		panic(err) // strings always marshal
	}
	return b
}

// DecodePending is the inverse of EncodePending.
func DecodePending(b []byte) ([]tenon.ReportedAccount, error) {
	var p []tenon.ReportedAccount
	if len(b) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("report cycle pending: %w", err)
	}
	if len(p) == 0 {
		return nil, nil
	}
	return p, nil
}

// ValidateCycle checks a ReportCycle before it is saved.
func ValidateCycle(c tenon.ReportCycle) error {
	if !ValidClientKey(c.ClientKey) {
		return tenon.Errorf(tenon.EINVALID, "The clientKey is not valid.")
	}
	if !ValidText(c.Cursor) || len(c.Cursor) > MaxAccountIDLength || c.Period < 0 || c.Reported < 0 {
		return tenon.Errorf(tenon.EINVALID, "The report cycle is not valid.")
	}
	return nil
}

// ValidateAudit checks an audit entry and fills in its time.
func ValidateAudit(e *tenon.AuditEntry, now time.Time) error {
	if e.Action == "" {
		return tenon.Errorf(tenon.EINVALID, "An audit entry needs an action.")
	}
	for _, s := range []string{e.Action, e.ClientKey, e.AccountID, e.Actor, e.Detail} {
		if !ValidText(s) || len(s) > 4096 {
			return tenon.Errorf(tenon.EINVALID, "An audit field is not valid UTF-8, contains NUL or is too long.")
		}
	}
	if e.At.IsZero() {
		e.At = now
	}
	e.At = e.At.UTC().Truncate(time.Microsecond)
	return nil
}

// PurgeTables are the tables PurgeTenant deletes from, in order (tokens
// before the Forge installations that name them). storetest checks that
// after a purge no table of the schema but the audit keeps a row naming
// the tenant, so a table missing here fails the suite.
var PurgeTables = []string{"token_cache", "personal_values", "personal_accounts", "report_cycles",
	"app_data", "jobs", "forge_installations", "installations"}

// AuditTable is the one table a purge keeps the tenant's clientKey in.
const AuditTable = "audit"
