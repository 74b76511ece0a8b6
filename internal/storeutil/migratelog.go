package storeutil

import (
	"context"
	"log/slog"

	"github.com/pressly/goose/v3"
)

// MigrationLogger is the logger to give the migration tool: its line per
// migration and per check is detail, so its info lines become debug lines.
// What an operator needs at info is one line: LogMigrations.
func MigrationLogger(l *slog.Logger) *slog.Logger {
	return slog.New(demoted{l.Handler()})
}

// LogMigrations writes the one info line of a start that applied
// migrations; a start that applied none says nothing.
func LogMigrations(ctx context.Context, l *slog.Logger, store string, results []*goose.MigrationResult) {
	if len(results) == 0 {
		return
	}
	last := results[len(results)-1]
	var version int64
	if last.Source != nil {
		version = last.Source.Version
	}
	l.LogAttrs(ctx, slog.LevelInfo, store+": migrated the database", slog.Int("applied", len(results)), slog.Int64("version", version))
}

// demoted is a handler that turns info records into debug ones.
type demoted struct{ h slog.Handler }

func (d demoted) Enabled(ctx context.Context, l slog.Level) bool {
	return d.h.Enabled(ctx, demote(l))
}

func (d demoted) Handle(ctx context.Context, r slog.Record) error {
	r.Level = demote(r.Level)
	return d.h.Handle(ctx, r)
}

func (d demoted) WithAttrs(as []slog.Attr) slog.Handler { return demoted{d.h.WithAttrs(as)} }
func (d demoted) WithGroup(g string) slog.Handler       { return demoted{d.h.WithGroup(g)} }

func demote(l slog.Level) slog.Level {
	if l == slog.LevelInfo {
		return slog.LevelDebug
	}
	return l
}
