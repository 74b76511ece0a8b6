#!/bin/sh
# PostgreSQL primary + synchronous standby managed by pg_auto_failover
# (Debian: postgresql-15-auto-failover), for the two-node recipe of
# docs/HIGH_AVAILABILITY.md. Run each part on its own machine, as the
# postgres user; the host names are examples.
#
#   monitor   db-monitor   watches the data nodes, promotes the standby
#   node 1    db1          starts as primary
#   node 2    db2          starts as standby, synchronous
set -eu
PG=/usr/lib/postgresql/15/bin
export PATH="$PG:$PATH"
role=${1:?usage: pg_auto_failover.sh monitor|node}

case "$role" in
monitor)
	pg_autoctl create monitor --pgdata /var/lib/postgresql/monitor \
		--hostname db-monitor --auth scram-sha-256 --ssl-self-signed --run
	;;
node)
	# The first node to register becomes the primary, the second its
	# standby. number-sync-standbys 1 makes every commit wait for the
	# standby (synchronous_commit=on, synchronous_standby_names set by
	# the monitor): an acknowledged write survives the loss of either.
	pg_autoctl create postgres --pgdata /var/lib/postgresql/node \
		--hostname "$(hostname -f)" --auth scram-sha-256 --ssl-self-signed \
		--dbname tenon --monitor 'postgres://autoctl_node@db-monitor:5432/pg_auto_failover?sslmode=require' \
		--run
	;;
*)
	echo "usage: pg_auto_failover.sh monitor|node" >&2
	exit 2
	;;
esac

# Afterwards, once on the monitor:
#   pg_autoctl set formation number-sync-standbys 1
#   pg_autoctl show state          # one primary, one secondary
#   pg_autoctl show uri --formation default
# The last prints the multi-host DSN for tenon (see tenon.env).
