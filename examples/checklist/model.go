package checklist

import (
	"context"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tenon-dev/tenon"
)

// Limits of one checklist. They keep a stored checklist far below the
// store's 256 KiB value limit: 100 items of 500 characters of up to 4
// bytes, JSON-escaped, still fit.
const (
	MaxItems      = 100
	MaxTextLength = 500 // characters (Unicode code points), after trimming
)

// Checklist is what the API returns for one issue.
type Checklist struct {
	IssueKey  string    `json:"issueKey"`
	Items     []Item    `json:"items"`
	UpdatedAt time.Time `json:"updatedAt,omitzero"`
}

// Item is one checklist entry.
type Item struct {
	ID        string    `json:"id"`
	Text      string    `json:"text"`
	Done      bool      `json:"done"`
	CreatedBy string    `json:"createdBy,omitempty"` // accountId of the user who added it
	CreatedAt time.Time `json:"createdAt"`
}

// stored is the document kept under checklist/<issueKey>, the Checklist
// fields and nextId side by side. NextID only
// grows, so a deleted item's id is never given to a new item, and a
// browser holding an old list cannot tick or delete the wrong entry.
type stored struct {
	Checklist
	NextID int `json:"nextId"`
}

// Done counts the finished items.
func (c *Checklist) Done() int {
	n := 0
	for _, it := range c.Items {
		if it.Done {
			n++
		}
	}
	return n
}

var issueKeyPattern = regexp.MustCompile(`^[A-Z][A-Z0-9_]+-[0-9]+$`)

// ValidIssueKey reports whether key looks like a Jira issue key
// ("PROJ-123"). Keys are checked before they become part of a storage key
// or a REST path.
func ValidIssueKey(key string) bool {
	return len(key) <= 255 && issueKeyPattern.MatchString(key)
}

func checkIssueKey(key string) error {
	if !ValidIssueKey(key) {
		return tenon.Errorf(tenon.EINVALID, "The issue key is not valid: expected something like PROJ-123.")
	}
	return nil
}

// NormalizeItemText trims the text of an item and checks it: valid UTF-8,
// 1 to MaxTextLength characters, one line without control characters (an
// item is a short line in a list; line breaks would only be lost).
func NormalizeItemText(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", tenon.Errorf(tenon.EINVALID, "The text is not valid UTF-8.")
	}
	s = strings.TrimSpace(s)
	switch n := utf8.RuneCountInString(s); {
	case n == 0:
		return "", tenon.Errorf(tenon.EINVALID, "The text is empty.")
	case n > MaxTextLength:
		return "", tenon.Errorf(tenon.EINVALID, "The text is longer than %d characters.", MaxTextLength)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return "", tenon.Errorf(tenon.EINVALID, "The text must be a single line without control characters.")
	}
	return s, nil
}

// validItemID bounds what a path may name before it is compared to the
// stored ids.
func validItemID(id string) bool {
	if id == "" || len(id) > 20 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '0' || id[i] > '9' {
			return false
		}
	}
	return true
}

func dataKey(issueKey string) string { return "checklist/" + issueKey }

// load reads the checklist of issueKey; a missing one is empty.
func load(ctx context.Context, data *tenon.TenantData, issueKey string) (*stored, error) {
	doc := &stored{Checklist: Checklist{IssueKey: issueKey}}
	err := data.Get(ctx, dataKey(issueKey), doc)
	switch tenon.ErrorCode(err) {
	case "":
	case tenon.ENOTFOUND:
		return doc, nil
	default:
		return nil, err
	}
	doc.IssueKey = issueKey
	if doc.Items == nil {
		doc.Items = []Item{}
	}
	return doc, nil
}

// update runs fn on the checklist of issueKey and stores the result in one
// atomic read-modify-write of the store (TenantData.Update), so concurrent
// edits of one checklist lose nothing, from this process or from another
// node sharing the store. fn returns false to store nothing; it may run
// more than once when the store retries.
func (a *App) update(ctx context.Context, p *tenon.Principal, issueKey string, fn func(doc *stored) (bool, error)) (*stored, error) {
	var doc *stored
	err := p.Data().Update(ctx, dataKey(issueKey), func(old json.RawMessage) (json.RawMessage, error) {
		doc = &stored{Checklist: Checklist{IssueKey: issueKey}}
		if old != nil {
			if err := json.Unmarshal(old, doc); err != nil {
				return nil, tenon.WrapError(tenon.EINTERNAL, "The stored checklist cannot be read.", err)
			}
			doc.IssueKey = issueKey
		}
		if doc.Items == nil {
			doc.Items = []Item{}
		}
		changed, err := fn(doc)
		if err != nil {
			return nil, err
		}
		if !changed {
			return nil, tenon.ErrUnchanged
		}
		doc.UpdatedAt = a.now().UTC()
		if len(doc.Items) == 0 {
			// An empty checklist is no checklist: keep the store free of
			// documents that only say so.
			return nil, nil
		}
		return json.Marshal(doc)
	})
	if err != nil {
		return nil, err
	}
	// Items name their author: the account goes into the personal data
	// inventory tenon reports to Atlassian.
	for _, it := range doc.Items {
		if it.CreatedBy != "" && it.CreatedBy == p.AccountID {
			if err := p.Data().TouchAccount(ctx, p.AccountID); err != nil {
				return nil, err
			}
			break
		}
	}
	return doc, nil
}

func (doc *stored) add(text, accountID string, now time.Time) (Item, error) {
	if len(doc.Items) >= MaxItems {
		return Item{}, tenon.Errorf(tenon.ECONFLICT, "The checklist already has %d items, the most it can hold.", MaxItems)
	}
	doc.NextID++
	it := Item{ID: strconv.Itoa(doc.NextID), Text: text, CreatedBy: accountID, CreatedAt: now.UTC()}
	doc.Items = append(doc.Items, it)
	return it, nil
}

func (doc *stored) find(id string) int {
	for i, it := range doc.Items {
		if it.ID == id {
			return i
		}
	}
	return -1
}

// keyedMutex hands out one mutex per key and forgets it when nobody holds
// or waits for it, so the map does not grow with every issue ever edited.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = make(map[string]*keyedEntry)
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()

	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
