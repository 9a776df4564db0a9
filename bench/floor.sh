#!/usr/bin/env bash
# How close to an app's loop limit any server can get on this machine (see bench/floor.c): the
# minimal C responder burning SPIN_US per request (default: Flask hello's loop limit, measured
# here with bench/app_loop.py), pinned like bench/wsgi.sh pins servers, wrk -t1 -c64. Prints
# req/s, CPU us/request and the ratio to 1/SPIN_US, answering each request at once and a whole
# epoll batch at once.
# Usage: bench/floor.sh   (SPIN_US=39 DURATION=5 REPEAT=3 PORT=18097)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=bench/http-lib.sh
. "$ROOT/bench/http-lib.sh"
http_bench_init 5 1 3 18097 wsgi
prepare "$ROOT/bench/requirements-wsgi.txt"
cc -O2 -o "$TMP/floor" "$ROOT/bench/floor.c"
if [ -z "${SPIN_US:-}" ]; then
	limit=$("${SRV_CPU[@]}" "$VENV/bin/python" "$ROOT/bench/app_loop.py" "$APPS" hello_flask:app / 3 wsgi 2>/dev/null)
	SPIN_US=$(awk -v l="$limit" 'BEGIN { printf "%.1f", 1e6 / l }')
	echo "# Flask hello loop limit: $limit calls/s ($SPIN_US us per call)"
fi
echo "# bench/floor.sh $(date -u +%Y-%m-%dT%H:%MZ): C responder spinning $SPIN_US us per request, wrk -t1 -c$CONNS, ${DURATION}s, median of $REPEAT"
for mode in each batch; do
	arg=()
	[ "$mode" = batch ] && arg=(batch)
	"${SRV_CPU[@]}" "$TMP/floor" "$PORT" "$SPIN_US" "${arg[@]}" 2>/dev/null &
	SERVER_PID=$!
	sleep 1
	rm -f "$TMP/rps" "$TMP/cpu"
	for _ in $(seq 1 "$REPEAT"); do
		t0=$(cpu_ticks "$SERVER_PID")
		out=$("${WRK_CPU[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$PORT/")
		t1=$(cpu_ticks "$SERVER_PID")
		n=$(awk '/requests in/ { print $1 }' <<<"$out")
		awk '/Requests\/sec/ { print $2 }' <<<"$out" >>"$TMP/rps"
		awk -v t="$((t1 - t0))" -v n="$n" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f\n", t / hz * 1e6 / n }' >>"$TMP/cpu"
	done
	kill "$SERVER_PID"
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
	rps=$(median <"$TMP/rps")
	printf '%-6s req/s %9.0f  CPU us/req %6s  /limit %.2f\n' "$mode" "$rps" "$(median <"$TMP/cpu")" \
		"$(awk -v r="$rps" -v s="$SPIN_US" 'BEGIN { print r * s / 1e6 }')"
done
