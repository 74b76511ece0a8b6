package hostclient_test

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/hostclient"
)

// A handler reads the issue it was opened for, as the app. The client is
// made once per process; AsApp binds it to the verified tenant of the
// request.
func ExampleTenant_GetJSON() {
	jira := hostclient.New("com.example.app", hostclient.Options{})
	_ = func(w http.ResponseWriter, r *http.Request) error {
		p := tenon.PrincipalFrom(r.Context())
		key := r.URL.Query().Get("issueKey") // validate before use
		var issue struct {
			Fields struct{ Summary string } `json:"fields"`
		}
		path := "/rest/api/3/issue/" + url.PathEscape(key) + "?fields=summary"
		if err := jira.AsApp(p.Installation).GetJSON(r.Context(), path, &issue); err != nil {
			return fmt.Errorf("reading %s: %w", key, err) // keeps the tenon code: 404 stays 404
		}
		_, err := fmt.Fprintln(w, issue.Fields.Summary)
		return err
	}
}
