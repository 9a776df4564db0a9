#!/usr/bin/env bash
# mse-enclave start-up latencies on the scaffolded app (sim TEE, loopback), medians over RUNS runs:
#   spawn -> configuration server ready: process start until GET / answers 200 + Mse-Status
#            (includes measuring the runtime, the venv and the package, the sim quote, RA-TLS cert);
#   provisioning -> healthcheck OK: POST of the configuration until GET /health answers without
#            Mse-Status (includes decrypting the code, starting Python and importing the app).
# Also prints the CPU time (user+sys) of the enclave process per run, less sensitive to load.
#
# Usage: bench/enclave.sh     (RUNS=20, PROFILE=release; PROFILE=debug uses target/debug)
# Not part of CI: figures go to bench/RESULTS.md by hand, with the date and this command.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-20}
PROFILE=${PROFILE:-release}
PYTHON=${PYTHON:-python3}
export PYO3_PYTHON=${PYO3_PYTHON:-$(command -v "$PYTHON")}
if [ "$PROFILE" = release ]; then
  cargo build -q --release -p mse-enclave -p mse-cli
fi
BIN=$ROOT/target/$PROFILE
VENV=${BENCH_VENV:-$ROOT/bench/.venv-enclave}
if [ ! -f "$VENV/.stamp" ]; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r bench/requirements-enclave.txt
  touch "$VENV/.stamp"
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$BIN/mse" scaffold "$WORK/app" >/dev/null
"$BIN/mse" package --path "$WORK/app/mse.toml" --output "$WORK/pkg" >/dev/null
head -c 32 /dev/urandom > "$WORK/seed"
"$PYTHON" bench/enclave_bench.py "$BIN/mse-enclave" "$WORK" "$VENV" "$RUNS"
