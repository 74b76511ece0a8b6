// Package fakeatlassian is a fake Atlassian Cloud product for tests and
// local development: it installs a Connect app with real signed lifecycle
// callbacks, renders the app's iframes on product pages, sends signed
// webhooks, answers a Jira and Confluence REST subset, and runs the
// install-keys server and the OAuth 2.0 token endpoint apps depend on.
// Everything goes over real HTTP and every token is really signed, so an
// app under test cannot tell the fake from a site until it looks closely.
//
// The fake is the independent counterpart of tenon's server side. It
// shares no code with the server, qsh or connectjwt packages: its
// canonical-request hashing is written separately from the protocol notes
// and checked against the published test vectors, so an interoperability
// test compares two implementations instead of one with itself.
//
// # Use from Go
//
//	f := fakeatlassian.New(fakeatlassian.Options{
//		WebhookRetryDelays: []time.Duration{10 * time.Millisecond}, // Jira waits minutes
//	})
//	if err := f.Start("127.0.0.1:0"); err != nil { ... }
//	defer f.Close()
//	site, _ := f.AddSite(fakeatlassian.SiteOptions{Name: "acme"})
//	app, err := f.Install(ctx, site, appURL+"/atlassian-connect.json")
//	// app.SharedSecret is what the app received in `installed`.
//	src, _ := f.SignedModuleURL(site, app.Key, "issue-panel", fakeatlassian.FrameOptions{IssueKey: "DEMO-1"})
//	f.CreateIssue(site, fakeatlassian.IssueInput{ProjectKey: "DEMO", Summary: "hi"}) // fires jira:issue_created
//	f.WaitWebhooks(ctx)
//	calls := f.Calls() // every request received and every call made
//
// The app under test must trust f.KeyServerURL() as its install-keys
// server and f.AuthServerURL() as its OAuth authorization server; sites
// live at <f.URL()>/s/<name> (Jira) and <f.URL()>/s/<name>/wiki
// (Confluence), so their base URLs have a path that qsh must strip.
//
// # Use from any language
//
// A fake started by `tenon fake` is driven through its JSON control API
// under /_fake/ (see README.md in this directory). The control API has no
// authentication and hands out shared secrets: bind the fake to a loopback
// address.
//
// # Layout of the fake's URLs
//
//	/                                       home page: sites, apps, links
//	/connect-install-keys/<kid>             PEM public keys (KeyServerURL)
//	/oauth/oauth2/token                     JWT-bearer grant (AuthServerURL)
//	/atlassian-connect/all.js               the iframe-side script for apps
//	/s/<site>/rest/...                      Jira REST (JWT or Bearer)
//	/s/<site>/wiki/rest/...                 Confluence REST
//	/s/<site>/browse/<KEY>                  issue view with the apps' issue modules
//	/s/<site>[/wiki]/plugins/servlet/ac/<app>/<module>   a page module
//	/forge/.well-known/jwks.json            keys of Forge Invocation Tokens (ForgeJWKSURL)
//	/ex/<product>/<cloudId>/rest/...        api.atlassian.com-style REST for Forge tokens
//	/_fake/...                              control API
//
// Knobs (SetLatency, FailNext, RateLimitNext, SetOutage) make the REST API
// slow or failing so apps can test their retries; they never touch the
// install flow, pages or the token endpoint.
package fakeatlassian
