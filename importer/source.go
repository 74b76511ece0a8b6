package importer

import (
	"context"
	"fmt"
)

// OpenACE opens an atlassian-connect-express store: a PostgreSQL URL, a
// Redis URL, or the path of a SQLite file.
func OpenACE(ctx context.Context, dsn string, opts Options) (Source, error) {
	if opts.Table == "" {
		opts.Table = "AddonSettings"
	}
	if isRedisDSN(dsn) {
		return openACERedis(ctx, dsn, opts)
	}
	db, d, err := openSQL(ctx, dsn)
	if err != nil {
		return nil, err
	}
	return &aceSQL{db: db, dialect: d, opts: opts}, nil
}

// OpenACSB opens an atlassian-connect-spring-boot store: a PostgreSQL URL
// or the path of a SQLite file. opts.AppKey is required.
func OpenACSB(ctx context.Context, dsn string, opts Options) (Source, error) {
	if isRedisDSN(dsn) {
		return nil, fmt.Errorf("atlassian-connect-spring-boot keeps its hosts in SQL (JPA), not Redis: give --from a PostgreSQL URL or a SQLite file")
	}
	db, d, err := openSQL(ctx, dsn)
	if err != nil {
		return nil, err
	}
	return &acsbSQL{db: db, dialect: d, opts: opts}, nil
}

// Describe names a DSN for reports, without its password.
func Describe(dsn string) string {
	if isPostgresDSN(dsn) || isRedisDSN(dsn) {
		return redactDSN(dsn)
	}
	return dsn
}
