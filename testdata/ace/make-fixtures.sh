#!/usr/bin/env bash
# make-fixtures.sh rewrites testdata/ace from a real atlassian-connect-express
# 11.x: ace.sqlite (its SQLite store), postgres.sql (a dump of its
# PostgreSQL store) and redis.jsonl (the keys of its Redis store).
#
# Needs node and npm, a PostgreSQL server (PGHOST, default 127.0.0.1:5432,
# user postgres) and a Redis server (REDIS_URL, default
# redis://127.0.0.1:6379). It creates a database ace_fixture_<random> and
# drops it afterwards, and writes into a Redis database index 1-15 that
# must be empty; it flushes only that index.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
pghost="${PGHOST:-127.0.0.1}"
pgport="${PGPORT:-5432}"
redis="${REDIS_URL:-redis://127.0.0.1:6379}"
db="ace_fixture_$RANDOM$RANDOM"
rdb=$((RANDOM % 15 + 1))
cleanup() {
	psql -q -h "$pghost" -p "$pgport" -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db" || true
	redis-cli -u "$redis/$rdb" flushdb >/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

cp "$here/package.json" "$here/package-lock.json" "$here/write-store.js" "$work/"
(cd "$work" && npm ci --legacy-peer-deps --no-audit --no-fund >/dev/null && npm rebuild sqlite3 >/dev/null)

if [ "$(redis-cli -u "$redis/$rdb" dbsize)" != "0" ]; then
	echo "Redis database $rdb is not empty; run again to pick another" >&2
	exit 1
fi

rm -f "$here/ace.sqlite"
node "$work/write-store.js" sqlite "$here/ace.sqlite"

psql -q -h "$pghost" -p "$pgport" -U postgres -d postgres -c "CREATE DATABASE $db"
node "$work/write-store.js" postgres "postgres://postgres@$pghost:$pgport/$db"
# Plain INSERTs, no owner or privileges, no psql meta-commands: tests
# replay the file through an ordinary database connection.
pg_dump -h "$pghost" -p "$pgport" -U postgres --no-owner --no-privileges --inserts "$db" |
	grep -v -e '^\\' -e '^--' -e '^SET ' -e 'set_config' -e '^$' >"$here/postgres.sql"

node "$work/write-store.js" redis "$redis/$rdb" "$here/redis.jsonl"
echo "wrote $here/ace.sqlite, $here/postgres.sql, $here/redis.jsonl"
