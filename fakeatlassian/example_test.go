package fakeatlassian_test

import (
	"context"
	"fmt"
	"time"

	"github.com/tenon-dev/tenon/fakeatlassian"
)

func Example() {
	ctx := context.Background()
	f := fakeatlassian.New(fakeatlassian.Options{WebhookRetryDelays: []time.Duration{10 * time.Millisecond}})
	if err := f.Start("127.0.0.1:0"); err != nil {
		panic(err)
	}
	defer f.Close()

	site, err := f.AddSite(fakeatlassian.SiteOptions{Name: "acme", Product: fakeatlassian.ProductJira})
	if err != nil {
		panic(err)
	}
	// The app must trust f.KeyServerURL() for signed installs.
	app, err := f.Install(ctx, site, "http://127.0.0.1:3000/atlassian-connect.json")
	if err != nil {
		fmt.Println("install failed:", err)
		return
	}
	src, _ := f.SignedModuleURL(site, app.Key, "issue-panel", fakeatlassian.FrameOptions{IssueKey: "DEMO-1"})
	fmt.Println("open in a browser:", f.IssuePageURL(site, "DEMO-1"), "iframe:", src)
}
