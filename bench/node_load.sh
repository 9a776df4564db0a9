#!/usr/bin/env bash
# mse-node under load (issue 7): APPS scaffolded apps deployed at once with `mse deploy` (the
# whole flow: package, upload, enclave start, attestation through the router, key + secrets)
# until all are running; then wrk through the SNI router to one of them over TLS (CONNS
# connections, DURATION); then bench/deploy.sh for the single-deploy time.
#
#   bench/node_load.sh
#
# Env: BIN_DIR (mse, mse-node, mse-enclave; default target/release), VENV (the node's mse-flask
# environment, default .venv: no pip), APPS (20), CONNS (64), DURATION (60s), THREADS (2),
# PATH_UNDER_TEST (/), DEPLOY_RUNS (5; 0 skips bench/deploy.sh).
#
# wrk and SNI: wrk sends the URL's host name as SNI (and does not check the certificate, which
# is fine for a load test: `mse deploy` verified the enclave). `<id>.localhost` does not resolve
# through glibc here and the router routes on SNI only, so a Host header cannot stand in for it:
# like bench/node.sh, the script adds one line for the app's domain to /etc/hosts (root) and
# removes it on exit. wrk is installed with apt-get when missing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN_DIR=$(realpath "${BIN_DIR:-$ROOT/target/release}")
VENV=$(realpath "${VENV:-$ROOT/.venv}")
APPS=${APPS:-20}
CONNS=${CONNS:-64}
DURATION=${DURATION:-60s}
THREADS=${THREADS:-2}
PATH_UNDER_TEST=${PATH_UNDER_TEST:-/}
DEPLOY_RUNS=${DEPLOY_RUNS:-5}
for b in mse mse-node mse-enclave; do
    [ -x "$BIN_DIR/$b" ] || { echo "$BIN_DIR/$b missing (cargo build --release --workspace --bins)" >&2; exit 1; }
done
[ -x "$VENV/bin/python" ] || { echo "$VENV: no bin/python (make setup)" >&2; exit 1; }
if ! command -v wrk > /dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk > /dev/null
fi

. "$ROOT/bench/node-lib.sh"
node_work

echo "machine: $(nproc) cores, $(uptime)"
echo "binaries: $BIN_DIR"

start_node "$work" "$BIN_DIR/mse-enclave" "$VENV" 127.0.0.1:0 127.0.0.1:0 default
port=${router##*:}

export MSE_CONFIG_DIR="$work/config" NO_PROXY=127.0.0.1,localhost
cd "$work"
"$BIN_DIR/mse" login --url "$api" --token "$token" > /dev/null
"$BIN_DIR/mse" scaffold app > /dev/null
for i in $(seq -w "$APPS"); do
    cp -r app "app$i"
    sed -i "s/^name = \"app\"/name = \"app$i\"/" "app$i/mse.toml"
done

echo "== $APPS apps deployed at once (mse deploy each, until running)"
t0=$(date +%s.%N)
pids=()
for i in $(seq -w "$APPS"); do
    "$BIN_DIR/mse" deploy --path "app$i/mse.toml" --json > "deploy$i.json" 2> "deploy$i.err" &
    pids+=($!)
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
t1=$(date +%s.%N)
running=$("$BIN_DIR/mse" list --json | python3 -c 'import json,sys; print(sum(a["status"] == "running" for a in json.load(sys.stdin)))')
printf 'all %d deploys returned in %.1f s: %d failed, %d apps running\n' "$APPS" "$(echo "$t1 - $t0" | bc)" "$failed" "$running"
python3 - "$APPS" <<'EOF'
import json, sys
secs = sorted(json.load(open(f"deploy{i:0{len(sys.argv[1])}d}.json"))["seconds"]
              for i in range(1, int(sys.argv[1]) + 1))
print(f"per-app deploy time: min {secs[0]:.1f} s, median {secs[len(secs) // 2]:.1f} s, max {secs[-1]:.1f} s")
EOF
if [ "$failed" -ne 0 ] || [ "$running" -ne "$APPS" ]; then
    grep -h . deploy*.err | grep -i error >&2 || true
    exit 1
fi

id=$(python3 -c 'import json; print(json.load(open("deploy'"$(seq -w "$APPS" | head -1)"'.json"))["id"])')
domain=$id.localhost
hosts_line="127.0.0.1 $domain"
echo "$hosts_line" >> /etc/hosts
url="https://$domain:$port$PATH_UNDER_TEST"
curl -sS --fail --cacert "config/context/$id/ratls.pem" -o /dev/null "$url"
echo "== wrk through the SNI router to one app ($url), $CONNS connections, $DURATION, uptime: $(uptime | sed 's/.*load/load/')"
wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$url" | tee wrk.out
python3 - <<'EOF'
import re
text = open("wrk.out").read()
rps = re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)
p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1)
total = re.search(r"(\d+) requests in", text).group(1)
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
errors = (sum(map(int, sock.groups())) if sock else 0) + (int(non2xx.group(1)) if non2xx else 0)
print(f"summary: {total} requests, {rps} req/s, p99 {p99}, errors {errors}")
EOF
echo "after: $(uptime | sed 's/.*load/load/')"
"$BIN_DIR/mse" list --json | python3 -c '
import json, sys
apps = json.load(sys.stdin)
print(sum(a["status"] == "running" for a in apps), "of", len(apps), "apps still running after the load")'

kill "$node_pid" && wait "$node_pid" || true
node_pid=""
if [ "$DEPLOY_RUNS" -gt 0 ]; then
    echo "== single deploy of the scaffolded app (bench/deploy.sh, $DEPLOY_RUNS runs)"
    BIN_DIR="$BIN_DIR" VENV="$VENV" RUNS="$DEPLOY_RUNS" "$ROOT/bench/deploy.sh"
fi
