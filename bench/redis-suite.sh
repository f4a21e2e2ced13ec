#!/bin/sh
# redis-suite.sh runs units of Redis's own test suite (tests/ of an unpacked
# Redis source tree, e.g. `git archive 7.0.15` of github.com/redis/redis)
# in --cluster-mode, one unit at a time, and prints a per-unit table of
# passed ([ok]) and failed ([err], [exception]) tests. docs/compat.md has
# the measured figure and the commands that measured it.
#
# usage: bench/redis-suite.sh TARGET REDIS_SOURCE_DIR PORT [UNIT...]
#
#   TARGET    what answers on 127.0.0.1:PORT, started afresh for every unit
#             (a unit leaves configs, users and scripts behind, and a unit
#             that fails half-way would otherwise fail the next ones):
#               baseline  one cluster-enabled redis-server owning all 16384
#                         slots (its bus port is PORT+10000)
#               proxy     `$RESHARD proxy` over 3 redis-servers on PORT+1..3
#               external  nothing is started: a server you run yourself
#               compare   baseline, then proxy (SKIPFILE applies to the
#                         proxy only), then a table of both per unit and
#                         the tests the proxy fails that the baseline
#                         passes, by name
#             redis-server is the installed one (PATH), started with
#             --enable-debug-command yes --enable-protected-configs yes
#             --save '' as the suite expects; nothing of the source tree is
#             built or run.
#   UNIT      e.g. unit/type/list; default: every unit/* of the suite's
#             all_tests list (integration/* start servers of their own from
#             the source tree and are left out).
#
# environment:
#   RESHARD       the reshard binary for TARGET proxy (default: bin/reshard)
#   LOGDIR        where each unit's output is kept (default: a new temp
#                 directory, printed at the end)
#   UNIT_TIMEOUT  seconds one unit may take in all (default 600); a unit cut
#                 short shows "timeout" in the table
#   TEST_TIMEOUT  runtest's --timeout, seconds (default 240): a test that
#                 waits this long ends its unit, shown as "hung"
#   SKIPFILE      a file of test names (or /regexps) to skip, one a line,
#                 passed to runtest's --skipfile: e.g. the tests that hang,
#                 to measure the rest of their units
#   BASEPORT      runtest's --baseport (default PORT+100); runtest listens
#                 for its test client just below it
#
# Some units exec src/redis-cli, src/redis-server and so on, as from a built
# tree; when src/redis-server is missing, the installed binaries (same
# version) are linked into src/.
set -eu

if [ $# -lt 3 ]; then
	echo "usage: $0 baseline|proxy|external|compare REDIS_SOURCE_DIR PORT [UNIT...]" >&2
	exit 2
fi
target=$1
src=$(cd "$2" && pwd)
port=$3
shift 3
host=127.0.0.1
unit_timeout=${UNIT_TIMEOUT:-600}
test_timeout=${TEST_TIMEOUT:-240}
baseport=${BASEPORT:-$((port + 100))}
skip=""
if [ -n "${SKIPFILE:-}" ]; then
	skip="--skipfile $(cd "$(dirname "$SKIPFILE")" && pwd)/$(basename "$SKIPFILE")"
fi
reshard=${RESHARD:-bin/reshard}
logdir=${LOGDIR:-$(mktemp -d "${TMPDIR:-/tmp}/redis-suite.XXXXXX")}
mkdir -p "$logdir"
logdir=$(cd "$logdir" && pwd)
case $target in
baseline | proxy | external | compare) ;;
*)
	echo "$0: TARGET must be baseline, proxy, external or compare, not $target" >&2
	exit 2
	;;
esac
if [ "$target" = proxy ] || [ "$target" = compare ]; then
	reshard=$(cd "$(dirname "$reshard")" && pwd)/$(basename "$reshard")
	if [ ! -x "$reshard" ]; then
		echo "$0: no reshard binary at $reshard (go build -o bin/reshard ./cmd/reshard, or set RESHARD)" >&2
		exit 2
	fi
fi
if [ ! -f "$src/tests/test_helper.tcl" ]; then
	echo "$0: $src is not a Redis source tree (no tests/test_helper.tcl)" >&2
	exit 2
fi
if [ ! -e "$src/src/redis-server" ]; then
	for b in redis-server redis-cli redis-benchmark redis-check-aof redis-check-rdb; do
		p=$(command -v "$b" || true)
		if [ -n "$p" ]; then ln -s "$p" "$src/src/$b"; fi
	done
fi

if [ "$target" = compare ]; then
	# Both, one after the other on the same port: the baseline runs every
	# test (SKIPFILE applies to the proxy only), then the proxy; then the
	# comparison per unit, and the tests the baseline passes that the
	# proxy fails, by name.
	self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
	SKIPFILE="" LOGDIR="$logdir/baseline" sh "$self" baseline "$src" "$port" "$@" >"$logdir/baseline.txt"
	LOGDIR="$logdir/proxy" RESHARD="$reshard" sh "$self" proxy "$src" "$port" "$@" >"$logdir/proxy.txt"
	awk 'FNR == 1 { file++; next }
	file == 1 { bok[$1] = $2; berr[$1] = $3; order[++n] = $1; next }
	{ pok[$1] = $2; perr[$1] = $3; pend[$1] = $6 }
	END {
		printf "%-24s %9s %9s %9s %9s %8s  %s\n", "unit", "base ok", "base err", "proxy ok", "proxy err", "not run", "proxy end"
		for (i = 1; i <= n; i++) {
			u = order[i]
			if (u == "total") continue
			if (bok[u] + berr[u] + pok[u] + perr[u] == 0) continue
			nr = bok[u] + berr[u] - pok[u] - perr[u]
			if (nr < 0) nr = 0
			printf "%-24s %9d %9d %9d %9d %8d  %s\n", u, bok[u], berr[u], pok[u], perr[u], nr, pend[u]
			tb += bok[u]; te += berr[u]; tp += pok[u]; tq += perr[u]; tn += nr
		}
		printf "%-24s %9d %9d %9d %9d %8d\n", "total", tb, te, tp, tq, tn
	}' "$logdir/baseline.txt" "$logdir/proxy.txt"
	echo
	echo "failed through the proxy, not in the baseline:"
	for plog in "$logdir"/proxy/*.log; do
		blog="$logdir/baseline/$(basename "$plog")"
		grep '^\[err\]:' "$plog" | grep ' in tests/[^ ]*\.tcl$' | sed 's/^\[err\]: //; s/ in tests\/[^ ]*\.tcl$//' | sort -u |
			while IFS= read -r name; do
				if ! grep -qF "[err]: $name in tests/" "$blog" 2>/dev/null; then
					echo "  $(basename "$plog" .log | tr _ /): $name"
				fi
			done
	done
	echo "logs: $logdir" >&2
	exit 0
fi

# run holds the processes this script started for the current unit.
run=$logdir/run
pids=""

# wait_for waits up to 10 s for `redis-cli -p PORT ARGS...` to print WHAT.
wait_for() { # wait_for WHAT PORT ARGS...
	what=$1
	p=$2
	shift 2
	i=0
	until redis-cli -h $host -p "$p" "$@" 2>/dev/null | grep -q "$what"; do
		i=$((i + 1))
		if [ $i -gt 100 ]; then
			echo "$0: no $what from $* on $host:$p" >&2
			return 1
		fi
		sleep 0.1
	done
}

redis() { # redis PORT DIR ARGS...
	p=$1
	d=$2
	shift 2
	mkdir -p "$d"
	redis-server --port "$p" --bind $host --dir "$d" --logfile "$d/log" \
		--enable-debug-command yes --enable-protected-configs yes \
		--save '' --appendonly no "$@" &
	pids="$pids $!"
	wait_for PONG "$p" ping
}

start() {
	rm -rf "$run"
	mkdir -p "$run"
	case $target in
	baseline)
		redis "$port" "$run/base" --cluster-enabled yes \
			--cluster-config-file "$run/base/nodes.conf"
		redis-cli -h $host -p "$port" cluster addslotsrange 0 16383 >/dev/null
		wait_for cluster_state:ok "$port" cluster info
		;;
	proxy)
		shards=""
		for n in 1 2 3; do
			redis $((port + n)) "$run/shard$n"
			shards="$shards${shards:+,}$host:$((port + n))"
		done
		"$reshard" proxy --listen "$host:$port" --shards "$shards" \
			--state-dir "$run/state" >"$run/proxy.log" 2>&1 &
		pids="$pids $!"
		wait_for PONG "$port" ping
		;;
	external)
		wait_for PONG "$port" ping
		;;
	esac
}

stop() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	# A redis-server left running a script does not stop on SIGTERM.
	i=0
	for p in $pids; do
		while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do
			i=$((i + 1))
			sleep 0.1
		done
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	pids=""
}
trap 'stop' EXIT
trap 'exit 130' INT TERM

if [ $# -eq 0 ]; then
	# The units of all_tests, in its order, without integration/*.
	set -- $(sed -n '/^set ::all_tests {/,/^}/p' "$src/tests/test_helper.tcl" |
		grep -E '^[[:space:]]+unit/' | tr -d ' \t')
fi

printf '%-24s %5s %5s %5s %5s  %-7s %5s\n' unit ok err cut exc end secs
tok=0
terr=0
tcut=0
texc=0
for unit in "$@"; do
	log="$logdir/$(echo "$unit" | tr / _).log"
	begin=$(date +%s)
	start
	rc=0
	(cd "$src" && timeout "$unit_timeout" ./runtest --host $host --port "$port" \
		--cluster-mode --clients 1 --durable --timeout "$test_timeout" \
		--baseport "$baseport" $skip --single "$unit") >"$log" 2>&1 || rc=$?
	stop
	if [ "$target" = proxy ]; then cp "$run/proxy.log" "$log.proxy"; fi
	secs=$(($(date +%s) - begin))
	# runtest colours its tags; keep a plain copy to count them.
	sed 's/\x1b\[[0-9;]*m//g' "$log" >"$log.plain" && mv "$log.plain" "$log"
	ok=$(grep -c '^\[ok\]:' "$log" || true)
	# A failed test is "[err]: NAME in tests/unit/FILE.tcl". With --durable,
	# an error outside any test (in a start_server block) is an [err] with
	# the error's text instead of a name, and the rest of that block does
	# not run: counted apart as "cut".
	err=$(grep '^\[err\]:' "$log" | grep -c ' in tests/[^ ]*\.tcl$' || true)
	cut=$(grep '^\[err\]:' "$log" | grep -vc ' in tests/[^ ]*\.tcl$' || true)
	exc=$(grep -c '^\[exception\]:' "$log" || true)
	# end: yes when the unit ran to its end; hung when a test waited
	# TEST_TIMEOUT and runtest gave up the unit; cut when an error outside
	# any test ([exception]) ended it; timeout when UNIT_TIMEOUT did.
	if [ "$rc" -eq 124 ]; then
		end=timeout
	elif grep -q '^\[TIMEOUT\]' "$log"; then
		end=hung
	elif [ "$exc" -gt 0 ]; then
		end=cut
	elif grep -q 'All tests passed without errors\|The following tests failed' "$log"; then
		end=yes
	else
		end="rc=$rc"
	fi
	printf '%-24s %5d %5d %5d %5d  %-7s %5d\n' "$unit" "$ok" "$err" "$cut" "$exc" "$end" "$secs"
	tok=$((tok + ok))
	terr=$((terr + err))
	tcut=$((tcut + cut))
	texc=$((texc + exc))
done
printf '%-24s %5d %5d %5d %5d\n' total "$tok" "$terr" "$tcut" "$texc"
echo "logs: $logdir" >&2
