package storeutil_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/pressly/goose/v3"

	"github.com/tenon-dev/tenon/internal/storeutil"
)

func TestMigrationLogging(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	m := storeutil.MigrationLogger(l)
	m.Info("goose: OK 00001_init.sql")
	m.Warn("goose: something odd")
	if strings.Contains(buf.String(), "00001_init") {
		t.Errorf("a migration's info line reached the info log: %s", buf.String())
	}
	if !strings.Contains(buf.String(), "something odd") {
		t.Errorf("a warning was lost: %q", buf.String())
	}

	buf.Reset()
	storeutil.LogMigrations(context.Background(), l, "sqlite", nil)
	if buf.Len() != 0 {
		t.Errorf("a start without migrations logged %q", buf.String())
	}
	storeutil.LogMigrations(context.Background(), l, "sqlite", []*goose.MigrationResult{
		{Source: &goose.Source{Version: 1}}, {Source: &goose.Source{Version: 7}},
	})
	if got := buf.String(); strings.Count(got, "\n") != 1 || !strings.Contains(got, "applied=2") || !strings.Contains(got, "version=7") {
		t.Errorf("one summary line expected, got %q", got)
	}

	var debug bytes.Buffer
	d := storeutil.MigrationLogger(slog.New(slog.NewTextHandler(&debug, &slog.HandlerOptions{Level: slog.LevelDebug})))
	d.Info("goose: OK 00001_init.sql")
	if !strings.Contains(debug.String(), "level=DEBUG") || !strings.Contains(debug.String(), "00001_init") {
		t.Errorf("at debug level the migration line should show as debug: %q", debug.String())
	}
}
