package fakeatlassian

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// The personal data reporting API: an app posts the accounts it stores
// personal data about, at most 90 a request, and hears which were closed
// or updated. Connect apps post to their site (signed as the app), so the
// fake serves it on every site at reportAccountsPath.
const reportAccountsPath = "/app/report-accounts/"

// maxReportAccounts is Atlassian's limit per request.
const maxReportAccounts = 90

// AccountReport is one request to the reporting API as the fake received it.
type AccountReport struct {
	Site     string   `json:"site"`
	App      string   `json:"app"`
	Accounts []string `json:"accounts"`
}

// personalState is the reporting API's state.
type personalState struct {
	status     map[string]string // accountId → "closed" or "updated"
	rateLimit  int               // answer this many next reports with 429
	retryAfter time.Duration
	period     time.Duration // the Cycle-Period header; 0 leaves it out
	reports    []AccountReport
}

// SetAccountStatus makes the reporting API answer accountID with status
// ("closed" or "updated"); "" forgets it.
func (f *Fake) SetAccountStatus(accountID, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.personal.status == nil {
		f.personal.status = make(map[string]string)
	}
	if status == "" {
		delete(f.personal.status, accountID)
		return
	}
	f.personal.status[accountID] = status
}

// SetReportRateLimit answers the next n reports with 429 and a
// Retry-After of retryAfter (rounded up to seconds).
func (f *Fake) SetReportRateLimit(n int, retryAfter time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.personal.rateLimit, f.personal.retryAfter = max(n, 0), retryAfter
}

// SetCyclePeriod makes answers carry the Cycle-Period header (seconds);
// 0 leaves it out, as Atlassian may.
func (f *Fake) SetCyclePeriod(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.personal.period = d
}

// AccountReports returns the reports received so far, oldest first.
// Refused requests (bad body, 429) are not among them.
func (f *Fake) AccountReports() []AccountReport {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]AccountReport(nil), f.personal.reports...)
}

// restReportAccounts is POST /app/report-accounts/.
func (f *Fake) restReportAccounts(w http.ResponseWriter, r *http.Request, rr *restRequest) {
	var body struct {
		Accounts []struct {
			AccountID string `json:"accountId"`
			UpdatedAt string `json:"updatedAt"`
		} `json:"accounts"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": "The body is not a JSON object with accounts."})
		return
	}
	switch {
	case len(body.Accounts) == 0:
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": "accounts is empty."})
		return
	case len(body.Accounts) > maxReportAccounts:
		writeJSON(w, http.StatusBadRequest, map[string]any{"message": fmt.Sprintf("At most %d accounts per request.", maxReportAccounts)})
		return
	}
	ids := make([]string, 0, len(body.Accounts))
	for _, a := range body.Accounts {
		if a.AccountID == "" {
			writeJSON(w, http.StatusBadRequest, map[string]any{"message": "An account has no accountId."})
			return
		}
		if _, err := time.Parse(time.RFC3339, a.UpdatedAt); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"message": "updatedAt of " + a.AccountID + " is not an RFC 3339 time."})
			return
		}
		ids = append(ids, a.AccountID)
	}
	f.mu.Lock()
	if f.personal.rateLimit > 0 {
		f.personal.rateLimit--
		secs := int((f.personal.retryAfter + time.Second - 1) / time.Second)
		f.mu.Unlock()
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 0)))
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"message": "Rate limit exceeded."})
		return
	}
	f.personal.reports = append(f.personal.reports, AccountReport{Site: rr.site.info.Name, App: rr.caller.appKey, Accounts: ids})
	type answer struct {
		AccountID string `json:"accountId"`
		Status    string `json:"status"`
	}
	var out []answer
	for _, id := range ids {
		if st := f.personal.status[id]; st != "" {
			out = append(out, answer{id, st})
		}
	}
	period := f.personal.period
	f.mu.Unlock()
	if period > 0 {
		w.Header().Set("Cycle-Period", strconv.Itoa(int(period/time.Second)))
	}
	if len(out) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"accounts": out})
}
