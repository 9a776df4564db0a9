#!/usr/bin/env bash
# mse-node: deploy time (upload → running, provisioning by curl) and wrk throughput through the
# SNI router versus straight to the enclave's port, for one app.
#
#   bench/node.sh [ENCLAVE_BIN]
#
# ENCLAVE_BIN defaults to the fake enclave example (target/release/examples/fake_enclave), which
# isolates the router's own cost; give a real `mse-enclave` to measure the scaffolded Flask app.
# Env: CONNS (64), DURATION (60s), THREADS (2), MSE_BIN (target/debug/mse, for scaffold+package),
# VENV (the app's virtualenv, default .venv), API_PORT (29443), ROUTER_PORT (28443).
#
# wrk takes the TLS server name from the URL, and `<id>.localhost` does not resolve through
# glibc here: the script adds a line for the app's domain to /etc/hosts and removes it on exit.
set -euo pipefail
for tool in wrk bc curl python3; do
    command -v "$tool" > /dev/null || { echo "bench/node.sh needs $tool (apt-get install -y $tool)" >&2; exit 1; }
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NODE=${MSE_NODE_BIN:-$ROOT/target/release/mse-node}
ENCLAVE=$(realpath "${1:-$ROOT/target/release/examples/fake_enclave}")
MSE=${MSE_BIN:-$ROOT/target/debug/mse}
VENV=$(realpath "${VENV:-$ROOT/.venv}")
CONNS=${CONNS:-64}
DURATION=${DURATION:-60s}
THREADS=${THREADS:-2}
API_PORT=${API_PORT:-29443}
ROUTER_PORT=${ROUTER_PORT:-28443}
API=http://127.0.0.1:$API_PORT

. "$ROOT/bench/node-lib.sh"
node_work

start_node "$work" "$ENCLAVE" "$VENV" "127.0.0.1:$API_PORT" "127.0.0.1:$ROUTER_PORT" bench "$NODE"

"$MSE" scaffold "$work/app" > /dev/null
"$MSE" package --path "$work/app/mse.toml" --output "$work/pkg" > /dev/null
key=$(od -An -tx1 -v "$work/pkg/app.key" | tr -d ' \n')

status() {
    curl -s -H "Authorization: Bearer $token" "$API/apps/$1" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])'
}
wait_for() {
    for _ in $(seq 600); do
        s=$(status "$1")
        [ "$s" = "$2" ] && return 0
        case "$s" in on_error|stopped) echo "app is $s" >&2; tail -20 "$work"/data/apps/*/enclave.log >&2; exit 1;; esac
        sleep 0.02
    done
    echo "timeout waiting for $2" >&2; exit 1
}

conf='{"name":"bench","healthcheck_endpoint":"/health","python_application":"app:app","hardware":"4g-eu-001","docker":"mse-flask"}'
t0=$(date +%s.%N)
id=$(curl -s -H "Authorization: Bearer $token" -F "code=@$work/pkg/app.tar;type=application/tar" \
    -F "conf=$conf;type=application/json" "$API/apps" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
domain=$id.localhost
wait_for "$id" initializing
t1=$(date +%s.%N)
curl -sk --resolve "$domain:$ROUTER_PORT:127.0.0.1" -H 'Content-Type: application/json' \
    -d "{\"uuid\":\"$id\",\"code_secret_key\":\"$key\",\"app_secrets\":$(cat "$work/app/secrets.json")}" \
    "https://$domain:$ROUTER_PORT/" > /dev/null
wait_for "$id" running
t2=$(date +%s.%N)
printf 'deploy: upload -> initializing %.3f s, provisioning -> running %.3f s, total %.3f s\n' \
    "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" "$(echo "$t2 - $t0" | bc)"

hosts_line="127.0.0.1 $domain"
echo "$hosts_line" >> /etc/hosts
port=$(python3 - "$work/data/node.db" "$id" <<'EOF'
import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("SELECT port FROM apps WHERE id=?", (sys.argv[2],)).fetchone()[0])
EOF
)
echo "== through the SNI router (https://$domain:$ROUTER_PORT/health)"
wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "https://$domain:$ROUTER_PORT/health"
echo "== straight to the enclave (https://$domain:$port/health)"
wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "https://$domain:$port/health"
