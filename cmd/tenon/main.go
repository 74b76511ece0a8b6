// Command tenon runs an Atlassian Cloud app backend and its operations
// around the example app, a Jira issue checklist: serve, dev, fake, keygen,
// version. `tenon dev` is the first command of the README.
package main

import (
	"github.com/tenon-dev/tenon/cli"
	"github.com/tenon-dev/tenon/examples/checklist"
)

func main() {
	cli.Main(checklist.New(checklist.Options{}))
}
