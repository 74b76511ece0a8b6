package checklist

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/personal"
)

// PersonalDataHooks are called by tenon's personal data reporting cycle:
// the checklist keeps one thing about an account, the author of each item
// (Item.CreatedBy), and forgets it when Atlassian reports the account
// closed. The items stay; only their authorship goes.
func (a *App) PersonalDataHooks() personal.Hooks {
	return personal.Hooks{Erase: a.eraseAuthor}
}

// eraseAuthor clears accountID from every item of the tenant's checklists.
// It is idempotent: a second run finds nothing to change.
func (a *App) eraseAuthor(ctx context.Context, clientKey, accountID string) error {
	if a.srv == nil {
		return fmt.Errorf("checklist: erase: the routes are not registered")
	}
	data := a.srv.TenantData(clientKey)
	after := ""
	for {
		page, err := data.List(ctx, "checklist/", after, 100)
		if err != nil {
			return fmt.Errorf("checklist: erase: list checklists: %w", err)
		}
		for _, kv := range page {
			err := data.Update(ctx, kv.Key, func(old json.RawMessage) (json.RawMessage, error) {
				if old == nil {
					return nil, tenon.ErrUnchanged
				}
				var doc stored
				if err := json.Unmarshal(old, &doc); err != nil {
					return nil, tenon.WrapError(tenon.EINTERNAL, "A stored checklist cannot be read.", err)
				}
				changed := false
				for i := range doc.Items {
					if doc.Items[i].CreatedBy == accountID {
						doc.Items[i].CreatedBy = ""
						changed = true
					}
				}
				if !changed {
					return nil, tenon.ErrUnchanged
				}
				return json.Marshal(&doc)
			})
			if err != nil {
				return fmt.Errorf("checklist: erase the author of %s: %w", kv.Key, err)
			}
		}
		if len(page) < 100 {
			return nil
		}
		after = page[len(page)-1].Key
	}
}
