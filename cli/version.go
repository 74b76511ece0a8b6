package cli

import (
	"context"
	"fmt"
	"runtime/debug"
)

func runVersion(ctx context.Context, env Env, app App, args []string) error {
	version, goVersion := "(devel)", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				version += " " + s.Value
			}
		}
	}
	_, err := fmt.Fprintf(env.Stdout, "tenon %s %s\n", version, goVersion)
	return err
}
