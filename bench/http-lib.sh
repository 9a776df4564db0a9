# Helpers shared by bench/wsgi.sh and bench/asgi.sh (sourced; they set ROOT; `http_bench_init` sets
# DURATION, WARMUP, REPEAT, PORT, CONNS, VENV, APPS, TARGET and MSE; `prepare` sets TMP, SERVER_PID,
# SRV_CPU and WRK_CPU).

# http_bench_init DURATION WARMUP REPEAT PORT NAME [TOOL:PACKAGE...]: the bench's defaults (each
# overridable from the environment), its venv bench/.venv-NAME, the test apps and the release
# mse-serve; installs wrk and each other TOOL from its Debian PACKAGE when missing.
http_bench_init() {
	DURATION=${DURATION:-$1}
	WARMUP=${WARMUP:-$2}
	REPEAT=${REPEAT:-$3}
	PORT=${PORT:-$4}
	CONNS=${CONNS:-64}
	VENV=$ROOT/bench/.venv-$5
	APPS=$ROOT/crates/mse-wsgi/tests/apps
	TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
	MSE=$TARGET/release/mse-serve
	shift 5
	local tool
	for tool in wrk:wrk "$@"; do
		command -v "${tool%%:*}" >/dev/null || {
			echo "installing ${tool#*:} (Debian package)" >&2
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tool#*:}" >/dev/null
		}
	done
}

# prepare REQUIREMENTS: the bench venv (rebuilt when the pinned list changed), the release
# mse-serve, a scratch directory with a self-signed certificate (removed at exit, with the running
# server), and the CPU pinning (server on CPU 1, client on CPU 0, when there are two).
prepare() {
	if [ ! -x "$VENV/bin/python" ] || ! cmp -s "$1" "$VENV/.requirements"; then
		rm -rf "$VENV"
		python3 -m venv "$VENV"
		"$VENV/bin/pip" install -q --disable-pip-version-check -r "$1"
		cp "$1" "$VENV/.requirements"
	fi
	cargo build -q --release -p mse-wsgi --bin mse-serve
	TMP=$(mktemp -d)
	SERVER_PID=
	trap cleanup EXIT
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
		-keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
	if [ "$(nproc)" -ge 2 ]; then SRV_CPU=(taskset -c 1); WRK_CPU=(taskset -c 0); else SRV_CPU=(); WRK_CPU=(); fi
}

cleanup() {
	if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
	rm -rf "$TMP"
}

# await_server NAME SCHEME: waits (bounded) until the server started on $PORT answers.
await_server() {
	for _ in $(seq 1 300); do
		if curl -skf -o /dev/null "$2://127.0.0.1:$PORT/"; then return 0; fi
		sleep 0.1
	done
	echo "$1 did not start:" >&2
	cat "$TMP/server.log" >&2
	return 1
}

stop_server() {
	kill "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=
	# Wait (bounded) until the port is free for the next server.
	for _ in $(seq 1 100); do
		curl -sk -o /dev/null --max-time 0.2 "http://127.0.0.1:$PORT/" || return 0
		sleep 0.1
	done
}

# The server and all its descendants (Granian and Gunicorn run workers as child processes).
tree_pids() {
	local p=$1 c
	echo "$p"
	for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do tree_pids "$c"; done
}
cpu_ticks() {
	local t=0 p
	for p in $(tree_pids "$1"); do
		t=$((t + $(awk '{print $14 + $15}' /proc/"$p"/stat 2>/dev/null || echo 0)))
	done
	echo "$t"
}
# Context switches (voluntary + involuntary) of every thread of the server tree.
ctx_switches() {
	local t=0 p
	for p in $(tree_pids "$1"); do
		# (A thread may exit between the glob and the read.)
		t=$((t + $({ cat /proc/"$p"/task/*/status 2>/dev/null || true; } | awk '/ctxt_switches:/ { s += $2 } END { print s + 0 }')))
	done
	echo "$t"
}

# run_wrk URL → "req/s p99 cpu_us_per_request context_switches_per_request"
run_wrk() {
	"${WRK_CPU[@]}" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$1" >/dev/null
	local before after cs_before cs_after
	before=$(cpu_ticks "$SERVER_PID")
	cs_before=$(ctx_switches "$SERVER_PID")
	"${WRK_CPU[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$1" >"$TMP/wrk.txt"
	after=$(cpu_ticks "$SERVER_PID")
	cs_after=$(ctx_switches "$SERVER_PID")
	local rps p99 reqs errors
	rps=$(awk '/^Requests\/sec:/ {print $2}' "$TMP/wrk.txt")
	# p99 in ms whatever unit wrk chose.
	p99=$(awk '$1 == "99%" { v = $2; m = 1
		if (v ~ /us$/) m = 0.001; else if (v ~ /ms$/) m = 1; else if (v ~ /m$/) m = 60000; else if (v ~ /s$/) m = 1000
		sub(/[a-z]+$/, "", v); printf "%.2f", v * m }' "$TMP/wrk.txt")
	reqs=$(awk '/requests in/ {print $1}' "$TMP/wrk.txt")
	errors=$(grep -E "Non-2xx|Socket errors" "$TMP/wrk.txt" | tr '\n' ' ' || true)
	[ -n "$errors" ] && echo "  ($1: $errors)" >&2
	awk -v r="$rps" -v p="$p99" -v t=$((after - before)) -v n="$reqs" -v hz="$(getconf CLK_TCK)" \
		-v cs=$((cs_after - cs_before)) 'BEGIN { printf "%s %s %.1f %.2f\n", r, p, t * 1e6 / hz / n, cs / n }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }


# wrk_rows LABEL SCHEME URL LIMIT [START_ARG...]: wrk on URL against each of SERVERS, REPEAT times
# with the servers interleaved (each started as `start_server NAME START_ARG... SCHEME`), then one
# row a server of medians: its ratio to the loop LIMIT and the first server's ratio to it.
wrk_rows() {
	local label=$1 scheme=$2 url=$3 limit=$4 name ours= rps p99 cpu cs
	shift 4
	rm -f "$TMP"/res.*
	for _ in $(seq 1 "$REPEAT"); do
		for name in "${SERVERS[@]}"; do
			start_server "$name" "$@" "$scheme"
			run_wrk "$url" >>"$TMP/res.$name"
			stop_server
		done
	done
	for name in "${SERVERS[@]}"; do
		rps=$(awk '{print $1}' "$TMP/res.$name" | median)
		p99=$(awk '{print $2}' "$TMP/res.$name" | median)ms
		cpu=$(awk '{print $3}' "$TMP/res.$name" | median)
		cs=$(awk '{print $4}' "$TMP/res.$name" | median)
		[ -z "$ours" ] && ours=$rps
		printf '%-6s %-6s %-11s %10s %10s %11s %7s %8s %9s\n' "$label" "$scheme" "$name" "$rps" "$p99" "$cpu" "$cs" \
			"$(awk -v a="$rps" -v l="$limit" 'BEGIN { printf "%.2f", a / l }')" \
			"$(awk -v a="$ours" -v b="$rps" 'BEGIN { printf "%.2fx", a / b }')"
	done
}
