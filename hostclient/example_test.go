package hostclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/tenon-dev/tenon"
	"github.com/tenon-dev/tenon/fakeatlassian"
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

// jiraClient stands in for a Go client library of the Jira REST API. The
// usual ones (for example github.com/andygrunwald/go-jira or
// github.com/ctreminiom/go-atlassian) are built from a base URL and an
// *http.Client exactly like this; they are not dependencies of this
// module, so the example carries a stand-in of the same shape.
type jiraClient struct {
	baseURL string
	http    *http.Client
}

type jiraIssue struct {
	Key    string `json:"key"`
	Fields struct {
		Summary string `json:"summary"`
	} `json:"fields"`
}

func (j *jiraClient) Issue(ctx context.Context, key string) (*jiraIssue, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.baseURL+"/rest/api/3/issue/"+url.PathEscape(key)+"?fields=summary", nil)
	if err != nil {
		return nil, err
	}
	resp, err := j.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jira: %s", resp.Status)
	}
	var is jiraIssue
	return &is, json.NewDecoder(resp.Body).Decode(&is)
}

// A client library gets the tenant's HTTPClient: every request it sends
// is signed for that tenant (as the app here, as a user with AsUser) and
// goes through retries, the breaker and the limits of the site.
func ExampleTenant_HTTPClient() {
	fs, err := startFakeSite("acme", fakeatlassian.ProductJira, nil, "READ") // a Jira site with the app installed
	if err != nil {
		fmt.Println(err)
		return
	}
	defer fs.stop()
	var in *tenon.Installation = fs.in // in a handler: tenon.PrincipalFrom(ctx).Installation

	host := hostclient.New(in.AppKey, hostclient.Options{})
	tenant := host.AsApp(in)
	jira := &jiraClient{baseURL: tenant.BaseURL(), http: tenant.HTTPClient()}

	issue, err := jira.Issue(context.Background(), "DEMO-1")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(issue.Key, issue.Fields.Summary)
	// Output: DEMO-1 Welcome to the fake Jira
}

// A handler acts as the user who opened the page: the product then
// applies that user's permissions. Tokens are cached in the store, shared
// by every node.
func ExampleClient_AsUser() {
	var store tenon.TokenCache // the Store: both tenon stores implement tenon.TokenCache
	jira := hostclient.New("com.example.app", hostclient.Options{Tokens: store})
	_ = func(w http.ResponseWriter, r *http.Request) error {
		p := tenon.PrincipalFrom(r.Context())
		if p.AccountID == "" {
			return tenon.Errorf(tenon.EUNAUTHORIZED, "Sign in to see your issues.")
		}
		var me struct {
			DisplayName string `json:"displayName"`
		}
		err := jira.AsUser(p.Installation, p.AccountID, "READ").GetJSON(r.Context(), "/rest/api/3/myself", &me)
		var limited *hostclient.RateLimitedError
		if errors.As(err, &limited) && !limited.Until.IsZero() {
			w.Header().Set("Retry-After", strconv.Itoa(int(time.Until(limited.Until).Seconds())+1))
		}
		if err != nil {
			return err // EUNAVAILABLE, EUNAUTHORIZED, ... as the product answered
		}
		_, err = fmt.Fprintln(w, "Hello,", me.DisplayName)
		return err
	}
}

// A Forge Remote handler calls the product with the token Forge sent
// along; background work later uses the one the server cached.
func ExampleClient_ForgeCall() {
	var store interface {
		tenon.TokenCache
		tenon.ForgeStore
	} // the Store: both tenon stores implement both
	host := hostclient.New("", hostclient.Options{Tokens: store, Forge: hostclient.ForgeOptions{Installations: store}})
	_ = func(w http.ResponseWriter, r *http.Request) error {
		p := tenon.PrincipalFrom(r.Context())
		var me struct {
			DisplayName string `json:"displayName"`
		}
		// As the user who invoked the remote (the manifest must ask Forge
		// to send the user token), on the installation's apiBaseUrl.
		if err := host.ForgeCall(p.Forge, true).GetJSON(r.Context(), "/rest/api/3/myself", &me); err != nil {
			return err
		}
		_, err := fmt.Fprintln(w, "Hello,", me.DisplayName)
		return err
	}
	_ = func(ctx context.Context, installationID, issueKey string) error {
		tenant, err := host.ForgeAsApp(ctx, installationID) // EUNAVAILABLE until Forge sent a token
		if err != nil {
			return err
		}
		return tenant.SendJSON(ctx, http.MethodPut, "/rest/api/3/issue/"+url.PathEscape(issueKey)+"/properties/checklist",
			map[string]int{"open": 0}, nil)
	}
}

// Calls to a gateway that serves many sites on one host, such as
// api.atlassian.com with a token of the app's own, name their site so
// that each site gets its own breaker, concurrency limit and retry budget
// (Forge calls through ForgeCall and ForgeAsApp do so themselves).
func ExampleResilience() {
	res := hostclient.NewResilience(hostclient.Policy{MaxConcurrent: 8})
	client := &http.Client{Transport: res.Wrap(http.DefaultTransport)}
	_ = func(ctx context.Context, cloudID, token string) (*http.Response, error) {
		ctx = hostclient.WithTarget(ctx, hostclient.Target{Site: "jira:" + cloudID, Product: "jira"})
		req, err := http.NewRequestWithContext(ctx, http.MethodGet,
			"https://api.atlassian.com/ex/jira/"+url.PathEscape(cloudID)+"/rest/api/3/myself", nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		return client.Do(req)
	}
}
