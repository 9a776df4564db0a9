#!/usr/bin/env bash
# `mse deploy` of the scaffolded app on a local sim node, end to end: package + encrypt, upload,
# enclave start, certificate through the router, evidence + measurement verification, key and
# secrets over the pinned channel, until the node reports `running` (target: <= 3 s).
#
#   bench/deploy.sh            # RUNS (5) deploys, each stopped before the next
#
# Env: BIN_DIR (directory of mse, mse-node, mse-enclave; default target/release),
# VENV (the mse-flask environment, default .venv), RUNS (5).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN_DIR=$(realpath "${BIN_DIR:-$ROOT/target/release}")
VENV=$(realpath "${VENV:-$ROOT/.venv}")
RUNS=${RUNS:-5}
for b in mse mse-node mse-enclave; do
    [ -x "$BIN_DIR/$b" ] || { echo "$BIN_DIR/$b missing (cargo build --release --workspace --bins)" >&2; exit 1; }
done

. "$ROOT/bench/node-lib.sh"
node_work

start_node "$work" "$BIN_DIR/mse-enclave" "$VENV" 127.0.0.1:0 127.0.0.1:0 default

export MSE_CONFIG_DIR="$work/config"
cd "$work"
"$BIN_DIR/mse" scaffold app > /dev/null
"$BIN_DIR/mse" login --url "$api" --token "$token" > /dev/null

times=()
for i in $(seq "$RUNS"); do
    t0=$(date +%s.%N)
    "$BIN_DIR/mse" deploy --path app/mse.toml > "$work/deploy.out"
    t1=$(date +%s.%N)
    id=$(awk '/^  id:/ {print $2}' "$work/deploy.out")
    t=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
    times+=("$t")
    echo "run $i: $t s (app $id)"
    "$BIN_DIR/mse" stop "$id" > /dev/null
done
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print "median: " a[int((NR+1)/2)] " s, min: " a[1] " s, max: " a[NR] " s"}'
