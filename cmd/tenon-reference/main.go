// Command tenon-reference is tenon's command line around the app of the
// performance reference workload (examples/reference), built the way a
// vendor builds its own binary: `tenon-reference serve` serves it with
// everything `tenon serve` has (access log, metrics, both stores).
// scripts/measure-reference.sh measures it.
package main

import (
	"github.com/tenon-dev/tenon/cli"
	"github.com/tenon-dev/tenon/examples/reference"
)

func main() {
	cli.Main(reference.New())
}
