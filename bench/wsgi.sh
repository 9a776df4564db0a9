#!/usr/bin/env bash
# Throughput of mse-serve versus Granian, Gunicorn and Hypercorn (1 worker each) on the same
# Flask "hello" app and the same raw WSGI "hello" app, over plain HTTP and TLS, with wrk at 64
# keep-alive connections for a fixed time after a warm-up. On a machine with >= 2 CPUs the server
# is pinned to one CPU and wrk to another, so figures are per-core. Also prints the RSS of
# mse-serve with Flask loaded versus `python -c "import flask"`.
#
# Each app also gets a "loop limit" row (the app called in a tight loop on the server's CPU by
# bench/app_loop.py, no HTTP) and every server its ratio to it ("/limit").
#
# Usage: bench/wsgi.sh            (DURATION=10 WARMUP=3 CONNS=64 REPEAT=1 by default;
#                                   MODULES="hello_flask hello_raw" picks the apps; hello_spin
#                                   has Flask's CPU weight without its memory footprint)
# With REPEAT=n every configuration runs n times, servers interleaved, and the median is shown
# (use it on a busy machine). "CPU us/req" is the server's CPU time (all its processes and
# threads) per completed request, a figure less sensitive to other load than req/s; "cs/req" its
# context switches per request. SERVERS="mse-serve granian ..." picks the servers (first = the
# reference for the ratios); mse-batch is mse-serve with --batch-io (I/O threads under
# SCHED_BATCH; only meaningful on an otherwise idle machine).
# Not part of CI: figures go to bench/RESULTS.md by hand, with the date and this command.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=bench/http-lib.sh
. "$ROOT/bench/http-lib.sh"
http_bench_init 10 3 1 18080 wsgi
prepare "$ROOT/bench/requirements-wsgi.txt"

# start_server NAME MODULE SCHEME: starts it in the background on $PORT, sets SERVER_PID.
start_server() {
	local name=$1 module=$2 scheme=$3 tls=()
	case $name in
	mse-serve | mse-t1 | mse-batch | mse-base)
		# mse-serve runs with its defaults (4 Python threads); mse-t1 with one, like Granian here;
		# mse-base is another build (MSE_BASE=path/to/mse-serve), e.g. before a change.
		local bin=$MSE
		[ "$name" = mse-base ] && bin=${MSE_BASE:?MSE_BASE=path of the other mse-serve}
		[ "$scheme" = https ] && tls=(--tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem")
		local threads=()
		[ "$name" = mse-t1 ] && threads=(--threads 1)
		[ "$name" = mse-batch ] && threads=(--batch-io)
		"${SRV_CPU[@]}" "$bin" "$module:app" --bind "127.0.0.1:$PORT" --app-dir "$APPS" \
			--venv "$VENV" --no-access-log "${threads[@]}" "${tls[@]}" >"$TMP/server.log" 2>&1 &
		;;
	granian)
		[ "$scheme" = https ] && tls=(--ssl-certificate "$TMP/cert.pem" --ssl-keyfile "$TMP/key.pem")
		(cd "$APPS" && exec "${SRV_CPU[@]}" "$VENV/bin/granian" --interface wsgi --workers 1 \
			--blocking-threads 1 --host 127.0.0.1 --port "$PORT" --log-level warning "${tls[@]}" \
			"$module:app") >"$TMP/server.log" 2>&1 &
		;;
	gunicorn)
		[ "$scheme" = https ] && tls=(--certfile "$TMP/cert.pem" --keyfile "$TMP/key.pem")
		(cd "$APPS" && exec "${SRV_CPU[@]}" "$VENV/bin/gunicorn" -k gthread -w 1 --threads 4 \
			-b "127.0.0.1:$PORT" --log-level warning "${tls[@]}" "$module:app") >"$TMP/server.log" 2>&1 &
		;;
	hypercorn)
		[ "$scheme" = https ] && tls=(--certfile "$TMP/cert.pem" --keyfile "$TMP/key.pem")
		(cd "$APPS" && exec "${SRV_CPU[@]}" "$VENV/bin/hypercorn" -w 1 -b "127.0.0.1:$PORT" \
			--log-level warning "${tls[@]}" "$module:app") >"$TMP/server.log" 2>&1 &
		;;
	esac
	SERVER_PID=$!
	await_server "$name" "$scheme"
}

# stop_server, cpu_ticks, ctx_switches, run_wrk URL, median: shared with bench/asgi.sh.
read -r -a SERVERS <<<"${SERVERS:-mse-serve mse-t1 mse-batch granian gunicorn hypercorn}"
echo "# bench/wsgi.sh $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) CPU(s): wrk -t1 -c$CONNS, ${WARMUP}s warm-up, ${DURATION}s measured, median of $REPEAT"
printf '%-6s %-6s %-11s %10s %10s %11s %7s %8s %9s\n' app proto server "req/s" p99 "CPU us/req" cs/req "/limit" "mse/this"
for module in ${MODULES:-hello_flask hello_raw}; do
	# The loop limit: the app called in a tight loop on the server's CPU (bench/app_loop.py).
	rm -f "$TMP/limit.txt"
	for _ in $(seq 1 "$REPEAT"); do
		"${SRV_CPU[@]}" "$VENV/bin/python" "$ROOT/bench/app_loop.py" "$APPS" "$module:app" / "$DURATION" wsgi >>"$TMP/limit.txt" 2>/dev/null
	done
	limit=$(median <"$TMP/limit.txt")
	printf '%-6s %-6s %-11s %10s %10s %11s %7s %8s %9s\n' "${module#hello_}" - "loop limit" "$limit" - \
		"$(awk -v l="$limit" 'BEGIN { printf "%.1f", 1e6 / l }')" - 1.00 -
	for scheme in http https; do
		wrk_rows "${module#hello_}" "$scheme" "$scheme://127.0.0.1:$PORT/" "$limit" "$module"
	done
done

# Memory: mse-serve with the Flask app imported (after one request) versus plain Python.
start_server mse-serve hello_flask http
ours_rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status")
stop_server
py_rss=$("$VENV/bin/python" -c 'import flask
for line in open("/proc/self/status"):
    if line.startswith("VmRSS:"): print(line.split()[1])')
echo "RSS: mse-serve + Flask app ${ours_rss} kB; python -c 'import flask' ${py_rss} kB"
