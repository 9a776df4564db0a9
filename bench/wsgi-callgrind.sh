#!/usr/bin/env bash
# User-space instructions per request of one server on one app, counted by valgrind's callgrind
# (independent of the machine's load, unlike req/s or CPU time). The server runs under callgrind,
# wrk warms it up, the counters are zeroed, wrk runs DURATION seconds at CONNS connections, the
# counters are dumped and divided by the number of completed requests. Kernel time (syscalls,
# context switches) is not counted: see bench/wsgi.sh's "CPU us/req" and "cs/req" for that.
#
# Usage: bench/wsgi-callgrind.sh mse-serve|granian hello_flask|hello_raw|hello_fastapi
#        (DURATION=5 CONNS=8 URLPATH=/ by default; bench/wsgi.sh, or bench/asgi.sh for
#        hello_fastapi, must have built the venv and the binary; KEEP=dir keeps the callgrind
#        files for callgrind_annotate; MSE=path runs another mse-serve binary)
# Prints "instructions/request" per traced process; for Granian the worker process counts.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
NAME=${1:?server: mse-serve or granian}
MODULE=${2:?app: hello_flask or hello_raw}
DURATION=${DURATION:-5}
CONNS=${CONNS:-8}
PORT=${PORT:-18190}
URLPATH=${URLPATH:-/}
VENV=$ROOT/bench/.venv-wsgi
GRANIAN=(--interface wsgi --blocking-threads 1)
case $MODULE in
*fastapi*) VENV=$ROOT/bench/.venv-asgi GRANIAN=(--interface asgi) ;;
esac
APPS=$ROOT/crates/mse-wsgi/tests/apps
MSE=${MSE:-${CARGO_TARGET_DIR:-$ROOT/target}/release/mse-serve}
command -v valgrind >/dev/null || {
	echo "installing valgrind (Debian package)" >&2
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
}
[ -x "$VENV/bin/python" ] || { echo "run bench/wsgi.sh or bench/asgi.sh once first (they build $VENV)" >&2; exit 1; }

TMP=$(mktemp -d)
SERVER_PID=
cleanup() {
	if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
	if [ -n "${KEEP:-}" ]; then cp "$TMP"/out.* "$KEEP"/ 2>/dev/null || true; fi
	rm -rf "$TMP"
}
trap cleanup EXIT

case $NAME in
mse-serve)
	valgrind --tool=callgrind --callgrind-out-file="$TMP/out.%p" "$MSE" "$MODULE:app" \
		--bind "127.0.0.1:$PORT" --app-dir "$APPS" --venv "$VENV" --no-access-log >"$TMP/server.log" 2>&1 &
	;;
granian)
	(cd "$APPS" && exec valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$TMP/out.%p" \
		"$VENV/bin/python" "$VENV/bin/granian" "${GRANIAN[@]}" --workers 1 \
		--host 127.0.0.1 --port "$PORT" --log-level warning "$MODULE:app") >"$TMP/server.log" 2>&1 &
	;;
*) echo "unknown server $NAME" >&2; exit 1 ;;
esac
SERVER_PID=$!
for _ in $(seq 1 600); do
	curl -sf -o /dev/null "http://127.0.0.1:$PORT/" && break
	sleep 0.2
done
wrk -t1 -c"$CONNS" -d3s "http://127.0.0.1:$PORT$URLPATH" >/dev/null
callgrind_control -z >/dev/null 2>&1
wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$PORT$URLPATH" >"$TMP/wrk.txt"
callgrind_control -d >/dev/null 2>&1
n=$(awk '/requests in/ {print $1}' "$TMP/wrk.txt")
for f in "$TMP"/out.*.[0-9]*; do
	total=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
	[ "${total:-0}" -gt $((n * 100)) ] || continue # Granian's supervisor process: idle
	echo "$NAME $MODULE $URLPATH: $n requests, $((total / n)) instructions/request"
done
