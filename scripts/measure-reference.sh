#!/usr/bin/env bash
# Measures the performance reference workload (docs/PERFORMANCE.md) from
# outside, interleaved in one run: tenon on SQLite, the bare net/http
# ceiling and, with --postgres, tenon on PostgreSQL, each server pinned to
# CPU 0 and the load generator to CPU 1.
#
#   scripts/measure-reference.sh [--rounds N] [--loadtest-rounds N]
#       [--seconds S] [--tenants N] [--postgres [--own-postgres]] [--out DIR]
#
# It builds cmd/tenon-reference and internal/cmd/bareserve, installs the
# tenants into each tenon server with `tenon-reference loadtest
# --install-only` (real signed installs through the fake, 8 at a time),
# which stores each tenant's value through the app's API and writes the
# signed module URLs (20,000 in all); wrk (64 connections) sends those
# URLs at random (scripts/reference-urls.lua). Per round and target it
# records req/s, p50/p90/p99 and the server's CPU per request
# (utime+stime of /proc/PID/stat over the requests); then peak RSS
# under the load (VmHWM, reset after the installs) and installs/s. Then rounds of `tenon loadtest` closed-model
# with 64 workers, interleaved with wrk on the same servers: URLs signed
# before the run, URLs signed when sent, and against the bare server
# (the generator's own ceiling); and an open-model run at half the rate
# wrk measured, against tenon on SQLite and against the bare server (the
# generator's own floor). Each run lasts --seconds (10). Everything it starts is
# stopped by its PID when it ends; the PostgreSQL database it creates on
# the shared server (TENON_TEST_POSTGRES_DSN) is dropped. With
# --own-postgres the database is instead a private cluster (initdb in the
# output directory, loopback port 15499) pinned to CPU 0 with the servers,
# so that tenon and its database share one core; it is stopped by its PID.
set -euo pipefail

ROUNDS=3
LTROUNDS=""
SECS=10
TENANTS=1000
POSTGRES=0
OWNPG=0
OWNPG_PORT=15499
OUT=""
PG_URL=${TENON_TEST_POSTGRES_DSN:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}

while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) ROUNDS=$2; shift 2 ;;
	--loadtest-rounds) LTROUNDS=$2; shift 2 ;;
	--seconds) SECS=$2; shift 2 ;;
	--tenants) TENANTS=$2; shift 2 ;;
	--postgres) POSTGRES=1; shift ;;
	--own-postgres) POSTGRES=1; OWNPG=1; shift ;;
	--out) OUT=$2; shift 2 ;;
	-h|--help) sed -n '2,28p' "$0"; exit 0 ;;
	*) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
LTROUNDS=${LTROUNDS:-$ROUNDS}
case "$ROUNDS$LTROUNDS$SECS$TENANTS" in *[!0-9]*) echo "--rounds, --loadtest-rounds, --seconds and --tenants take whole numbers" >&2; exit 2 ;; esac
if [ "$SECS" -lt 3 ] || [ "$SECS" -gt 60 ] || [ "$ROUNDS" -lt 1 ] || [ "$ROUNDS" -gt 20 ]; then
	echo "--seconds must be from 3 to 60 and --rounds from 1 to 20" >&2; exit 2
fi
for tool in wrk taskset go jq curl; do
	command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 2; }
done
if [ "$POSTGRES" = 1 ]; then command -v psql >/dev/null || { echo "--postgres needs psql" >&2; exit 2; }; fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/tenon-reference.XXXXXX)}
mkdir -p "$OUT/bin"
OUT=$(cd "$OUT" && pwd)
HZ=$(getconf CLK_TCK)
FAKE=127.0.0.1:18181
# URLs must stay valid for the whole run: installs, rounds, loadtest legs.
URL_LIFE=$(( (ROUNDS * 3 + LTROUNDS * 7 + 10) * SECS + 900 ))s

PIDS=()
PGDB=""
OWNPG_PID=""
cleanup() {
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
	done
	if [ -n "$OWNPG_PID" ]; then
		# A fast shutdown: the servers using it are gone by now.
		kill -INT "$OWNPG_PID" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$OWNPG_PID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$OWNPG_PID" 2>/dev/null || true
	elif [ -n "$PGDB" ]; then
		psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $PGDB" >/dev/null 2>&1 || echo "could not drop database $PGDB" >&2
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '== %s\n' "$*" >&2; }

log "building into $OUT/bin"
(cd "$ROOT" && go build -o "$OUT/bin/tenon-reference" ./cmd/tenon-reference && go build -o "$OUT/bin/bareserve" ./internal/cmd/bareserve)
APP=$OUT/bin/tenon-reference
"$APP" keygen -o "$OUT/secret.key" >/dev/null 2>&1

# The mix: the checked-in reference mix with --tenants, 20,000 URLs in all.
ISSUES=$(( 20000 / TENANTS )); [ "$ISSUES" -ge 1 ] || ISSUES=1
jq --argjson t "$TENANTS" --argjson i "$ISSUES" '.tenants = $t | .issuesPerTenant = $i' \
	"$ROOT/loadtest/mixes/reference.json" > "$OUT/mix.json"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
# RSS in two parts: anonymous memory (heap, stacks, SQLite's caches) and
# file pages (mostly the mapped executable: clean, shared, reclaimable).
anon_kib() { awk '/^RssAnon:/ {print $2}' "/proc/$1/status"; }
file_kib() { awk '/^RssFile:/ {print $2}' "/proc/$1/status"; }
declare -A ANON FILEPAGES
wait_up() {
	for _ in $(seq 100); do
		curl -fs -o /dev/null "$1" && return 0
		sleep 0.1
	done
	echo "$1 does not answer" >&2; return 1
}

declare -A ADDR SRVPID URLS
# start_tenon NAME ADDR ADMIN DB
start_tenon() {
	local name=$1 addr=$2 admin=$3 db=$4
	TENON_INSTALL_KEYS_URL=http://$FAKE/connect-install-keys TENON_SECRET_KEY_FILE=$OUT/secret.key \
		taskset -c 0 "$APP" serve --environment development --addr "$addr" --base-url "http://$addr" \
		--db "$db" --admin-addr "$admin" --log-level info 2> "$OUT/$name.log" &
	PIDS+=($!); SRVPID[$name]=$!; ADDR[$name]=$addr
	wait_up "http://$addr/atlassian-connect.json"
	local before after
	before=$(cpu_ticks "${SRVPID[$name]}")
	log "$name: installing $TENANTS tenants (signed installs, 8 at a time)"
	taskset -c 1 "$APP" loadtest --target "http://$addr" --fake-addr "$FAKE" --mix "$OUT/mix.json" \
		--install-only --urls-out "$OUT/$name.urls" --duration "$URL_LIFE" > "$OUT/$name.install.txt" 2> "$OUT/$name.install.log"
	after=$(cpu_ticks "${SRVPID[$name]}")
	URLS[$name]=$OUT/$name.urls
	local rate
	rate=$(sed -n 's/^installed [0-9]* tenants: \([0-9]*\) installs\/s.*/\1/p' "$OUT/$name.install.txt")
	# Server CPU per install, including each tenant's one setup write.
	printf '%s\t%s\t%s\n' "$name" "$rate" "$(( (after - before) * 1000000 / HZ / TENANTS ))" >> "$OUT/installs.tsv"
}

: > "$OUT/installs.tsv"
start_tenon sqlite 127.0.0.1:18080 127.0.0.1:19090 "$OUT/reference.db"
TARGETS=(sqlite bare)
# start_own_pg: a private cluster on loopback, pinned to CPU 0. PostgreSQL
# will not run as root; then the cluster belongs to the postgres user.
start_own_pg() {
	local bin as=()
	bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	[ -n "$bin" ] && [ -x "$bin/initdb" ] || { echo "--own-postgres needs PostgreSQL's server binaries (/usr/lib/postgresql/*/bin)" >&2; exit 2; }
	mkdir -p "$OUT/pg"
	if [ "$(id -u)" = 0 ]; then
		chown postgres: "$OUT/pg"
		as=(runuser -u postgres --)
	fi
	log "own PostgreSQL: initdb in $OUT/pg, port $OWNPG_PORT, CPU 0"
	"${as[@]}" "$bin/initdb" -D "$OUT/pg/data" -U postgres --auth=trust -E UTF8 > "$OUT/pg-initdb.log" 2>&1 ||
		{ echo "initdb failed, see $OUT/pg-initdb.log" >&2; exit 1; }
	taskset -c 0 "${as[@]}" "$bin/postgres" -D "$OUT/pg/data" -p "$OWNPG_PORT" -c listen_addresses=127.0.0.1 \
		-c unix_socket_directories="$OUT/pg" > "$OUT/pg.log" 2>&1 &
	for _ in $(seq 100); do
		[ -s "$OUT/pg/data/postmaster.pid" ] && OWNPG_PID=$(head -1 "$OUT/pg/data/postmaster.pid")
		[ -n "$OWNPG_PID" ] && psql "postgres://postgres@127.0.0.1:$OWNPG_PORT/postgres?sslmode=disable" -qc 'SELECT 1' >/dev/null 2>&1 && break
		sleep 0.1
	done
	[ -n "$OWNPG_PID" ] || { echo "the private PostgreSQL did not start, see $OUT/pg.log" >&2; exit 1; }
	PG_URL="postgres://postgres@127.0.0.1:$OWNPG_PORT/postgres?sslmode=disable"
}

if [ "$POSTGRES" = 1 ]; then
	[ "$OWNPG" = 1 ] && start_own_pg
	PGDB=tenon_reference_$$
	psql "$PG_URL" -qc "CREATE DATABASE $PGDB" >/dev/null
	# The same server and user, the new database.
	start_tenon postgres 127.0.0.1:18082 127.0.0.1:19092 "$(printf '%s' "$PG_URL" | sed -E "s#^(postgres(ql)?://[^/]*)/[^?]*#\\1/$PGDB#")"
	TARGETS+=(postgres)
fi

# The bare ceiling answers with a page of the reference page's size.
SIZE=$(curl -fs "$(head -1 "${URLS[sqlite]}")" | wc -c)
# Its descriptor is the reference app's with its own base URL, so tenon
# loadtest can install into it too.
curl -fs "http://${ADDR[sqlite]}/atlassian-connect.json" | jq '.baseUrl = "http://127.0.0.1:18090"' > "$OUT/bare-descriptor.json"
taskset -c 0 "$OUT/bin/bareserve" --addr 127.0.0.1:18090 --size "$SIZE" --descriptor "$OUT/bare-descriptor.json" &
PIDS+=($!); SRVPID[bare]=$!; ADDR[bare]=127.0.0.1:18090; URLS[bare]=${URLS[sqlite]}
wait_up http://127.0.0.1:18090/

to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'; }

# Rows of results.tsv: run, target, generator, req/s, p50, p90, p99 (ms),
# server CPU us/request, failed requests.

# run_wrk NAME SECONDS LABEL: one wrk run.
run_wrk() {
	local name=$1 secs=$2 label=$3 before after f
	f=$OUT/wrk-$label-$name.txt
	before=$(cpu_ticks "${SRVPID[$name]}")
	REFERENCE_URLS=${URLS[$name]} taskset -c 1 wrk -t1 -c64 -d"${secs}s" --latency \
		-s "$ROOT/scripts/reference-urls.lua" "http://${ADDR[$name]}" > "$f" 2>&1
	after=$(cpu_ticks "${SRVPID[$name]}")
	# Memory only over the rounds the peak RSS is taken from: the later
	# tenon loadtest runs add their own tenants.
	if [[ $label == round* ]]; then
		local anon
		anon=$(anon_kib "${SRVPID[$name]}")
		if [ "${anon:-0}" -gt "${ANON[$name]:-0}" ]; then ANON[$name]=$anon; fi
		FILEPAGES[$name]=$(file_kib "${SRVPID[$name]}")
	fi
	local reqs rps p50 p90 p99 bad
	reqs=$(awk '/requests in/ {print $1}' "$f")
	rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$f")
	p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$f")")
	p90=$(to_ms "$(awk '$1 == "90%" {print $2}' "$f")")
	p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")
	bad=$(awk '/Non-2xx/ {print $NF}' "$f"); bad=${bad:-0}
	printf '%s\t%s\twrk\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$name" "$rps" "$p50" "$p90" "$p99" \
		"$(( (after - before) * 1000000 / HZ / (reqs > 0 ? reqs : 1) ))" "$bad" >> "$OUT/results.tsv"
}

# run_lt NAME LABEL GENERATOR [FLAGS...]: one closed-model run of tenon
# loadtest with 64 workers; it installs its own tenants first (a new
# fake), which its figures leave out. Server CPU comes from its --pid
# samples over the load.
run_lt() {
	local name=$1 label=$2 gen=$3 f
	shift 3
	f=$OUT/loadtest-$label-$gen-$name
	taskset -c 1 "$APP" loadtest --target "http://${ADDR[$name]}" --fake-addr "$FAKE" --mix "$OUT/mix.json" \
		--model closed --workers 64 --duration "${SECS}s" --quiet --pid "${SRVPID[$name]}" --out "$f" "$@" \
		> "$f.txt" 2> "$f.log" || { echo "tenon loadtest failed, see $f.log" >&2; return 0; }
	jq -r --arg l "$label" --arg t "$name" --arg g "$gen" '
		([.samples[]? | select(.cpu >= 0) | .cpu] | if length > 0 then add / length else 0 end) as $cpu |
		[$l, $t, $g, (.total.throughput | round), .total.latency.p50, .total.latency.p90, .total.latency.p99,
		 (if .total.count > 0 then ($cpu / 100 * .elapsed * 1e6 / .total.count | round) else 0 end), (.total.count - .total.ok)] | @tsv' \
		"$f.json" >> "$OUT/results.tsv"
}

log "warming up"
for t in "${TARGETS[@]}"; do run_wrk "$t" 3 warmup; done
: > "$OUT/results.tsv"
# Peak RSS under the load, not while installing: the high-water mark
# so far is kept, then reset (clear_refs 5) before the rounds.
declare -A HWM_SETUP
for t in "${TARGETS[@]}"; do
	HWM_SETUP[$t]=$(hwm_kib "${SRVPID[$t]}")
	echo 5 > "/proc/${SRVPID[$t]}/clear_refs" 2>/dev/null || HWM_SETUP[$t]="not reset"
done
for r in $(seq "$ROUNDS"); do
	# Rotate the order each round, so no target always follows another.
	n=${#TARGETS[@]}
	for k in $(seq 0 $((n - 1))); do
		t=${TARGETS[$(( (k + r) % n ))]}
		log "round $r: wrk against $t"
		run_wrk "$t" "$SECS" "round$r"
	done
done
declare -A HWM
for t in "${TARGETS[@]}"; do HWM[$t]=$(hwm_kib "${SRVPID[$t]}"); done

# tenon loadtest next to wrk, interleaved: against tenon on SQLite with
# URLs signed before the run and (as before pre-signing) when sent, and
# against the bare server, where nothing is verified and only the
# generator's own speed shows. Each loadtest run adds its tenants to the
# server, which is why these come after the rounds above (and RSS).
for r in $(seq "$LTROUNDS"); do
	log "round $r: wrk and tenon loadtest against sqlite and bare"
	run_wrk sqlite "$SECS" "lt-round$r"
	run_lt sqlite "lt-round$r" loadtest
	run_lt sqlite "lt-round$r" loadtest-sign-at-send --sign-at-send
	run_wrk bare "$SECS" "lt-round$r"
	run_lt bare "lt-round$r" loadtest
done
if [ "$POSTGRES" = 1 ] && [ "$LTROUNDS" -gt 0 ]; then
	log "postgres: wrk and tenon loadtest"
	run_wrk postgres "$SECS" lt-round1
	run_lt postgres lt-round1 loadtest
fi

# Open model at half the maximum wrk measured on SQLite.
MAXRATE=$(awk -F'\t' '$1 ~ /^round/ && $2 == "sqlite" && $3 == "wrk" {print $4}' "$OUT/results.tsv" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
HALF=$(( MAXRATE / 2 ))
# The same rate against the bare server is the generator's own floor: a
# server that does nothing cannot show a shorter tail than that. For
# tenon, the access log's durations (handler start to last byte) show
# how much of the tail is spent inside the server's handlers.
declare -A OPEN
run_open() { # run_open NAME
	local name=$1 f=$OUT/loadtest-open-$1
	log "$name: tenon loadtest, open model at $HALF req/s"
	taskset -c 1 "$APP" loadtest --target "http://${ADDR[$name]}" --fake-addr "$FAKE" --mix "$OUT/mix.json" \
		--model open --profile load --rate "$HALF" --duration "${SECS}s" --quiet --out "$f" \
		> "$f.txt" 2> "$f.log" || true
	OPEN[$name]=$(jq -r '"\(.total.throughput | round) req/s answered, p50 \(.total.latency.p50) ms, p90 \(.total.latency.p90) ms, p99 \(.total.latency.p99) ms (service p99 \(.total.service.p99) ms), \(.total.count - .total.ok) failed"' "$f.json" 2>/dev/null || echo "no report, see $f.log")
}
LOGLINES=$(wc -l < "$OUT/sqlite.log")
run_open sqlite
HANDLER=$(tail -n +"$((LOGLINES + 1))" "$OUT/sqlite.log" | jq -r 'select(.msg == "request" and .route == "GET /reference") | .duration_ms' 2>/dev/null | sort -n |
	awk '{a[NR] = $1} END {if (NR) printf "p50 %s ms, p99 %s ms, p99.9 %s ms, max %s ms over %d requests", a[int(NR * .5) + 1], a[int(NR * .99) + 1], a[int(NR * .999) + 1], a[NR], NR; else print "no request lines"}')
run_open bare

# The report.
summary() { # summary LABEL-REGEX TARGET GENERATOR
	awk -F'\t' -v l="$1" -v t="$2" -v g="$3" '$1 ~ l && $2 == t && $3 == g {print $4, $5, $7, $8}' "$OUT/results.tsv" | sort -n | awk -v name="$2 $3" '
		{ r[NR] = $1; p50[NR] = $2; p99[NR] = $3; cpu[NR] = $4 }
		function range(a,   i, lo, hi) { lo = hi = a[1]; for (i in a) { if (a[i] + 0 < lo + 0) lo = a[i]; if (a[i] + 0 > hi + 0) hi = a[i] } return lo "-" hi }
		END { if (NR) printf "  %-32s req/s %s (median %s), p50 %s ms, p99 %s ms, CPU %s us/req\n", name, range(r), r[int((NR + 1) / 2)], range(p50), range(p99), range(cpu) }'
}
ratio() { # ratio LABEL-REGEX TARGET GENERATOR OVER-TARGET OVER-GENERATOR
	awk -F'\t' -v l="$1" -v t="$2" -v g="$3" -v bt="$4" -v bg="$5" '$1 ~ l { rps[$1, $2, $3] = $4; runs[$1] = 1 }
		END { for (r in runs) if (rps[r, bt, bg] > 0 && rps[r, t, g] > 0) printf " %.3f", rps[r, t, g] / rps[r, bt, bg] }' "$OUT/results.tsv"
}
{
	echo "machine: $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), load average $(cut -d' ' -f1-3 /proc/loadavg)"
	if [ "$POSTGRES" = 1 ]; then
		if [ "$OWNPG" = 1 ]; then echo "postgres: a private cluster pinned to CPU 0 with the servers"; else echo "postgres: a database on the shared server, not pinned"; fi
	fi
	echo "workload: $TENANTS tenants, $(wc -l < "${URLS[sqlite]}") signed URLs, page of $SIZE bytes; servers on CPU 0, generator on CPU 1, 64 connections, ${SECS}s per run"
	echo
	printf '%-12s %-9s %-22s %7s %7s %7s %7s %10s %6s\n' run target generator req/s p50_ms p90_ms p99_ms cpu_us/req failed
	awk -F'\t' '{printf "%-12s %-9s %-22s %7s %7s %7s %7s %10s %6s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9}' "$OUT/results.tsv"
	echo
	echo "wrk rounds (min-max, median):"
	for t in "${TARGETS[@]}"; do summary '^round' "$t" wrk; done
	for t in "${TARGETS[@]}"; do
		echo "  peak RSS $t under the load: $(awk -v k="${HWM[$t]}" 'BEGIN {printf "%.1f", k / 1024}') MiB (installs and warm-up: $(awk -v k="${HWM_SETUP[$t]}" 'BEGIN {if (k + 0 > 0) printf "%.1f MiB", k / 1024; else print "the mark could not be reset"}'))"
		echo "    of which anonymous (RssAnon, largest after a run): $(awk -v k="${ANON[$t]:-0}" 'BEGIN {printf "%.1f", k / 1024}') MiB; file pages (RssFile, the mapped executable): $(awk -v k="${FILEPAGES[$t]:-0}" 'BEGIN {printf "%.1f", k / 1024}') MiB"
	done
	for t in "${TARGETS[@]}"; do [ "$t" = bare ] || echo "  $t/bare per round:$(ratio '^round' "$t" wrk bare wrk)"; done
	echo
	echo "tenon loadtest next to wrk (closed, 64; interleaved rounds):"
	for g in wrk loadtest loadtest-sign-at-send; do summary '^lt-round' sqlite "$g"; done
	for g in wrk loadtest; do summary '^lt-round' bare "$g"; done
	[ "$POSTGRES" = 1 ] && for g in wrk loadtest; do summary '^lt-round' postgres "$g"; done
	echo "  sqlite loadtest/wrk per round:$(ratio '^lt-round' sqlite loadtest sqlite wrk)"
	echo "  sqlite loadtest-sign-at-send/wrk per round:$(ratio '^lt-round' sqlite loadtest-sign-at-send sqlite wrk)"
	echo "  bare loadtest/wrk per round:$(ratio '^lt-round' bare loadtest bare wrk)"
	echo
	echo "open model at $HALF req/s (half the median wrk rate on sqlite), latency from when each request was due:"
	echo "  sqlite: ${OPEN[sqlite]}"
	echo "    inside tenon's handlers (access log): $HANDLER"
	echo "  bare (the generator's floor): ${OPEN[bare]}"
	echo
	echo "signed installs (8 at a time; server CPU per install includes the tenant's setup write):"
	awk -F'\t' '{printf "  %-9s %s installs/s, %s us server CPU per install\n", $1, $2, $3}' "$OUT/installs.tsv"
	echo
	echo "files: $OUT"
} | tee "$OUT/report.txt"
