#!/usr/bin/env bash
# FastAPI (ASGI) throughput of mse-serve versus Granian (--interface asgi), uvicorn and Hypercorn,
# one worker each, on the same app (crates/mse-wsgi/tests/apps/hello_fastapi.py: a plain-text hello
# at / and a small JSON document at /json), over plain HTTP and TLS, with wrk at 64 keep-alive
# connections after a warm-up; then HTTP/2 over TLS with h2load for mse-serve and Granian. On a
# machine with >= 2 CPUs the server is pinned to CPU 1 and the client to CPU 0.
#
# Each app also gets a "loop limit" row: the app called in a tight loop by bench/app_loop.py on
# the server's CPU (no HTTP, no server), the most a server could get out of that core. Every
# server row shows its ratio to that limit, its CPU time per request ("CPU us/req", all its
# processes and threads: less sensitive to other load than req/s), context switches per request,
# and mse-serve's ratio to it.
#
# Usage: bench/asgi.sh      (DURATION=5 WARMUP=2 CONNS=64 REPEAT=3 by default: about 8 minutes;
#                            SERVERS="mse-serve granian uvicorn hypercorn", PATHS="/ /json",
#                            H2=0 skips the HTTP/2 part, H2_SERVERS="mse-serve granian")
# Servers are interleaved within each repetition and the median is printed. All Python packages
# come from bench/requirements-asgi.txt (its own venv, bench/.venv-asgi). Not part of CI: figures
# go to bench/RESULTS.md by hand, with the date and this command.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=bench/http-lib.sh
. "$ROOT/bench/http-lib.sh"
http_bench_init 5 2 3 18081 asgi h2load:nghttp2-client
APP=hello_fastapi:app
prepare "$ROOT/bench/requirements-asgi.txt"

# start_server NAME SCHEME: starts it in the background on $PORT, sets SERVER_PID.
start_server() {
	local name=$1 scheme=$2 tls=()
	case $name in
	mse-serve | mse-base)
		# mse-base: another build (MSE_BASE=path/to/mse-serve), e.g. before a change.
		local bin=$MSE
		[ "$name" = mse-base ] && bin=${MSE_BASE:?MSE_BASE=path of the other mse-serve}
		[ "$scheme" = https ] && tls=(--tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem")
		"${SRV_CPU[@]}" "$bin" "$APP" --bind "127.0.0.1:$PORT" --app-dir "$APPS" \
			--venv "$VENV" --no-access-log "${tls[@]}" >"$TMP/server.log" 2>&1 &
		;;
	granian)
		[ "$scheme" = https ] && tls=(--ssl-certificate "$TMP/cert.pem" --ssl-keyfile "$TMP/key.pem")
		(cd "$APPS" && exec "${SRV_CPU[@]}" "$VENV/bin/granian" --interface asgi --workers 1 \
			--host 127.0.0.1 --port "$PORT" --log-level warning "${tls[@]}" "$APP") >"$TMP/server.log" 2>&1 &
		;;
	uvicorn)
		[ "$scheme" = https ] && tls=(--ssl-certfile "$TMP/cert.pem" --ssl-keyfile "$TMP/key.pem")
		(cd "$APPS" && exec "${SRV_CPU[@]}" "$VENV/bin/uvicorn" --host 127.0.0.1 --port "$PORT" \
			--log-level warning --no-access-log "${tls[@]}" "$APP") >"$TMP/server.log" 2>&1 &
		;;
	hypercorn)
		[ "$scheme" = https ] && tls=(--certfile "$TMP/cert.pem" --keyfile "$TMP/key.pem")
		(cd "$APPS" && exec "${SRV_CPU[@]}" "$VENV/bin/hypercorn" -w 1 -b "127.0.0.1:$PORT" \
			--log-level warning "${tls[@]}" "$APP") >"$TMP/server.log" 2>&1 &
		;;
	*) echo "unknown server $name" >&2; return 1 ;;
	esac
	SERVER_PID=$!
	await_server "$name" "$scheme"
}

# run_h2load URL → "req/s cpu_us_per_request" (64 connections, 10 streams each, one client thread)
run_h2load() {
	"${WRK_CPU[@]}" h2load -t1 -c"$CONNS" -m10 -D"$WARMUP" "$1" >/dev/null 2>&1 || true
	local before after
	before=$(cpu_ticks "$SERVER_PID")
	"${WRK_CPU[@]}" h2load -t1 -c"$CONNS" -m10 -D"$DURATION" "$1" >"$TMP/h2load.txt" 2>&1 || true
	after=$(cpu_ticks "$SERVER_PID")
	local rps done_
	rps=$(awk '/^finished in/ { gsub(",", ""); print $4 }' "$TMP/h2load.txt")
	done_=$(awk '/^requests:/ { print $8 }' "$TMP/h2load.txt")
	grep -q "^requests:.* 0 failed, 0 errored" "$TMP/h2load.txt" || grep "^requests:" "$TMP/h2load.txt" >&2
	awk -v r="${rps:-0}" -v t=$((after - before)) -v n="${done_:-1}" -v hz="$(getconf CLK_TCK)" \
		'BEGIN { printf "%s %.1f\n", r, (n > 0 ? t * 1e6 / hz / n : 0) }'
}

read -r -a SERVERS <<<"${SERVERS:-mse-serve granian uvicorn hypercorn}"
read -r -a H2_SERVERS <<<"${H2_SERVERS:-mse-serve granian}"
SUMMARY=$TMP/summary
echo "# bench/asgi.sh $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) CPU(s): wrk -t1 -c$CONNS, ${WARMUP}s warm-up, ${DURATION}s measured, median of $REPEAT; $APP" | tee "$SUMMARY"
printf '%-6s %-6s %-11s %10s %10s %11s %7s %8s %9s\n' path proto server "req/s" p99 "CPU us/req" cs/req "/limit" "mse/this" | tee -a "$SUMMARY"
for path in ${PATHS:-/ /json}; do
	rm -f "$TMP"/limit.*
	for _ in $(seq 1 "$REPEAT"); do
		"${SRV_CPU[@]}" "$VENV/bin/python" "$ROOT/bench/app_loop.py" "$APPS" "$APP" "$path" "$DURATION" asgi >>"$TMP/limit.txt" 2>/dev/null
	done
	limit=$(median <"$TMP/limit.txt")
	printf '%-6s %-6s %-11s %10s %10s %11s %7s %8s %9s\n' "$path" - "loop limit" "$limit" - \
		"$(awk -v l="$limit" 'BEGIN { printf "%.1f", 1e6 / l }')" - 1.00 - | tee -a "$SUMMARY"
	for scheme in http https; do
		# Not piped: the servers must start in this shell (its EXIT trap stops a running one).
		wrk_rows "$path" "$scheme" "$scheme://127.0.0.1:$PORT$path" "$limit" >"$TMP/rows"
		tee -a "$SUMMARY" <"$TMP/rows"
	done
done

if [ "${H2:-1}" != 0 ]; then
	echo "# HTTP/2 over TLS (ALPN h2): h2load -t1 -c$CONNS -m10, ${WARMUP}s warm-up, ${DURATION}s measured, median of $REPEAT" | tee -a "$SUMMARY"
	for path in ${PATHS:-/ /json}; do
		rm -f "$TMP"/h2.*
		for _ in $(seq 1 "$REPEAT"); do
			for name in "${H2_SERVERS[@]}"; do
				start_server "$name" https
				run_h2load "https://127.0.0.1:$PORT$path" >>"$TMP/h2.$name"
				stop_server
			done
		done
		ours=
		for name in "${H2_SERVERS[@]}"; do
			rps=$(awk '{print $1}' "$TMP/h2.$name" | median)
			cpu=$(awk '{print $2}' "$TMP/h2.$name" | median)
			[ -z "$ours" ] && ours=$rps
			printf '%-6s %-6s %-11s %10s %10s %11s %7s %8s %9s\n' "$path" h2 "$name" "$rps" - "$cpu" - - \
				"$(awk -v a="$ours" -v b="$rps" 'BEGIN { printf "%.2fx", a / b }')" | tee -a "$SUMMARY"
		done
	done
fi

echo
echo "## summary"
cat "$SUMMARY"
