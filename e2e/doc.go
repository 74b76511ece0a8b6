// Package e2e holds tenon's end-to-end tests. They run the real server
// (through the command line's Open and ServeListener, on a SQLite store)
// with the example checklist app against the real fake Atlassian, both on
// loopback, and walk an app's whole life the way a product and a browser
// would: signed install, iframe page, browser API calls with context
// tokens, webhooks, disable, reinstall and uninstall.
//
// The package has no code of its own; the tests live in its _test files.
// One test drives a headless Chromium through the fake's issue page. It is
// skipped when no Chromium is installed, unless TENON_REQUIRE_CHROMIUM=1,
// which turns the missing browser into a failure (for CI). Its screenshot
// goes to TENON_SCREENSHOT_DIR when that is set.
package e2e
